"""The one place for third-party compatibility shims.

The pinned stack (see requirements/base.txt) imports together, but RecBole 1.2.1 predates a few upstream changes.
Each shim below is small, idempotent and names the exact incompatibility it covers. ``apply()`` runs on
``import metarec`` so every entry point (CLI, tests, benchmarks, plugins) sees the same behaviour.
"""
from __future__ import annotations

import contextlib
import os
import types
import warnings

_APPLIED = False


def _numpy_aliases() -> None:
    # RecBole 1.2.1 uses np.float_ / np.bool8 style aliases removed in NumPy 2. We pin numpy<2, but keep the
    # aliases defined so that a user who upgrades numpy gets RecBole working rather than an AttributeError.
    import numpy as np

    for alias, target in (("float_", np.float64), ("int_", np.int64), ("bool8", np.bool_)):
        if not hasattr(np, alias):
            setattr(np, alias, target)


def _scipy_dok_update() -> None:
    # scipy >= 1.13 removed dok_matrix._update, which RecBole's LightGCN/NGCF/NCL/SpectralCF/GCMC call to fill
    # the normalised adjacency matrix in one go. The dok's storage is the dict ``_dict``: update it directly.
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):
        def _update(self, data):
            self._dict.update(data)

        sp.dok_matrix._update = _update


def _quiet_third_party() -> None:
    # gym prints a deprecation banner on import (learn2learn imports gym); it is noise, not information.
    os.environ.setdefault("GYM_DISABLE_WARNINGS", "1")
    warnings.filterwarnings("ignore", message=".*Gym has been unmaintained.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="gym")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*GPU available but not used.*")


def recbole_torch_load():
    """Context manager: RecBole's trainer reloads its own best checkpoint with ``torch.load(path)``. Since torch 2.6
    ``weights_only`` defaults to True and that checkpoint (config + optimizer state) no longer loads. Only while
    RecBole runs, its modules see a ``torch`` whose ``load`` defaults to ``weights_only=False``; the global torch
    is untouched, so no other code loses the safer default. The files loaded are ones RecBole just wrote.
    """
    import torch

    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(*args, **kwargs)

    proxy = types.SimpleNamespace(**{k: getattr(torch, k) for k in dir(torch) if not k.startswith("__")})
    proxy.load = load

    @contextlib.contextmanager
    def _ctx():
        import recbole.quick_start.quick_start as qs
        import recbole.trainer.trainer as tr

        saved = (tr.torch, qs.torch)
        tr.torch = qs.torch = proxy
        try:
            yield
        finally:
            tr.torch, qs.torch = saved

    return _ctx()


def offline_hub() -> None:
    """No run-time downloads: pretrained weights come from installed packages only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    _numpy_aliases()
    _scipy_dok_update()
    _quiet_third_party()
    offline_hub()
    _APPLIED = True


apply()
