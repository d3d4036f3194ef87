"""MeLU-style meta-learned *rating* recommenders on the ``cold_start`` protocol: each meta-train user is a task.

The rating variant of the family (MeLU, Lee et al. KDD 2019: MAE/RMSE on the query ratings); the ranking variant,
scored over the full catalogue, is ``ranking.py`` (``meta:*``).

    melu:maml      MAML, second order       learn2learn.algorithms.MAML(first_order=False) around the local layers
    melu:fomaml    first-order MAML         learn2learn.algorithms.MAML(first_order=True)
    melu:reptile   Reptile                  learn2learn.clone_module / update_module: k SGD steps on the task's data,
                                            then the local layers move toward the adapted weights
    melu:finetune  global model, then fine-tuned on each cold user's support set (the honest baseline)
    melu:global    the same global model without adaptation

One network (``model.MeLUNet``), one adaptation routine. At evaluation every method except ``melu:global`` runs
exactly the same ``inner_steps`` SGD steps with the same ``inner_lr`` on the same parameters (``local``) of each
user's support set, so meta-learners and the fine-tuned global model differ only in the initialisation they
adapt from. Training: meta-learners draw episodes (a support and a query set sampled from one meta-train user's
history, of the protocol's ``k_shot`` / ``n_query`` sizes unless ``train_support`` / ``train_query`` say otherwise),
``tasks_per_batch`` tasks per outer step; the global model is trained by ordinary mini-batch regression on all
meta-train interactions. All are LightningModules with manual optimisation.

Loss: ``mse`` on ratings (MeLU) or ``bce`` on implicit feedback (``n_neg`` uniform negatives per positive, which
may rarely hit a positive); ``auto`` = mse when the split has a rating column. Scores for ranking = the adapted
model's prediction for every item.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.utils.data import DataLoader, TensorDataset

import learn2learn as l2l
from learn2learn.algorithms import MAML

from metarec.data.schema import ITEM, RATING, USER
from metarec.errors import ConfigError, TrainingError
from metarec.methods.base import as_user_tensor
from metarec.methods.lightning import FiniteLossGuard, LightningMethod
from metarec.methods.meta.model import LOCAL_CHOICES, build_net, split_stages
from metarec.methods.registry import register
from metarec.methods.space import loguniform

ALGORITHMS = ("maml", "fomaml", "reptile", "finetune", "global")
META_ALGORITHMS = ("maml", "fomaml", "reptile")


class UserHistories:
    """Meta-train interactions grouped by user (CSR), with targets; users with < 2 interactions are no task."""

    def __init__(self, frame: pd.DataFrame, target: str):
        order = np.argsort(frame[USER].to_numpy(), kind="stable")
        u = frame[USER].to_numpy()[order].astype(np.int64)
        self.items = frame[ITEM].to_numpy()[order].astype(np.int64)
        self.y = (frame[RATING].to_numpy()[order] if target == "rating" else np.ones(len(u))).astype(np.float32)
        self.users, start, counts = np.unique(u, return_index=True, return_counts=True)
        self.start = dict(zip(self.users.tolist(), start.tolist()))
        self.count = dict(zip(self.users.tolist(), counts.tolist()))
        self.task_users = self.users[counts >= 2]

    def rows(self, user: int) -> tuple[np.ndarray, np.ndarray]:
        s, c = self.start[user], self.count[user]
        return self.items[s:s + c], self.y[s:s + c]


class TaskDataModule(pl.LightningDataModule):
    """Meta-learners: batches of task (user) ids, reshuffled each epoch."""

    def __init__(self, users: np.ndarray, tasks_per_batch: int, seed: int):
        super().__init__()
        self.users, self.batch, self.seed, self.epoch = users, tasks_per_batch, seed, 0

    def train_dataloader(self):
        g = torch.Generator().manual_seed(int(self.seed) * 100003 + self.epoch)
        self.epoch += 1
        return DataLoader(TensorDataset(torch.from_numpy(self.users)), batch_size=self.batch, shuffle=True,
                          generator=g)


class PointDataModule(pl.LightningDataModule):
    """Global model: mini-batches of (user, item, target) over all meta-train interactions (+ negatives for bce)."""

    def __init__(self, split, batch_size: int, seed: int, loss: str, n_neg: int):
        super().__init__()
        self.u = split.train[USER].to_numpy(np.int64)
        self.i = split.train[ITEM].to_numpy(np.int64)
        self.y = split.train[RATING].to_numpy(np.float32) if loss == "mse" else np.ones(len(self.u), np.float32)
        self.n_items, self.loss, self.n_neg = split.n_items, loss, n_neg
        self.batch, self.seed, self.epoch = batch_size, seed, 0

    def train_dataloader(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        u, i, y = self.u, self.i, self.y
        if self.loss == "bce":
            neg_u = np.repeat(u, self.n_neg)
            neg_i = rng.integers(0, self.n_items, size=len(neg_u))
            u, i = np.concatenate([u, neg_u]), np.concatenate([i, neg_i])
            y = np.concatenate([y, np.zeros(len(neg_u), np.float32)])
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        ds = TensorDataset(torch.from_numpy(u), torch.from_numpy(i), torch.from_numpy(y))
        return DataLoader(ds, batch_size=self.batch, shuffle=True, generator=g)


class MetaRecModule(FiniteLossGuard, pl.LightningModule):
    """Global (meta-learned) part + local (adapted) part of a MeLUNet, trained with manual optimisation."""

    def __init__(self, net, algorithm: str, local: str, loss: str, inner_steps: int, inner_lr: float,
                 outer_lr: float, n_items: int, histories: UserHistories | None = None, train_support: int = 10,
                 train_query: int = 10, n_neg: int = 4, seed: int = 0):
        super().__init__()
        self.automatic_optimization = False
        self.global_part, self.local_part = split_stages(net, local)
        self.algorithm, self.local, self.loss_name = algorithm, local, loss
        self.inner_steps, self.inner_lr, self.outer_lr = int(inner_steps), float(inner_lr), float(outer_lr)
        self.n_items, self.n_neg, self.seed = n_items, int(n_neg), int(seed)
        self.train_support, self.train_query = int(train_support), int(train_query)
        self.__dict__["histories"] = histories  # plain attribute: data, not state
        # the learn2learn wrapper shares the local part's parameters; kept out of the module tree (no duplicate
        # state_dict keys)
        self.__dict__["maml"] = MAML(self.local_part, lr=self.inner_lr, first_order=(algorithm != "maml"))

    # ---- the network -----------------------------------------------------------------------------------------
    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        return self.local_part(self.global_part(pairs)).squeeze(-1)

    def loss_fn(self, pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "mse":
            return F.mse_loss(pred, y)
        return F.binary_cross_entropy_with_logits(pred, y)

    def local_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.local_part.parameters())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.outer_lr)

    # ---- adaptation (shared by every method at evaluation) ---------------------------------------------------
    def adapted_learner(self, pairs: torch.Tensor, y: torch.Tensor, steps: int | None = None,
                        first_order: bool = True):
        """A learn2learn clone of the local part after ``steps`` SGD steps (lr ``inner_lr``) on (pairs, y).

        ``first_order=True`` (evaluation): the global features are detached and no second-order graph is kept."""
        steps = self.inner_steps if steps is None else steps
        h = self.global_part(pairs)
        if first_order:
            h = h.detach()
        learner = self.maml.clone(first_order=first_order)
        for _ in range(steps):
            learner.adapt(self.loss_fn(learner(h).squeeze(-1), y), first_order=first_order)
        return learner

    @torch.no_grad()
    def predict_all(self, user: int, learner=None) -> torch.Tensor:
        """[n_items] predictions of ``user`` for every item, with the (adapted) local part ``learner``."""
        items = torch.arange(self.n_items, device=self.device)
        pairs = torch.stack([torch.full_like(items, user), items], 1)
        h = self.global_part(pairs)
        return (learner if learner is not None else self.local_part)(h).squeeze(-1)

    def adapt_user(self, user: int, items: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            pairs = torch.stack([torch.full_like(items, user), items], 1)
            learner = self.adapted_learner(pairs, y)
        out = self.predict_all(user, learner).detach()
        del learner
        return out

    # ---- training --------------------------------------------------------------------------------------------
    def _episodes(self, users: torch.Tensor, rng: np.random.Generator):
        """(support pairs, support y, query pairs, query y) per task: a random subset of the user's history."""
        out = []
        for u in users.tolist():
            items, y = self.histories.rows(u)
            n = len(items)
            perm = rng.permutation(n)
            n_s = min(self.train_support, max(1, n - 1))
            n_q = min(self.train_query, n - n_s)
            s, q = perm[:n_s], perm[n_s:n_s + n_q]
            parts = []
            for idx in (s, q):
                it, yy = items[idx], y[idx]
                if self.loss_name == "bce":  # negatives: uniform items, label 0
                    neg = rng.integers(0, self.n_items, size=len(idx) * self.n_neg)
                    it = np.concatenate([it, neg])
                    yy = np.concatenate([yy, np.zeros(len(neg), np.float32)])
                pairs = torch.from_numpy(np.stack([np.full(len(it), u), it], 1).astype(np.int64)).to(self.device)
                parts += [pairs, torch.from_numpy(yy.astype(np.float32)).to(self.device)]
            out.append(tuple(parts))
        return out

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        opt.zero_grad()
        if self.algorithm in META_ALGORITHMS:
            rng = np.random.default_rng([self.seed, self.current_epoch, batch_idx])
            episodes = self._episodes(batch[0], rng)
            total = self._reptile(episodes) if self.algorithm == "reptile" else self._maml(episodes)
        else:
            u, i, y = batch
            loss = self.loss_fn(self(torch.stack([u, i], 1)), y)
            self.check_finite(loss)
            self.manual_backward(loss)
            total = loss.detach()
        self.check_finite(total)
        opt.step()
        self.log("train/loss", total, on_step=False, on_epoch=True, prog_bar=True)

    def _maml(self, episodes) -> torch.Tensor:
        """Outer loss = mean query loss after adaptation; one backward per task (graphs freed task by task)."""
        total = torch.zeros(())
        second_order = self.algorithm == "maml"
        for xs, ys, xq, yq in episodes:
            learner = self.adapted_learner(xs, ys, first_order=not second_order)
            lq = self.loss_fn(learner(self.global_part(xq)).squeeze(-1), yq) / len(episodes)
            self.check_finite(lq)
            self.manual_backward(lq)
            total = total + lq.detach()
        return total

    def _reptile(self, episodes) -> torch.Tensor:
        """Reptile: clone the local part (learn2learn.clone_module), k SGD steps on the task's data
        (update_module), meta-gradient of the local part = mean(theta - phi); the global part (not adapted) gets
        the query-loss gradient at the adapted weights (first order)."""
        local = self.local_parameters()
        direction = [torch.zeros_like(p) for p in local]
        has_global = any(True for _ in self.global_part.parameters())
        total = torch.zeros(())
        for xs, ys, xq, yq in episodes:
            x, y = torch.cat([xs, xq]), torch.cat([ys, yq])
            h = self.global_part(x).detach()
            clone = l2l.clone_module(self.local_part)
            for _ in range(self.inner_steps):
                loss = self.loss_fn(clone(h).squeeze(-1), y)
                grads = torch.autograd.grad(loss, list(clone.parameters()))
                clone = l2l.update_module(clone, updates=[-self.inner_lr * g for g in grads])
            phi = {name: p.detach() for name, p in clone.named_parameters()}
            for d, p, q in zip(direction, local, phi.values()):
                d += (p.detach() - q) / len(episodes)
            lq = self.loss_fn(functional_call(self.local_part, phi, (self.global_part(xq),)).squeeze(-1), yq)
            self.check_finite(lq)
            if has_global:
                self.manual_backward(lq / len(episodes))
            total = total + lq.detach() / len(episodes)
        for p, d in zip(local, direction):
            p.grad = d if p.grad is None else p.grad + d
        return total


