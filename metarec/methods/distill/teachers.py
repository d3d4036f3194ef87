"""On-disk teacher checkpoints: a teacher is trained once per (split fingerprint, teacher configuration) and every
student run — and the ``distill:teacher`` row itself — loads it.

Layout: ``<home>/teachers/<dataset>-<protocol>-<key>/teacher.pt`` with the state dict and a JSON-ready ``meta``
(configuration, seed, best validation value and epoch, training time). The key is the sha256 of the split's content
fingerprint, the teacher method's name, its resolved parameters (minus display-only ones) and the seed. Writes are
atomic (temporary file + rename) and guarded by an exclusive file lock, so concurrent runs train a teacher once and
a run killed mid-training leaves no half-written checkpoint behind (the next run simply trains it again).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from metarec.utils import atomic_write_json

#: parameters that do not change what is trained
_IGNORED = ("progress_bar",)


def teacher_key(split, method_name: str, params: dict[str, Any], seed: int) -> str:
    cfg = {"split": split.fingerprint, "method": method_name, "seed": int(seed),
           "params": {k: v for k, v in sorted(params.items()) if k not in _IGNORED}}
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()


def teacher_folder(split, method_name: str, params: dict[str, Any], seed: int, root: Path | None = None) -> Path:
    from metarec.utils import home

    key = teacher_key(split, method_name, params, seed)
    return Path(root or home()) / "teachers" / f"{split.dataset}-{split.protocol}-{key[:24]}"


def load_or_train(method, split, seed: int, root: Path | None = None):
    """Make ``method`` (an unfitted distillation method) the teacher for ``split``: load its checkpoint when one
    exists, else fit it and save the checkpoint. Returns (method ready to score, meta dict incl. 'cached')."""
    folder = teacher_folder(split, method.name, method.params, seed, root)
    folder.parent.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "teacher.pt"
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # a second process waits here, then loads what the first one wrote
        try:
            if ckpt.is_file():
                try:
                    blob = torch.load(ckpt, map_location="cpu", weights_only=False)
                    method.prepare(split, seed)
                    method.module.load_state_dict(blob["state_dict"])
                    method.module.eval()
                    meta = dict(blob["meta"], cached=True)
                    method.teacher_meta = meta
                    for attr in ("best_epoch", "best_valid", "epochs_trained"):
                        if meta.get(attr) is not None:
                            setattr(method, attr, meta[attr])
                    return method, meta
                except Exception:  # damaged or incompatible: train again below
                    pass
            folder.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            method.fit_fresh(split, seed=seed, workdir=folder / "train")
            meta = {"method": method.name, "params": {k: v for k, v in method.params.items() if k not in _IGNORED},
                    "seed": int(seed), "split_fingerprint": split.fingerprint, "fit_s": time.perf_counter() - t0,
                    "best_epoch": getattr(method, "best_epoch", None), "best_valid": getattr(method, "best_valid", None),
                    "epochs_trained": getattr(method, "epochs_trained", None)}
            fd, tmp = tempfile.mkstemp(prefix=".teacher.", dir=folder)
            os.close(fd)
            try:
                torch.save({"state_dict": method.module.state_dict(), "meta": meta}, tmp)
                os.replace(tmp, ckpt)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            atomic_write_json(folder / "meta.json", meta)
            method.teacher_meta = dict(meta, cached=False)
            return method, method.teacher_meta
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
