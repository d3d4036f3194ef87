"""Teacher checkpoints as run-store artifacts (``metarec.bench.artifacts``, kind ``teacher``): a teacher is trained
once per (split fingerprint, teacher configuration, seed) and every student run — and the ``distill:teacher`` row
itself — loads it.

    <store>/artifacts/teacher/<key>/teacher.pt + meta.json

``teacher.pt`` holds the state dict and a JSON-ready ``meta`` (configuration, seed, best validation value and epoch,
training time). The key hashes the split's content fingerprint, the teacher method's name, its resolved parameters
(minus display-only ones) and the seed. The artifact store builds it atomically under a lock per key, so concurrent
runs train a teacher once and a run killed mid-training leaves nothing behind (the next run trains it again).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

#: parameters that do not change what is trained
_IGNORED = ("progress_bar",)


def teacher_identity(split, method_name: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    return {"split": split.fingerprint, "dataset": split.dataset, "protocol": split.protocol, "method": method_name,
            "seed": int(seed), "params": {k: v for k, v in sorted(params.items()) if k not in _IGNORED}}


def teacher_folder(split, method_name: str, params: dict[str, Any], seed: int, root: Path | None = None) -> Path:
    from metarec.bench.artifacts import Artifacts

    return Artifacts(root).folder("teacher", teacher_identity(split, method_name, params, seed))


def _readable(folder: Path) -> bool:
    try:
        torch.load(folder / "teacher.pt", map_location="cpu", weights_only=False)
        return True
    except Exception:  # damaged or incompatible: the artifact store builds it again
        return False


def _teacher_artifact(method, split, seed: int, artifacts, fit, rebuild):
    """The shared part of both loaders: ``fit(folder)`` trains ``method`` when no artifact exists (then its
    weights are stored), ``rebuild()`` gives a loaded one its module before the weights go in. Returns meta."""
    from metarec.bench.artifacts import Artifacts

    store = artifacts or Artifacts()

    def build(folder: Path) -> dict:
        t0 = time.perf_counter()
        fit(folder)
        meta = {"method": method.name, "params": {k: v for k, v in method.params.items() if k not in _IGNORED},
                "seed": int(seed), "split_fingerprint": split.fingerprint, "fit_s": time.perf_counter() - t0,
                "best_epoch": getattr(method, "best_epoch", None), "best_valid": getattr(method, "best_valid", None),
                "epochs_trained": getattr(method, "epochs_trained", None)}
        torch.save({"state_dict": method.module.state_dict(), "meta": meta}, folder / "teacher.pt")
        return meta

    folder, meta, cached = store.get_or_build("teacher", teacher_identity(split, method.name, method.params, seed),
                                              build, valid=_readable)
    if cached:
        blob = torch.load(folder / "teacher.pt", map_location="cpu", weights_only=False)
        rebuild()
        method.module.load_state_dict(blob["state_dict"])
        method.module.eval()
        for attr in ("best_epoch", "best_valid", "epochs_trained"):
            if meta.get(attr) is not None:
                setattr(method, attr, meta[attr])
    return dict(meta, cached=cached)


def load_or_train(method, split, seed: int, artifacts=None):
    """Make ``method`` (an unfitted distillation method) the teacher for ``split``: load its artifact when one exists,
    else fit it and store it. Returns (method ready to score, meta dict incl. 'cached')."""
    method.teacher_meta = _teacher_artifact(
        method, split, seed, artifacts, fit=lambda folder: method.fit_fresh(split, seed=seed, workdir=folder / "train"),
        rebuild=lambda: method.prepare(split, seed))
    return method, method.teacher_meta


def load_or_train_method(method, split, seed: int, artifacts=None):
    """A teacher that is any Lightning method (``teacher_method``, e.g. mf-bpr): fitted once per (split, method,
    parameters, seed) and kept as a ``teacher`` artifact (its module's weights), loaded by every later student."""
    from metarec.errors import ConfigError

    if not hasattr(method, "build_module"):
        raise ConfigError(f"teacher_method {method.name!r}: a teacher must be a Lightning method (its weights are "
                          f"kept as an artifact), e.g. mf-bpr")

    def rebuild():
        method.n_users, method.n_items = split.n_users, split.n_items
        method.module = method.build_module(split)

    meta = _teacher_artifact(method, split, seed, artifacts,
                             fit=lambda folder: method.fit(split, seed=seed, workdir=folder / "train"), rebuild=rebuild)
    return method, meta
