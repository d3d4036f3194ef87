"""Registered multi-task methods: ``mtl:single``, ``mtl:shared-bottom``, ``mtl:mmoe``, ``mtl:ple``.

All four share the task definitions (``tasks``), the two-tower ranking backbone, towers, losses and training loop;
only how a task's user and item vectors are built from shared parts differs (see ``models``). The main task
(interaction under ranking protocols, click under impressions; in multi-domain each item's own domain task) is what
``score``/``score_pairs`` return, so the shared evaluator ranks with it and early-stops on it; ``metarec.eval.tasks``
scores the other tasks' heads.
"""
from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch

from metarec.data.schema import ITEM, USER
from metarec.errors import ConfigError
from metarec.methods.base import as_user_tensor
from metarec.methods.classic.mf_bpr import IndexBatches
from metarec.methods.lightning import LightningMethod
from metarec.methods.multitask.models import WEIGHTINGS, MultiTaskModule, MultiTaskNet
from metarec.data.features import item_domains
from metarec.methods.multitask.tasks import BINARY, RANKING, REGRESSION, TaskData, main_task, resolve_tasks, side_info
from metarec.methods.registry import register
from metarec.methods.space import loguniform


class TaskDataModule(pl.LightningDataModule):
    """All tasks' labelled rows with a fresh negative each epoch (deterministic given the seed), in slices of one
    shuffled index (no per-sample collation: mf-bpr's data path)."""

    def __init__(self, data: TaskData, batch_size: int, seed: int):
        super().__init__()
        self.data, self.batch_size, self.seed, self.epoch = data, batch_size, seed, 0
        self.tensors = tuple(torch.from_numpy(a) for a in (data.users, data.items, data.labels, data.mask))

    def train_dataloader(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        neg = torch.from_numpy(self.data.negatives(rng))
        u, i, y, m = self.tensors
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        return IndexBatches((u, i, neg, y, m), self.batch_size, g)


class MultiTaskMethod(LightningMethod):
    family = "multitask"
    protocols = ("general", "impressions")
    arch = ""
    defaults = {**LightningMethod.defaults,
                "tasks": None,              # list of task names; None: every task the split can label (tasks.TASKS)
                "task_weights": None,       # {task: weight} or a list aligned with tasks; default 1 each
                # times every task weight but the main task's: the tunable balance between the ranking task and the
                # auxiliary ones (the relative weights among auxiliary tasks stay task_weights')
                "aux_weight": 1.0,
                "weighting": "fixed",       # fixed | uncertainty (Kendall et al. 2018) | pcgrad (Yu et al. 2020)
                "side_info": True,          # user age/gender/occupation, item genres/category/domain
                "dim": 64, "expert_hidden": [], "tower_hidden": [], "num_experts": 3, "task_experts": 1,
                "num_levels": 2, "dropout": 0.0, "like_threshold": 4.0,
                # mf-bpr's tuned optimiser settings and its training schedule (validation every epoch, patience 10)
                "lr": 4e-3, "weight_decay": 2e-5, "dense_weight_decay": 1e-2, "batch_size": 4096,
                "max_epochs": 500, "eval_every": 1, "patience": 10, "valid_metric": "auto"}
    # mf-bpr's two knobs over the same ranges, plus what only a multi-task network has. dense_weight_decay from 5e-3:
    # below ~3e-3 the side-field tables (shared by many users, updated every batch) learn group popularity before the
    # id embeddings learn anything, validation stalls at popularity's level and early stopping ends training (ml-100k
    # tuning split, lr 9.2e-4: 0.120 NDCG@10 at 2.6e-3, 0.246 at 1e-2; mf-bpr 0.248). aux_weight: at equal weights
    # the auxiliary losses (MSE on 1-5 ratings, cross-entropy) dwarf BPR's and shared networks rank at popularity's
    # level (one-seed probe: MMoE 0.149 NDCG@10 at 1:1:1, 0.285 at 0.1 on rating/like). dropout is not searched: it
    # acts between hidden layers, and the default experts and towers have none.
    # The dense_weight_decay range suits sides with side fields (ml-100k); where a side has only its id (amazon-office,
    # the MIND sample: their labels are tasks), the residual is a linear reparametrisation of the id embedding that
    # overfits below ~0.1, and benchmarks/multitask_amazon.yaml searches up to 1.0 (probe numbers there).
    search_space = {"lr": loguniform(5e-5, 1e-2), "weight_decay": loguniform(1e-8, 1e-4),
                    "dense_weight_decay": loguniform(5e-3, 1e-1), "aux_weight": loguniform(1e-3, 1.0)}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        if p["weighting"] not in WEIGHTINGS:
            raise ConfigError(f"method {self.name!r}: weighting must be one of {', '.join(WEIGHTINGS)}, "
                              f"got {p['weighting']!r}")
        for key in ("expert_hidden", "tower_hidden"):
            if not isinstance(p[key], (list, tuple)) or not all(isinstance(h, int) and h > 0 for h in p[key]):
                raise ConfigError(f"method {self.name!r}: {key} must be a list of positive layer widths "
                                  f"(empty: a linear map)")
        if p["tasks"] is not None and (isinstance(p["tasks"], str) or not isinstance(p["tasks"], (list, tuple))):
            raise ConfigError(f"method {self.name!r}: tasks must be a list of task names")

    def _weights(self) -> list[float]:
        w = self.params["task_weights"]
        names = [t.name for t in self.tasks]
        if w is None:
            return [1.0] * len(names)
        if isinstance(w, dict):
            unknown = sorted(set(w) - set(names))
            if unknown:
                raise ConfigError(f"task_weights names unknown task(s) {unknown}; tasks: {names}")
            out = [float(w.get(n, 1.0)) for n in names]
        else:
            if len(w) != len(names):
                raise ConfigError(f"task_weights has {len(w)} values for {len(names)} tasks {names}")
            out = [float(x) for x in w]
        if any(x < 0 or not np.isfinite(x) for x in out):
            raise ConfigError(f"task weights must be finite and >= 0, got {out}")
        return out

    def _scaled_weights(self) -> list[float]:
        """task_weights with every task but the main one(s) times ``aux_weight``."""
        out = self._weights()
        aux = float(self.params["aux_weight"])   # >= 0: checked with the parameters (params.COMMON_DOMAINS)
        main = main_task(self.tasks)
        out = [w if (t == main or (main is None and task.kind == RANKING)) else w * aux
               for t, (w, task) in enumerate(zip(out, self.tasks))]
        if not any(out):
            raise ConfigError("every task weight is 0: nothing to train")
        return out

    def fit(self, split, *, seed: int = 0, workdir=None):
        if self.params["valid_metric"] == "auto":
            self.params["valid_metric"] = "auc" if split.is_impressions else "ndcg@10"
        return super().fit(split, seed=seed, workdir=workdir)

    def build_module(self, split):
        p = self.params
        self.tasks = resolve_tasks(split, p["tasks"], float(p["like_threshold"]))
        self.like_threshold = float(p["like_threshold"])
        self.data = TaskData(split, self.tasks, self.like_threshold)
        side = side_info(split, self.tasks, use=bool(p["side_info"]))
        net = MultiTaskNet(self.arch, split.n_users, split.n_items, self.tasks, side, dim=int(p["dim"]),
                           expert_hidden=list(p["expert_hidden"]), tower_hidden=list(p["tower_hidden"]),
                           num_experts=int(p["num_experts"]), task_experts=int(p["task_experts"]),
                           num_levels=int(p["num_levels"]), dropout=float(p["dropout"]))
        main = main_task(self.tasks)
        dom = item_domains(split)
        item_domain = user_domains = None
        if main is None:
            item_domain = dom[0]
            user_domains = np.zeros((split.n_users, len(dom[1])), dtype=bool)
            uf = split.user_features
            if uf is not None and "domain" in uf.columns and len(uf) == split.n_users:  # combine() records it
                index = {d: k for k, d in enumerate(dom[1])}
                known = uf["domain"].map(index)
                ok = known.notna().to_numpy()
                user_domains[np.nonzero(ok)[0], known[ok].astype(np.int64).to_numpy()] = True
            tr = split.train
            user_domains[tr[USER].to_numpy(), item_domain[tr[ITEM].to_numpy()]] = True
        return MultiTaskModule(net, self.tasks, self._scaled_weights(), p["weighting"], float(p["lr"]),
                               float(p["weight_decay"]), self.data.rating_mean, main, split.n_items,
                               float(p["dense_weight_decay"]), item_domain=item_domain, user_domains=user_domains)

    def build_datamodule(self, split, seed):
        return TaskDataModule(self.data, int(self.params["batch_size"]), seed)

    # ---- predictions beyond score() ------------------------------------------------------------------------
    @torch.no_grad()
    def _pairs(self, fn, users, items, chunk: int = 1 << 16):
        users = as_user_tensor(users).to(self.module.device)
        items = as_user_tensor(items).to(self.module.device)
        outs = [fn(users[lo:lo + chunk], items[lo:lo + chunk]) for lo in range(0, len(users), chunk)]
        return outs

    def score_pairs(self, users, items) -> torch.Tensor:
        outs = self._pairs(self.module.pair_scores, users, items)
        return torch.cat(outs) if outs else torch.zeros(0)

    def predict_tasks(self, users, items) -> dict[str, torch.Tensor]:
        """Every task's prediction for aligned (user, item) pairs: binary -> probability [n], regression -> value
        [n], multiclass -> class logits [n, C]."""
        chunks = self._pairs(lambda u, i: self.module.outputs(u, i), users, items)
        out = {}
        for t, task in enumerate(self.tasks):
            parts = [c[t] for c in chunks]
            if not parts:
                v = torch.zeros((0, task.n_classes) if task.n_classes > 1 else 0)
            else:
                v = torch.cat(parts)
            out[task.name] = torch.sigmoid(v) if task.kind == BINARY else v   # ranking tasks: the raw score
        return out

    def predict_rating(self, users, items) -> torch.Tensor:
        if not any(t.kind == REGRESSION for t in self.tasks):
            raise ConfigError(f"method {self.name!r} was trained without a rating task")
        return self.predict_tasks(users, items)["rating"]

    def gate_weights(self, users, items) -> dict[str, list[torch.Tensor]]:
        with torch.no_grad():
            return self.module.net.gate_weights(as_user_tensor(users), as_user_tensor(items))


@register("mtl:single")
class SingleTask(MultiTaskMethod):
    """One independent network per task (own embeddings, bottom and tower), trained side by side."""
    arch = "single"
    # no shared parameter: an auxiliary task's weight cannot change the main task's model (Adam is per parameter)
    search_space = {k: v for k, v in MultiTaskMethod.search_space.items() if k != "aux_weight"}
    # tuned on ml-100k (results/multitask/tables/tuning.md; 3 significant digits)
    defaults = {**MultiTaskMethod.defaults, "lr": 9.16e-4, "weight_decay": 7.26e-6, "dense_weight_decay": 0.0304}


@register("mtl:shared-bottom")
class SharedBottom(MultiTaskMethod):
    """Shared-bottom multi-task network (Caruana 1997): one shared bottom MLP, one tower per task."""
    arch = "shared-bottom"
    defaults = {**MultiTaskMethod.defaults, "lr": 5.04e-4, "weight_decay": 1.27e-8, "dense_weight_decay": 0.0259,
                "aux_weight": 0.0202}   # tuned on ml-100k (results/multitask/tables/tuning.md)


@register("mtl:mmoe")
class MMoE(MultiTaskMethod):
    """Multi-gate mixture of experts (Ma et al., KDD 2018): shared experts, one softmax gate per task."""
    arch = "mmoe"
    defaults = {**MultiTaskMethod.defaults, "lr": 9.16e-4, "weight_decay": 7.26e-6, "dense_weight_decay": 0.0304,
                "aux_weight": 0.0431}   # tuned on ml-100k (results/multitask/tables/tuning.md)


@register("mtl:ple")
class PLE(MultiTaskMethod):
    """Progressive layered extraction (Tang et al., RecSys 2020): task-specific and shared experts, in levels."""
    arch = "ple"
    defaults = {**MultiTaskMethod.defaults, "lr": 4.56e-4, "weight_decay": 7.61e-6, "dense_weight_decay": 5.0e-3,
                "aux_weight": 8.07e-3}   # tuned on ml-100k (results/multitask/tables/tuning.md)
