"""Run-store artifacts: reusable intermediates (distillation teachers, item-text embeddings, ...) keyed like runs.

    <home>/artifacts/<kind>/<key>/      the artifact's files + meta.json (what built it, when, how long it took)

``key`` is a hash of the artifact's identity (a JSON-ready dict: e.g. the split's content fingerprint, the method and
its parameters, the seed), so the same identity always names the same folder and an artifact is built once per store.
A folder appears only complete: it is built under a temporary name and renamed in one step, under an exclusive
lock per key, so concurrent runs (pool or Ray workers) build it once and wait for each other, and a process killed
while building leaves nothing under the final name (the next request builds it again).

The runner hands every method the store of its grid (``Method.artifacts``); outside a grid it is ``<home>``'s.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from metarec.utils import atomic_write_json, file_digest, home

META = "meta.json"


def artifact_key(kind: str, identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({"kind": kind, **identity}, sort_keys=True, default=str).encode()).hexdigest()[:24]


class Artifacts:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root or home()) / "artifacts"

    def folder(self, kind: str, identity: dict[str, Any]) -> Path:
        return self.root / kind / artifact_key(kind, identity)

    def get_or_build(self, kind: str, identity: dict[str, Any], build: Callable[[Path], dict | None],
                     valid: Callable[[Path], bool] | None = None) -> tuple[Path, dict, bool]:
        """(folder, meta, cached). ``build(tmp_folder)`` writes the artifact's files into ``tmp_folder`` and returns
        extra meta; ``valid(folder)`` may reject a damaged artifact, which is then rebuilt."""
        final = self.folder(kind, identity)
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(final.parent / f".{final.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)   # a second builder waits here, then finds the first one's artifact
            try:
                if (final / META).is_file():
                    meta, damage = _check(final, valid)
                    if damage is None:
                        return final, meta, True
                    # a cache: rebuilt, but never silently
                    logging.getLogger("metarec").warning("artifact %s at %s is damaged (%s); rebuilding it",
                                                         kind, final, damage)
                tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
                try:
                    t0 = time.perf_counter()
                    extra = build(tmp) or {}
                    meta = {"kind": kind, "identity": identity, "build_s": time.perf_counter() - t0,
                            "built": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra,
                            "files": {str(f.relative_to(tmp)): file_digest(f) for f in sorted(tmp.rglob("*"))
                                      if f.is_file() and f.name != META}}
                    atomic_write_json(tmp / META, meta)
                    shutil.rmtree(final, ignore_errors=True)   # a damaged one (rejected by `valid`)
                    os.replace(tmp, final)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                return final, meta, False
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _check(folder: Path, valid: Callable[[Path], bool] | None) -> tuple[dict, str | None]:
    """(meta, None) for an intact artifact, else (_, why it is damaged): its meta unreadable, a file it lists
    missing or changed (sha256), or rejected by the builder's own ``valid``."""
    try:
        meta = json.loads((folder / META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        return {}, f"{META} unreadable: {e}"
    for name, digest in (meta.get("files") or {}).items():
        path = folder / name
        if not path.is_file():
            return meta, f"{name} missing"
        if file_digest(path) != digest:
            return meta, f"{name} changed since it was built (sha256)"
    if valid is not None and not valid(folder):
        return meta, "rejected by its builder's check"
    return meta, None
