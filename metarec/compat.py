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
    # gym prints a deprecation banner to stderr on import (learn2learn imports gym, and metarec uses none of gym):
    # the banner text comes from the gym_notices package, so emptying its table before gym loads silences it.
    try:
        import gym_notices.notices as gym_notices

        gym_notices.notices.clear()
    except ImportError:
        pass
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

        # only modules that bind ``torch`` at import time (recbole 1.2.1: the trainer; quick_start imports it locally)
        saved = [(m, m.torch) for m in (tr, qs) if hasattr(m, "torch")]
        for m, _ in saved:
            m.torch = proxy
        try:
            yield
        finally:
            for m, original in saved:
                m.torch = original

    return _ctx()


# ---- RecBole run-time context (used by metarec.methods.recbole) ------------------------------------------------------
_NUMPY_BUILTIN_ALIASES = ("bool", "int", "float", "complex", "object", "str", "long", "unicode")


def recbole_runtime(device: str = "cpu"):
    """Context manager around every call into RecBole (config, dataset, training, scoring). Inside it, and only there:

    * ``torch.load`` defaults to ``weights_only=False`` for RecBole's own checkpoints (see ``recbole_torch_load``).
    * numpy has the builtin aliases ``np.float``/``np.bool``/``np.int``/... that numpy 1.24 removed and RecBole 1.2.1
      still uses (its NDCG/MRR/MAP metrics: ``dtype=np.float``; GAUC: ``np.bool``; Interaction: ``np.float``).
      RecBole's ``Config`` installs them process-wide (``Config.compatibility_settings``); on exit numpy's namespace
      is restored to what it was, so code outside RecBole never sees them.
    * ``Config._init_device`` is replaced: RecBole's writes ``CUDA_VISIBLE_DEVICES`` into the process environment
      (``gpu_id: ''`` for CPU hides every GPU from all later CUDA use in the process). Ours sets only
      ``config['device']`` from the ``device`` config key (else the ``device`` argument); the environment is untouched.
    * ``Config._load_cmd_line`` returns nothing: RecBole reads every ``--key=value`` in ``sys.argv`` as a top-priority
      config override, but under metarec the command line belongs to metarec (or pytest), e.g. ``--metrics=...``.
    * ``Pop.calculate_loss`` counts every occurrence of an item in a batch. RecBole 1.2.1 writes
      ``item_cnt[item] = item_cnt[item] + 1``, which counts an item once per batch however often it occurs, so its
      "popularity" depends on train_batch_size (RecBole issues #1844, #2198; the fix here is that of PR #2199,
      ``scatter_add``/``index_add``).
    * RecBole's deprecation warnings about its own pandas/torch calls (and ray's pkg_resources notice) are silenced.
    """
    import numpy as np
    import torch

    def _init_device(self):
        d = self.final_config_dict.get("device") or device
        dev = d if isinstance(d, torch.device) else torch.device(d)
        self.final_config_dict["gpu_id"] = str(self.final_config_dict.get("gpu_id", ""))
        self.final_config_dict["single_spec"] = True
        self.final_config_dict["local_rank"] = 0
        self.final_config_dict["device"] = dev
        self.final_config_dict["use_gpu"] = dev.type == "cuda"

    def _pop_calculate_loss(self, interaction):
        item = interaction[self.ITEM_ID]
        self.item_cnt.index_add_(0, item, torch.ones((len(item), 1), dtype=self.item_cnt.dtype,
                                                     device=self.item_cnt.device))
        self.max_cnt = torch.max(self.item_cnt, dim=0)[0]
        return torch.nn.Parameter(torch.zeros(1)).to(self.device)

    @contextlib.contextmanager
    def _ctx():
        from recbole.config.configurator import Config
        from recbole.model.general_recommender.pop import Pop

        missing = object()
        saved_np = {name: np.__dict__.get(name, missing) for name in _NUMPY_BUILTIN_ALIASES}
        saved_cls = [(Config, "_init_device", Config.__dict__["_init_device"]),
                     (Config, "_load_cmd_line", Config.__dict__["_load_cmd_line"]),
                     (Pop, "calculate_loss", Pop.__dict__["calculate_loss"])]
        try:
            for name, target in (("bool", np.bool_), ("int", np.int_), ("float", np.float64),
                                 ("complex", np.complex128), ("object", np.object_), ("str", np.str_),
                                 ("long", np.int_), ("unicode", np.str_)):
                setattr(np, name, target)
            Config._init_device = _init_device
            Config._load_cmd_line = lambda self: {}
            Pop.calculate_loss = _pop_calculate_loss
            with warnings.catch_warnings():
                # RecBole 1.2.1 on pandas 2 / torch 2: deprecation warnings about its own calls (inplace fillna,
                # torch.cuda.amp.GradScaler, torch.sparse.FloatTensor) that say nothing about the run; ray
                # (imported by recbole.quick_start) warns that pkg_resources is deprecated
                warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
                warnings.filterwarnings("ignore", message=r"torch\.sparse\.SparseTensor", module=r"recbole\.")
                warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated")
                with recbole_torch_load():
                    yield
        finally:
            for cls, attr, value in saved_cls:
                setattr(cls, attr, value)
            for name, value in saved_np.items():
                if value is missing:
                    np.__dict__.pop(name, None)
                else:
                    setattr(np, name, value)

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