class _MetaBase(LightningMethod):
    family = "meta"
    protocols = ("cold_start",)
    algorithm = "maml"
    defaults = {**LightningMethod.defaults,
                "dim": 32, "hidden": 64,
                "local": "decision",           # adapted parameters: decision (MeLU) | out | all
                "loss": "auto",                # mse (ratings) | bce (implicit) | auto
                "inner_steps": 5, "inner_lr": 0.05, "outer_lr": 1e-3,
                "tasks_per_batch": 32,         # meta-learners: tasks per outer step
                "batch_size": 256,             # global model: interactions per step
                "train_support": None, "train_query": None,  # episode sizes (default: the protocol's k_shot/n_query)
                "n_neg": 4,
                "item_ids": None,              # learned item-id embedding: None = only without item features
                "max_epochs": 30, "eval_every": 5, "patience": 2}
    # the adaptation budget (inner_steps, support size) is the protocol's and stays fixed; the learning rates and
    # the network's width are searched (melu:global has no inner loop: its space drops inner_lr)
    search_space = {"outer_lr": loguniform(1e-4, 1e-2), "inner_lr": loguniform(1e-3, 0.5), "dim": [16, 32, 64],
                    "hidden": [32, 64, 128]}

    def __init__(self, **params):
        super().__init__(**params)
        p = self.params
        if p["local"] not in LOCAL_CHOICES:
            raise ConfigError(f"method {self.name!r}: local must be one of {', '.join(LOCAL_CHOICES)}, "
                              f"got {p['local']!r}")
        if p["loss"] not in ("auto", "mse", "bce"):
            raise ConfigError(f"method {self.name!r}: loss must be auto, mse or bce, got {p['loss']!r}")
        for key in ("inner_steps", "tasks_per_batch", "batch_size", "dim", "hidden"):
            if int(p[key]) < (0 if key == "inner_steps" else 1):
                raise ConfigError(f"method {self.name!r}: {key} must be positive, got {p[key]!r}")
        self.adapted: dict[int, torch.Tensor] = {}

    def _loss(self, split) -> str:
        loss = self.params["loss"]
        if loss == "auto":
            loss = "mse" if RATING in split.train.columns else "bce"
        if loss == "mse" and RATING not in split.train.columns:
            raise ConfigError(f"method {self.name!r}: loss 'mse' needs ratings; {split.dataset} has none (use bce)")
        return loss

    def build_module(self, split):
        if split.protocol != "cold_start":
            raise ConfigError(f"method {self.name!r} runs on the cold_start protocol, not {split.protocol!r}")
        p = self.params
        self.loss = self._loss(split)
        bias = float(split.train[RATING].mean()) if self.loss == "mse" else 0.0
        net = build_net(split, int(p["dim"]), int(p["hidden"]), init_bias=bias, item_ids=p["item_ids"])
        self.histories = UserHistories(split.train, "rating" if self.loss == "mse" else "one")
        if not len(self.histories.task_users):
            raise TrainingError("cold_start split: no meta-train user has 2 or more interactions")
        k = int(p["train_support"] or split.params.get("k_shot", 10))
        q = int(p["train_query"] or split.params.get("n_query", 10))
        self.adapted = {}
        return MetaRecModule(net, self.algorithm, p["local"], self.loss, int(p["inner_steps"]), float(p["inner_lr"]),
                             float(p["outer_lr"]), split.n_items, self.histories, k, q, int(p["n_neg"]),
                             seed=self._seed)

    def fit(self, split, *, seed=0, workdir=None):
        self._seed = seed
        return super().fit(split, seed=seed, workdir=workdir)

    def build_datamodule(self, split, seed):
        if self.algorithm in META_ALGORITHMS:
            return TaskDataModule(self.histories.task_users, int(self.params["tasks_per_batch"]), seed)
        return PointDataModule(split, int(self.params["batch_size"]), seed, self.loss, int(self.params["n_neg"]))

    # ---- cold start ------------------------------------------------------------------------------------------
    def adapt(self, support: pd.DataFrame) -> None:
        """Adapt a copy of the local layers to each support user; keep the resulting per-user item scores."""
        self.adapted = {}
        if self.algorithm == "global" or support is None or not len(support):
            return None
        m = self.module
        was_training = m.training
        m.eval()
        col = RATING if self.loss == "mse" else None
        for u, g in support.groupby(USER, sort=True):
            items = torch.as_tensor(g[ITEM].to_numpy(np.int64), device=m.device)
            if col is not None:
                y = torch.as_tensor(g[col].to_numpy(np.float32), device=m.device)
            else:  # implicit support: positives + sampled negatives, deterministic per user
                rng = np.random.default_rng([self._seed, int(u)])
                neg = torch.as_tensor(rng.integers(0, self.n_items, size=len(items) * m.n_neg), device=m.device)
                items = torch.cat([items, neg])
                y = torch.cat([torch.ones(len(g)), torch.zeros(len(neg))]).to(m.device)
            self.adapted[int(u)] = m.adapt_user(int(u), items, y)
        m.train(was_training)
        return None

    @torch.no_grad()
    def score(self, users) -> torch.Tensor:
        users = as_user_tensor(users)
        rows = [self.adapted[u] if u in self.adapted else self.module.predict_all(u) for u in users.tolist()]
        if not rows:
            return torch.zeros((0, self.n_items))
        return torch.stack(rows).cpu()

    def _predict_rating(self, users, items) -> torch.Tensor:
        users, items = as_user_tensor(users), torch.as_tensor(np.asarray(items), dtype=torch.long)
        uniq, inv = torch.unique(users, return_inverse=True)
        full = self.score(uniq)
        return full[inv, items]

    @property
    def predict_rating(self):
        """Rating predictions (mse models only; None for implicit-feedback models, so MAE/RMSE are skipped)."""
        return self._predict_rating if getattr(self, "loss", None) == "mse" else None


