"""Cold-start *ranking*: meta-learners and the baselines they must beat, on one full-catalogue ranking model.

    meta:maml      MAML (Finn et al. 2017), second order: learn2learn.algorithms.MAML around the cold user's vector
    meta:fomaml    first-order MAML: the same wrapper with first_order=True
    meta:reptile   Reptile (Nichol et al. 2018): learn2learn.clone_module / update_module, the initialisation moves
                   toward the adapted vectors
    meta:global    the global model (softmax matrix factorisation of the warm users), a cold user gets the shared
                   initial vector and no adaptation
    meta:finetune  the global model, then ``inner_steps`` SGD steps at ``inner_lr`` on the cold user's support
    meta:foldin    the global model's item factors fixed, the cold user's vector fitted on the support to
                   convergence (L-BFGS on a strictly convex objective: the exact fold-in, with an L2 pull toward the
                   initial vector of strength ``foldin_reg``)
    meta:itemknn   (``knn.py``) item-based kNN from the support items

The model (``ColdRankNet``) scores every item for a user vector p: ``s(i) = <p, q_i> + b_i`` with
``q_i`` = item id embedding + mean of the item's feature embeddings (genres, year, category, brand: what the data has),
and a cold user's initial vector ``p0(u) = w0 + sum of the user's feature embeddings`` (age, gender, occupation,
zip region where the data has them; else w0 alone). The objective is the multinomial likelihood of a user's items
under a softmax over the whole catalogue (Liang et al. 2018): for a positive i, ``-log softmax(s)_i`` — every
other item is a negative, so no negative sampler is needed and none can hit a positive. Per user the loss is the
mean over its positives.

Adaptation (every method but meta:global) changes only the user's vector: ``inner_steps`` steps of plain SGD at
``inner_lr`` on the support items' likelihood, all users of a batch at once (the objective is a sum of per-user
terms, so one gradient holds every user's own step). Meta-training draws episodes from warm users: a support of
``train_support`` (default: the protocol's k_shot) and a query of ``train_query`` of the user's items at random; the
query's softmax leaves the support items out, as the evaluator masks them at test time. Items without any train
interaction (the new items of the new-item protocol) have no id embedding or bias, only their features, and every
training and adaptation softmax leaves them out (unless one is the target): there they could only be negatives, and
a model taught that new items are never chosen cannot rank them. The meta-learned parameters
are everything global (item factors and biases, w0, feature embeddings); the global model additionally learns an own
vector per warm user (``p0(u) + e_u``), which a cold user does not have.
"""
from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

import learn2learn as l2l
from learn2learn.algorithms import MAML

from metarec.data.schema import ITEM, USER
from metarec.errors import ConfigError, TrainingError
from metarec.methods.base import as_user_tensor
from metarec.methods.classic.mf_bpr import IndexBatches
from metarec.methods.lightning import FiniteLossGuard, LightningMethod
from metarec.methods.meta.model import ITEM_COLUMNS, USER_COLUMNS, feature_codes
from metarec.methods.registry import register
from metarec.methods.space import integer, loguniform

META = ("maml", "fomaml", "reptile")
ADAPTS = ("maml", "fomaml", "reptile", "finetune", "foldin")


class FieldBags(nn.Module):
    """Categorical fields of one side -> the sum over fields of each field's mean bag embedding, [B, dim]."""

    def __init__(self, fields: dict[str, np.ndarray], dim: int):
        super().__init__()
        self.names = list(fields)
        self.tables = nn.ModuleDict()
        for name, codes in fields.items():
            self.register_buffer(f"codes_{name}", torch.from_numpy(codes), persistent=False)
            self.tables[name] = nn.Embedding(int(codes.max()) + 1, dim, padding_idx=0)
            nn.init.normal_(self.tables[name].weight, std=0.01)
            with torch.no_grad():
                self.tables[name].weight[0].zero_()

    def forward(self, rows: torch.Tensor) -> torch.Tensor | None:
        out = None
        for name in self.names:
            codes = getattr(self, f"codes_{name}")[rows]                         # [B, L], 0 = padding
            n = (codes > 0).sum(1, keepdim=True).clamp_min(1)
            v = self.tables[name](codes).sum(1) / n
            out = v if out is None else out + v
        return out


