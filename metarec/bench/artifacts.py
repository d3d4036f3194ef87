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

#: Artifact kinds no method trains as its own model: item-text embeddings and the student encoders distilled for them,
#: shared by every text recommender of a dataset. A run's cost leaves out the time it spent getting these
#: (``build_seconds``): the trial that happens to ask first must not spend its study's budget on what every later
#: run of every method loads (an hour of encoding would end a study on its first trial). Teachers stay charged: a
#: ``distill:teacher`` run's training *is* its teacher artifact, and a student that trains its teacher pays for it,
#: as every finished grid counted it.
UNCHARGED = ("text_emb", "text_student")
#: time this process spent inside requests for UNCHARGED kinds (outermost only: an embedding built from a student
#: built from the teacher's embeddings is one request), waiting for another builder included
_CLOCK = {"wall_s": 0.0, "cpu_s": 0.0, "depth": 0}


def build_seconds() -> dict[str, float]:
    """(wall, CPU) seconds this process has spent getting ``UNCHARGED`` artifacts so far; a run takes the
    difference across itself."""
    return {"wall_s": _CLOCK["wall_s"], "cpu_s": _CLOCK["cpu_s"]}


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
        if kind not in UNCHARGED:
            return self._get_or_build(kind, identity, build, valid)
        w0, c0 = time.perf_counter(), time.process_time()
        _CLOCK["depth"] += 1
        try:
            return self._get_or_build(kind, identity, build, valid)
        finally:
            _CLOCK["depth"] -= 1
            if _CLOCK["depth"] == 0:
                _CLOCK["wall_s"] += time.perf_counter() - w0
                _CLOCK["cpu_s"] += time.process_time() - c0

    def _get_or_build(self, kind, identity, build, valid) -> tuple[Path, dict, bool]:
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


# ---- artifacts committed with a grid's results (grid key ``keep_artifacts:``) ----------------------------------------
#: the kinds a grid may keep with its results: those whose identity names the dataset they were built for (so a
#: grid keeps only its own datasets' artifacts)
KEEPABLE = ("teacher", "text_emb", "text_student")
#: where they go inside ``results/<grid>/``, laid out as in the store: ``artifacts/<kind>/<key>/``
COMMITTED = "artifacts"


def _copy_whole(src: Path, dst: Path) -> None:
    """Copy the folder ``src`` to ``dst`` so that ``dst`` only ever appears complete: copied under a temporary name
    beside it, then renamed in one step (a previous ``dst`` is replaced)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".tmp-{dst.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def export_artifacts(store: Artifacts, kinds, datasets, out: Path) -> list[Path]:
    """Copy every intact artifact of ``kinds`` built for one of ``datasets`` into ``out/artifacts/<kind>/<key>/``
    (``adopt_committed_artifacts`` puts them back into a new machine's store). An artifact whose committed copy is
    already there with the same meta is left alone; each copy appears whole (written under a temporary name, then
    renamed). Returns the folders written."""
    written = []
    for kind in kinds:
        for folder in sorted((store.root / kind).glob("*/")) if (store.root / kind).is_dir() else ():
            if folder.name.startswith(".") or not (folder / META).is_file():
                continue
            meta, damage = _check(folder, None)
            if damage is not None or meta.get("identity", {}).get("dataset") not in datasets:
                continue
            target = Path(out) / COMMITTED / kind / folder.name
            if (target / META).is_file() and _check(target, None) == (meta, None):
                continue
            _copy_whole(folder, target)
            written.append(target)
    return written


def adopt_committed_artifacts(store: Artifacts, results: Path) -> int:
    """Put the artifacts committed in ``results/artifacts/`` (``export_artifacts``) into a store that lacks them, so
    a grid on a new machine loads what an earlier machine built (item-text embeddings: an hour of encoding and
    distillation) instead of building it again. A committed artifact must be intact (every file its meta lists,
    sha256 checked): one that is not stops with an error naming it, since rebuilding silently could change what
    the grid's finished runs were computed from. Returns how many were adopted."""
    from metarec.errors import DataError

    committed = Path(results) / COMMITTED
    adopted = 0
    if not committed.is_dir():
        return 0
    for meta_file in sorted(committed.glob(f"*/*/{META}")):
        folder, kind = meta_file.parent, meta_file.parent.parent.name
        if kind not in KEEPABLE or folder.name.startswith("."):
            continue
        meta, damage = _check(folder, None)
        if damage is not None:
            raise DataError(f"committed artifact damaged ({damage}): restore it from git or delete the folder to "
                            "have it built again", folder)
        if artifact_key(kind, meta.get("identity", {})) != folder.name:
            raise DataError(f"committed artifact's meta.json names another identity than its folder "
                            f"({artifact_key(kind, meta.get('identity', {}))})", meta_file)
        final = store.root / kind / folder.name
        if (final / META).is_file():
            continue
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(final.parent / f".{final.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if (final / META).is_file():
                    continue
                _copy_whole(folder, final)
                adopted += 1
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    return adopted