@register("melu:maml")
class MetaMAML(_MetaBase):
    """MAML (Finn et al., 2017), second order, through learn2learn.algorithms.MAML."""
    algorithm = "maml"


@register("melu:fomaml")
class MetaFOMAML(_MetaBase):
    """First-order MAML: learn2learn.algorithms.MAML(first_order=True)."""
    algorithm = "fomaml"


@register("melu:reptile")
class MetaReptile(_MetaBase):
    """Reptile (Nichol et al., 2018) on learn2learn's clone_module / update_module."""
    algorithm = "reptile"


@register("melu:finetune")
class MetaFinetune(_MetaBase):
    """The global model fine-tuned on each cold user's support set: same steps, lr and parameters as the
    meta-learners' adaptation. Family 'baseline' so the report tests the meta-learners against it."""
    algorithm = "finetune"
    family = "baseline"
    defaults = {**_MetaBase.defaults, "max_epochs": 10, "eval_every": 2}


@register("melu:global")
class MetaGlobal(_MetaBase):
    """The global model without adaptation (the cold user's support set is ignored)."""
    algorithm = "global"
    family = "baseline"
    defaults = {**_MetaBase.defaults, "max_epochs": 10, "eval_every": 2}
    search_space = {k: v for k, v in _MetaBase.search_space.items() if k != "inner_lr"}