class ColdRankNet(nn.Module):
    """Item factors and biases, the initial user vector w0 (+ user feature embeddings), and for the global model an
    own vector per warm user."""

    def __init__(self, n_users: int, n_items: int, dim: int, user_fields: dict, item_fields: dict,
                 own_users: bool, seen: np.ndarray | None = None):
        super().__init__()
        # items with a train interaction: the others (new items) keep no id embedding or bias, only their features,
        # and are left out of every training softmax, where they could only ever be negatives
        seen = np.ones(n_items, dtype=bool) if seen is None else np.asarray(seen, dtype=bool)
        self.register_buffer("seen", torch.from_numpy(seen), persistent=False)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_normal_(self.item.weight)
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.item_feats = FieldBags(item_fields, dim) if item_fields else None
        self.w0 = nn.Parameter(torch.zeros(dim))
        self.user_feats = FieldBags(user_fields, dim) if user_fields else None
        self.own = None
        if own_users:
            self.own = nn.Embedding(n_users, dim)
            nn.init.xavier_normal_(self.own.weight)
        self.register_buffer("all_items", torch.arange(n_items), persistent=False)

    def items(self) -> tuple[torch.Tensor, torch.Tensor]:
        seen = self.seen.to(self.item.weight.dtype)
        q = self.item.weight * seen[:, None]
        if self.item_feats is not None:
            q = q + self.item_feats(self.all_items)
        return q, self.item_bias * seen

    def init_users(self, users: torch.Tensor) -> torch.Tensor:
        """The shared starting vector of each user ([B, dim]): w0 + the user's feature embeddings."""
        p = self.w0.expand(len(users), -1)
        if self.user_feats is not None:
            p = p + self.user_feats(users)
        return p


class UserVectors(nn.Module):
    """The adapted parameters as a module (what learn2learn's MAML wraps): one vector per user of the batch."""

    def __init__(self, init: torch.Tensor):
        super().__init__()
        self.P = nn.Parameter(init)

    def forward(self, q: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.P @ q.T + b


def support_loss(logits: torch.Tensor, targets: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Per-user mean of -log softmax over the catalogue at the user's ``targets`` (bool [B, n]); ``exclude`` (bool
    [B, n]) leaves items out of the softmax. Returns [B]; a user without targets contributes 0."""
    if exclude is not None:
        logits = logits.masked_fill(exclude, float("-inf"))
    logp = F.log_softmax(logits, dim=1)
    n = targets.sum(1)
    nll = -(logp.masked_fill(~targets, 0.0)).sum(1)
    return nll / n.clamp_min(1)


def sgd_adapt(P: torch.Tensor, q: torch.Tensor, b: torch.Tensor, targets: torch.Tensor, steps: int,
              lr: float, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``steps`` plain SGD steps on each user's own support likelihood (no graph kept): the evaluation-time
    adaptation of every adapting method, batched (``exclude``: items left out of the softmax)."""
    P = P.detach().clone()
    q, b = q.detach(), b.detach()
    for _ in range(steps):
        P.requires_grad_(True)
        with torch.enable_grad():
            loss = support_loss(P @ q.T + b, targets, exclude).sum()
            (g,) = torch.autograd.grad(loss, [P])
        P = (P - lr * g).detach()
    return P


def foldin(P0: torch.Tensor, q: torch.Tensor, b: torch.Tensor, targets: torch.Tensor, reg: float,
           max_iter: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """argmin_P sum_u [support NLL_u(P_u) + reg/2 ||P_u - P0_u||^2] with the items fixed: strictly convex, separable
    per user, solved by L-BFGS (strong Wolfe line search) on all users at once."""
    q, b, P0 = q.detach(), b.detach(), P0.detach()
    P = P0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([P], lr=1.0, max_iter=max_iter, tolerance_grad=1e-7, tolerance_change=1e-10,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = support_loss(P @ q.T + b, targets, exclude).sum() + 0.5 * reg * ((P - P0) ** 2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return P.detach()


class Histories:
    """Warm users' train items as CSR (for episodes and the global model's multi-hot targets)."""

    def __init__(self, frame, n_items: int):
        # binary: a repeated (user, item) counts once, so an episode's support and query never share an item
        pairs = np.unique(frame[[USER, ITEM]].to_numpy(np.int64), axis=0)
        u, self.items = pairs[:, 0], pairs[:, 1]
        self.users, self.start, self.count = np.unique(u, return_index=True, return_counts=True)
        self.row = {int(x): r for r, x in enumerate(self.users)}
        self.n_items = n_items

    def of(self, user: int) -> np.ndarray:
        r = self.row[user]
        return self.items[self.start[r]:self.start[r] + self.count[r]]

    def multi_hot(self, users: list[int]) -> torch.Tensor:
        out = torch.zeros((len(users), self.n_items), dtype=torch.bool)
        for k, u in enumerate(users):
            out[k, torch.from_numpy(self.of(u))] = True
        return out


class UserBatches(pl.LightningDataModule):
    """Batches of training users (tasks), reshuffled each epoch by slicing one permutation."""

    def __init__(self, users: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.users, self.batch_size, self.seed, self.epoch = torch.from_numpy(users), batch_size, seed, 0

    def train_dataloader(self):
        g = torch.Generator().manual_seed(int(self.seed) * 100003 + self.epoch)
        self.epoch += 1
        return IndexBatches((self.users,), self.batch_size, g)


class ColdRankModule(FiniteLossGuard, pl.LightningModule):
    def __init__(self, net: ColdRankNet, algorithm: str, histories: Histories, *, lr: float, weight_decay: float,
                 inner_steps: int, inner_lr: float, train_support: int, train_query: int, seed: int):
        super().__init__()
        self.automatic_optimization = False
        self.net, self.algorithm = net, algorithm
        self.__dict__["histories"] = histories    # data, not state
        self.lr, self.weight_decay = lr, weight_decay
        self.inner_steps, self.inner_lr = int(inner_steps), float(inner_lr)
        self.train_support, self.train_query, self.seed = int(train_support), int(train_query), int(seed)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def outside(self, targets: torch.Tensor) -> torch.Tensor:
        """[B, n]: the items a softmax over ``targets``' rows leaves out: new items, unless they are a target."""
        return ~self.net.seen[None, :] & ~targets

    # ---- training --------------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        opt.zero_grad()
        users = batch[0]
        if self.algorithm in META:
            rng = np.random.default_rng([self.seed, self.current_epoch, batch_idx])
            support, query = self.episodes(users.tolist(), rng)
            loss = self._reptile(users, support, query) if self.algorithm == "reptile" \
                else self._maml(users, support, query)
        else:
            loss = self._global(users)
        self.check_finite(loss)
        opt.step()
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)

    def episodes(self, users: list[int], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Support and query multi-hots [B, n]: disjoint random subsets of each user's train items (the support
        at most ``train_support`` items and always one item short of the whole history)."""
        support = torch.zeros((len(users), self.net.item.num_embeddings), dtype=torch.bool)
        query = torch.zeros_like(support)
        for k, u in enumerate(users):
            items = rng.permutation(self.histories.of(u))
            n_s = min(self.train_support, len(items) - 1)
            support[k, torch.from_numpy(items[:n_s])] = True
            query[k, torch.from_numpy(items[n_s:n_s + self.train_query])] = True
        return support, query

    def _global(self, users: torch.Tensor) -> torch.Tensor:
        q, b = self.net.items()
        P = self.net.init_users(users) + self.net.own(users)
        targets = self.histories.multi_hot(users.tolist())
        loss = support_loss(P @ q.T + b, targets, self.outside(targets)).mean()
        self.manual_backward(loss)
        return loss.detach()

    def _maml(self, users, support, query) -> torch.Tensor:
        """learn2learn's MAML around the batch's user vectors: the inner steps (second order for meta:maml) on the
        support, the query loss at the adapted vectors; its gradient reaches the items through the logits (and,
        second order, through the inner steps) and the initialisation through the chain rule below."""
        q, b = self.net.items()
        p0 = self.net.init_users(users)
        local = UserVectors(p0.detach().clone())
        maml = MAML(local, lr=self.inner_lr, first_order=self.algorithm == "fomaml")
        learner = maml.clone()
        for _ in range(self.inner_steps):
            learner.adapt(support_loss(learner(q, b), support, self.outside(support)).sum())
        loss = support_loss(learner(q, b), query, exclude=support | self.outside(query)).mean()
        self.manual_backward(loss)
        # dL/dp0 = dL/dP (the clone starts at P = p0): continue the backward pass into w0 and the feature tables
        if local.P.grad is not None and p0.requires_grad:
            p0.backward(local.P.grad)
        return loss.detach()

    def _reptile(self, users, support, query) -> torch.Tensor:
        """Reptile: inner SGD steps (learn2learn clone_module / update_module) on support and query together;
        the initialisation's meta-gradient is mean(p0 - phi); the items (not adapted) get the query loss gradient at
        the adapted vectors phi (first order)."""
        q, b = self.net.items()
        p0 = self.net.init_users(users)
        both = support | query
        clone = l2l.clone_module(UserVectors(p0.detach().clone()))
        for _ in range(self.inner_steps):
            (g,) = torch.autograd.grad(support_loss(clone(q.detach(), b.detach()), both, self.outside(both)).sum(),
                                       [clone.P])
            clone = l2l.update_module(clone, updates=[-self.inner_lr * g])
        phi = clone.P.detach()
        loss = support_loss(phi @ q.T + b, query, exclude=support | self.outside(query)).mean()
        self.manual_backward(loss)
        if p0.requires_grad:
            p0.backward((p0.detach() - phi) / len(users))
        return loss.detach()

    # ---- scoring -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def scores(self, P: torch.Tensor) -> torch.Tensor:
        q, b = self.net.items()
        return P @ q.T + b


class ColdRankMethod(LightningMethod):
    family = "meta"
    protocols = ("cold_start",)
    algorithm = "maml"
    defaults = {**LightningMethod.defaults,
                "dim": 64, "side_info": True,
                # lr 1e-2: at 1e-3 the ~10 steps of an ml-100k epoch left the item factors near their start
                # when early stopping ended training (one-seed probe: fold-in 0.027 vs 0.068 NDCG@10 at K = 5)
                "lr": 1e-2, "weight_decay": 0.0,
                "inner_steps": 5, "inner_lr": 1.0,
                "batch_size": 64,                # users (tasks) per step
                "train_support": None, "train_query": None,   # episode sizes (default: protocol k_shot / n_query)
                "foldin_reg": 1.0, "foldin_iter": 50,
                "max_epochs": 300, "eval_every": 1, "patience": 20}
    search_space = {"lr": loguniform(1e-4, 1e-2), "weight_decay": loguniform(1e-9, 1e-4),
                    "inner_lr": loguniform(1e-2, 1e2), "inner_steps": integer(1, 20, log=True)}

    def __init__(self, **params):
        super().__init__(**params)
        self.adapted: dict[int, torch.Tensor] = {}

    def build_module(self, split):
        if split.protocol != "cold_start":
            raise ConfigError(f"method {self.name!r} runs on the cold_start protocol, not {split.protocol!r}")
        p = self.params
        use = bool(p["side_info"])
        users = feature_codes(split.user_features, split.n_users, USER_COLUMNS, "shared") if use else {}
        items = feature_codes(split.item_features, split.n_items, ITEM_COLUMNS, "id") if use else {}
        users.pop("shared", None)
        items.pop("id", None)
        seen = np.zeros(split.n_items, dtype=bool)
        seen[split.train[ITEM].to_numpy(np.int64)] = True
        net = ColdRankNet(split.n_users, split.n_items, int(p["dim"]), users, items,
                          own_users=self.algorithm not in META, seen=seen)
        self.histories = Histories(split.train, split.n_items)
        counts = self.histories.count
        self.train_users = self.histories.users[counts >= 2] if self.algorithm in META else self.histories.users
        if not len(self.train_users):
            raise TrainingError("cold_start split: no meta-train user has 2 or more interactions")
        k = int(p["train_support"] or split.params.get("k_shot", 10))
        nq = int(p["train_query"] or split.params.get("n_query", 10))
        self.adapted = {}
        return ColdRankModule(net, self.algorithm, self.histories, lr=float(p["lr"]),
                              weight_decay=float(p["weight_decay"]), inner_steps=int(p["inner_steps"]),
                              inner_lr=float(p["inner_lr"]), train_support=k, train_query=nq, seed=self._seed)

    def fit(self, split, *, seed=0, workdir=None):
        self._seed = seed
        return super().fit(split, seed=seed, workdir=workdir)

    def build_datamodule(self, split, seed):
        return UserBatches(self.train_users, int(self.params["batch_size"]), seed)

    # ---- cold start ------------------------------------------------------------------------------------------
    def adapt(self, support) -> None:
        """Each support user's vector after adaptation (none for meta:global), kept for score()."""
        self.adapted = {}
        if self.algorithm == "global" or support is None or not len(support):
            return None
        m = self.module
        users = np.unique(support[USER].to_numpy())
        row = {int(u): k for k, u in enumerate(users)}
        targets = torch.zeros((len(users), self.n_items), dtype=torch.bool)
        targets[torch.as_tensor([row[int(u)] for u in support[USER].to_numpy()]),
                torch.as_tensor(support[ITEM].to_numpy(np.int64))] = True
        with torch.no_grad():
            q, b = m.net.items()
            P0 = m.net.init_users(torch.from_numpy(users))
        outside = m.outside(targets)
        if self.algorithm == "foldin":
            P = foldin(P0, q, b, targets, float(self.params["foldin_reg"]), int(self.params["foldin_iter"]), outside)
        else:
            P = sgd_adapt(P0, q, b, targets, int(self.params["inner_steps"]), float(self.params["inner_lr"]), outside)
        self.adapted = {int(u): P[k] for k, u in enumerate(users)}
        return None

    @torch.no_grad()
    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        P = self.module.net.init_users(users).clone()
        for k, u in enumerate(users.tolist()):
            if u in self.adapted:
                P[k] = self.adapted[u]
        return P

    @torch.no_grad()
    def score(self, users) -> torch.Tensor:
        users = as_user_tensor(users)
        return self.module.scores(self.user_vectors(users))


@register("meta:maml")
class RankMAML(ColdRankMethod):
    """MAML (second order) of the cold user's vector, full-catalogue softmax ranking."""
    algorithm = "maml"
    # tuned on ml-100k cold start, K = 5 (results/meta/tables/tuning.md; 3 significant digits; re-tuned in session
    # 10 on the code that leaves untrained items out of every softmax, as for FOMAML and Reptile below)
    defaults = {**ColdRankMethod.defaults, "inner_lr": 0.325, "inner_steps": 5, "lr": 1.25e-3, "weight_decay": 1.34e-9}


@register("meta:fomaml")
class RankFOMAML(ColdRankMethod):
    """First-order MAML of the cold user's vector."""
    algorithm = "fomaml"
    # tuned on ml-100k cold start, K = 5 (results/meta/tables/tuning.md; 3 significant digits)
    defaults = {**ColdRankMethod.defaults, "inner_lr": 1.73, "inner_steps": 2, "lr": 7.33e-3, "weight_decay": 4.99e-5}


@register("meta:reptile")
class RankReptile(ColdRankMethod):
    """Reptile of the cold user's vector."""
    algorithm = "reptile"
    # tuned on ml-100k cold start, K = 5 (results/meta/tables/tuning.md; 3 significant digits)
    defaults = {**ColdRankMethod.defaults, "inner_lr": 2.58, "inner_steps": 4, "lr": 1.25e-3, "weight_decay": 3.77e-6}


@register("meta:finetune")
class RankFinetune(ColdRankMethod):
    """The global model, fine-tuned per cold user: ``inner_steps`` SGD steps at ``inner_lr`` on the support."""
    algorithm = "finetune"
    # tuned on ml-100k cold start, K = 5 (results/meta/tables/tuning.md; 3 significant digits)
    defaults = {**ColdRankMethod.defaults, "inner_lr": 0.736, "inner_steps": 3, "lr": 5.32e-3, "weight_decay": 1.69e-6}
    family = "baseline"


@register("meta:foldin")
class RankFoldin(ColdRankMethod):
    """The global model's items fixed; the cold user's vector fitted on the support to convergence (MF fold-in)."""
    algorithm = "foldin"
    # tuned on ml-100k cold start, K = 5 (results/meta/tables/tuning.md; 3 significant digits)
    defaults = {**ColdRankMethod.defaults, "foldin_reg": 0.0285, "lr": 1.26e-3, "weight_decay": 3.47e-6}
    family = "baseline"
    search_space = {"lr": loguniform(1e-4, 1e-2), "weight_decay": loguniform(1e-9, 1e-4),
                    "foldin_reg": loguniform(1e-3, 1e2)}


@register("meta:global")
class RankGlobal(ColdRankMethod):
    """The global model without adaptation: every cold user gets the shared initial vector."""
    algorithm = "global"
    # tuned on ml-100k cold start, K = 5 (results/meta/tables/tuning.md; 3 significant digits)
    defaults = {**ColdRankMethod.defaults, "lr": 6.91e-3, "weight_decay": 8.85e-5}
    family = "baseline"
    search_space = {"lr": loguniform(1e-4, 1e-2), "weight_decay": loguniform(1e-9, 1e-4)}
