"""Multi-task networks over shared user/item embeddings and side information, and their LightningModule.

Input of every network: the concatenation of field embeddings (user id, item id, user side fields such as age
bucket / gender / occupation, item bags such as genres / domain, each bag averaged). On top:

    single        one independent network per task (own embeddings, bottom MLP and tower): the same capacity per
                  task as shared-bottom, nothing shared
    shared-bottom shared embeddings + one bottom MLP, one tower per task (Caruana 1997)
    mmoe          shared embeddings, ``num_experts`` expert MLPs, one softmax gate per task (Ma et al., KDD 2018)
    ple           stacked CGC layers: per layer ``num_experts`` shared experts plus ``task_experts`` experts per
                  task; a task's gate mixes its own and the shared experts; below the last layer a shared gate
                  mixes all of them into the next layer's shared input (Tang et al., RecSys 2020)

Loss: per task, binary cross-entropy (binary), MSE (regression, predicted around the train mean rating) or
cross-entropy (multiclass), over the rows that carry that task's label. Weighting: fixed weights ``w_t``, or
learned uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018): ``w_t * (c_t * exp(-s_t) * L_t + s_t / 2)``,
``s_t = log sigma_t^2`` learned, c_t = 1/2 for regression and 1 for classification. A task whose weight is 0 is left
out of the loss entirely, so its tower (and, in ``single``, its whole network) receives no gradient.
"""
from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from metarec.methods.lightning import FiniteLossGuard
from metarec.methods.multitask.tasks import BINARY, MULTICLASS, REGRESSION, SideInfo, Task

ARCHITECTURES = ("single", "shared-bottom", "mmoe", "ple")


class Grid:
    """Every (user, item) pair of ``users`` x ``items`` without materialising the input: the input is the
    concatenation [user part | item part], so a first Linear layer splits into a [B, H] user term and an [N, H]
    item term added by broadcasting (full-ranking scores at a fraction of the cost)."""

    def __init__(self, xu: torch.Tensor, xi: torch.Tensor):
        self.xu, self.xi = xu, xi


def linear(layer: nn.Linear, x) -> torch.Tensor:
    if isinstance(x, Grid):
        du = x.xu.shape[1]
        w = layer.weight
        out = (x.xu @ w[:, :du].T + layer.bias)[:, None, :] + (x.xi @ w[:, du:].T)[None, :, :]
        return out.reshape(-1, w.shape[0])
    return layer(x)


class MLP(nn.Module):
    def __init__(self, d_in: int, hidden: list[int], dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList()
        for h in hidden:
            self.layers.append(nn.Linear(d_in, h))
            d_in = h
        self.dropout = dropout
        self.out_dim = d_in

    def forward(self, x) -> torch.Tensor:
        for k, layer in enumerate(self.layers):
            x = F.relu(linear(layer, x) if k == 0 else layer(x))
            if self.dropout:
                x = F.dropout(x, self.dropout, self.training)
        return x


def mlp(d_in: int, hidden: list[int], dropout: float = 0.0) -> tuple[MLP, int]:
    m = MLP(d_in, hidden, dropout)
    return m, m.out_dim


class FieldEmbedding(nn.Module):
    """Embeds (user, item) pairs into the concatenation of their field embeddings: [B, n_fields * dim]."""

    def __init__(self, n_users: int, n_items: int, dim: int, side: SideInfo):
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.user_side = nn.ModuleList(nn.Embedding(n, dim) for n in side.user_sizes)
        self.item_side = nn.ModuleList(nn.Embedding(n, dim, padding_idx=0) for n in side.item_sizes)
        self.register_buffer("user_fields", torch.from_numpy(side.user_fields), persistent=False)
        for k, bag in enumerate(side.item_bags):
            self.register_buffer(f"item_bag{k}", torch.from_numpy(bag), persistent=False)
        for emb in [self.user, self.item, *self.user_side, *self.item_side]:
            nn.init.normal_(emb.weight, std=0.05)
        self.out_dim = dim * (2 + len(self.user_side) + len(self.item_side))

    def user_part(self, users: torch.Tensor) -> torch.Tensor:
        parts = [self.user(users)] + [emb(self.user_fields[users, k]) for k, emb in enumerate(self.user_side)]
        return torch.cat(parts, -1)

    def item_part(self, items: torch.Tensor) -> torch.Tensor:
        parts = [self.item(items)]
        for k, emb in enumerate(self.item_side):
            ids = getattr(self, f"item_bag{k}")[items]                      # [B, L], 0 = padding
            n = (ids > 0).sum(1, keepdim=True).clamp(min=1)
            parts.append(emb(ids).sum(1) / n)
        return torch.cat(parts, -1)

    def forward(self, users: torch.Tensor, items: torch.Tensor, grid: bool = False):
        """[B, D] for aligned pairs; a ``Grid`` of users x items when ``grid``."""
        xu, xi = self.user_part(users), self.item_part(items)
        return Grid(xu, xi) if grid else torch.cat([xu, xi], -1)


class Tower(nn.Module):
    def __init__(self, d_in: int, hidden: list[int], out: int, dropout: float):
        super().__init__()
        self.body, d = mlp(d_in, hidden, dropout)
        self.head = nn.Linear(d, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class MultiTaskNet(nn.Module):
    """``forward(users, items) -> list of T outputs`` ([B] for binary/regression logits, [B, C] for multiclass)."""

    def __init__(self, arch: str, n_users: int, n_items: int, tasks: list[Task], side: SideInfo, *, dim: int,
                 expert_hidden: list[int], tower_hidden: list[int], num_experts: int, task_experts: int,
                 num_levels: int, dropout: float):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {arch!r}")
        self.arch, self.T = arch, len(tasks)
        outs = [t.n_classes if t.kind == MULTICLASS else 1 for t in tasks]
        if arch == "single":
            self.embeds = nn.ModuleList(FieldEmbedding(n_users, n_items, dim, side) for _ in tasks)
            d_in = self.embeds[0].out_dim
            bottoms = [mlp(d_in, expert_hidden, dropout) for _ in tasks]
            self.bottoms = nn.ModuleList(b for b, _ in bottoms)
            d = bottoms[0][1]
        else:
            self.embed = FieldEmbedding(n_users, n_items, dim, side)
            d_in = self.embed.out_dim
            if arch == "shared-bottom":
                self.bottom, d = mlp(d_in, expert_hidden, dropout)
            elif arch == "mmoe":
                experts = [mlp(d_in, expert_hidden, dropout) for _ in range(num_experts)]
                self.experts = nn.ModuleList(e for e, _ in experts)
                d = experts[0][1]
                self.gates = nn.ModuleList(nn.Linear(d_in, num_experts) for _ in tasks)
            else:  # ple
                self.levels = nn.ModuleList()
                d = d_in
                for level in range(num_levels):
                    last = level == num_levels - 1
                    self.levels.append(CGC(d, expert_hidden, self.T, num_experts, task_experts, last, dropout))
                    d = self.levels[-1].out_dim
        self.towers = nn.ModuleList(Tower(d, tower_hidden, o, dropout) for o in outs)

    def task_inputs(self, users: torch.Tensor, items: torch.Tensor, grid: bool = False, needed=None
                    ) -> dict[int, torch.Tensor]:
        """Tower inputs of the ``needed`` tasks (default all), for aligned pairs or the users x items grid."""
        needed = list(range(self.T)) if needed is None else list(needed)
        if self.arch == "single":
            return {t: self.bottoms[t](self.embeds[t](users, items, grid)) for t in needed}
        x = self.embed(users, items, grid)
        if self.arch == "shared-bottom":
            h = self.bottom(x)
            return {t: h for t in needed}
        if self.arch == "mmoe":
            ex = torch.stack([e(x) for e in self.experts], 1)                  # [B, E, d]
            return {t: (torch.softmax(linear(self.gates[t], x), -1).unsqueeze(-1) * ex).sum(1) for t in needed}
        tasks_in, shared_in = [x] * self.T, x
        for level in self.levels:
            tasks_in, shared_in, _ = level(tasks_in, shared_in, needed if level.last else None)
        return {t: tasks_in[t] for t in needed}

    def forward(self, users: torch.Tensor, items: torch.Tensor, grid: bool = False, needed=None
                ) -> dict[int, torch.Tensor]:
        outs = {}
        for t, h in self.task_inputs(users, items, grid, needed).items():
            o = self.towers[t](h)
            outs[t] = o.squeeze(-1) if o.shape[-1] == 1 else o
        return outs

    def gate_weights(self, users: torch.Tensor, items: torch.Tensor) -> list[torch.Tensor]:
        """The softmax gate outputs: MMoE one [B, E] per task; PLE per level one [B, K+S] per task (+ the shared
        gate [B, T*K+S] below the last level). Empty for single / shared-bottom (no gates)."""
        if self.arch == "mmoe":
            x = self.embed(users, items)
            return [torch.softmax(g(x), -1) for g in self.gates]
        if self.arch == "ple":
            x = self.embed(users, items)
            tasks_in, shared_in, out = [x] * self.T, x, []
            for level in self.levels:
                tasks_in, shared_in, gates = level(tasks_in, shared_in)
                out += gates
            return out
        return []


class CGC(nn.Module):
    """One customized gate control layer of PLE."""

    def __init__(self, d_in: int, hidden: list[int], T: int, n_shared: int, n_task: int, last: bool, dropout: float):
        super().__init__()
        self.T, self.last = T, last
        self.shared = nn.ModuleList(mlp(d_in, hidden, dropout)[0] for _ in range(n_shared))
        self.task = nn.ModuleList(nn.ModuleList(mlp(d_in, hidden, dropout)[0] for _ in range(n_task))
                                  for _ in range(T))
        self.out_dim = hidden[-1]
        self.task_gates = nn.ModuleList(nn.Linear(d_in, n_task + n_shared) for _ in range(T))
        self.shared_gate = None if last else nn.Linear(d_in, T * n_task + n_shared)

    def forward(self, tasks_in: list, shared_in, needed=None):
        """Returns (per-task outputs, shared output, gate weights). ``needed``: compute only these tasks (the
        last level, when scoring one task)."""
        needed = range(self.T) if needed is None else needed
        sh = [e(shared_in) for e in self.shared]
        own = {t: [e(tasks_in[t]) for e in self.task[t]] for t in needed}
        outs, gates = [None] * self.T, []
        for t in needed:
            ex = torch.stack(own[t] + sh, 1)                                   # [B, K+S, d]
            g = torch.softmax(linear(self.task_gates[t], tasks_in[t]), -1)
            gates.append(g)
            outs[t] = (g.unsqueeze(-1) * ex).sum(1)
        shared_out = shared_in
        if self.shared_gate is not None:
            ex = torch.stack([e for t in range(self.T) for e in own[t]] + sh, 1)
            g = torch.softmax(linear(self.shared_gate, shared_in), -1)
            gates.append(g)
            shared_out = (g.unsqueeze(-1) * ex).sum(1)
        return outs, shared_out, gates


class MultiTaskModule(FiniteLossGuard, pl.LightningModule):
    def __init__(self, net: MultiTaskNet, tasks: list[Task], weights: list[float], weighting: str, lr: float,
                 weight_decay: float, rating_mean: float, main: int | None, n_items: int,
                 item_domain: np.ndarray | None = None, user_domains: np.ndarray | None = None,
                 eval_chunk: int = 1 << 17):
        super().__init__()
        self.net, self.tasks = net, tasks
        self.weights = [float(w) for w in weights]
        self.weighting, self.lr, self.weight_decay = weighting, lr, weight_decay
        self.rating_mean, self.main, self.eval_chunk = float(rating_mean), main, eval_chunk
        self.n_items = int(n_items)
        # Kendall et al.: s_t = log sigma_t^2, one per task (unused -> no gradient when the weight is 0)
        self.log_vars = nn.Parameter(torch.zeros(len(tasks))) if weighting == "uncertainty" else None
        for name, arr in (("item_domain", item_domain), ("user_domains", user_domains)):
            self.register_buffer(name, None if arr is None else torch.from_numpy(arr), persistent=False)

    # ---- predictions ---------------------------------------------------------------------------------------
    def outputs(self, users: torch.Tensor, items: torch.Tensor, grid: bool = False, needed=None
                ) -> dict[int, torch.Tensor]:
        outs = self.net(users, items, grid, needed)
        return {t: o + self.rating_mean if self.tasks[t].kind == REGRESSION else o for t, o in outs.items()}

    def _ranking_tasks(self) -> list[int]:
        if self.main is not None:
            return [self.main]
        return [t for t, task in enumerate(self.tasks) if task.domain is not None]

    def _select(self, outs: dict[int, torch.Tensor], items: torch.Tensor, grid: bool, n_users: int) -> torch.Tensor:
        if self.main is not None:
            return outs[self.main]
        idx = {task.domain: t for t, task in enumerate(self.tasks) if task.domain is not None}
        stacked = torch.stack([outs[idx[d]] for d in sorted(idx)], 1)          # [rows, D]
        dom = self.item_domain[items]
        if grid:
            dom = dom.repeat(n_users)
        return torch.gather(stacked, 1, dom.unsqueeze(1)).squeeze(1)

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The ranking score of aligned (user, item) pairs: the main task's logit, or in multi-domain each item's
        own domain task's logit."""
        return self._select(self.outputs(users, items, needed=self._ranking_tasks()), items, False, len(users))

    def score(self, users: torch.Tensor) -> torch.Tensor:
        n_items = self.n_items
        rows = max(1, self.eval_chunk // n_items)
        items = torch.arange(n_items, device=users.device)
        out = []
        for lo in range(0, len(users), rows):
            u = users[lo:lo + rows]
            outs = self.outputs(u, items, grid=True, needed=self._ranking_tasks())
            out.append(self._select(outs, items, True, len(u)).view(len(u), n_items))
        s = torch.cat(out) if out else torch.zeros((0, n_items), device=users.device)
        if self.main is None:  # multi-domain: a user is only ever shown items of the domains they belong to
            s = s.masked_fill(~self._user_domain_mask(users), float("-inf"))
        return s

    def _user_domain_mask(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_domains[users][:, self.item_domain]

    # ---- training ------------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        users, items, labels, mask = batch
        active = [t for t in range(len(self.tasks)) if self.weights[t] != 0 and bool(mask[:, t].any())]
        outs = self.outputs(users, items, needed=active)
        total = torch.zeros((), device=users.device)
        for t in active:
            task, w, m = self.tasks[t], self.weights[t], mask[:, t]
            y, o = labels[m, t], outs[t][m]
            if task.kind == BINARY:
                loss = F.binary_cross_entropy_with_logits(o, y)
            elif task.kind == REGRESSION:
                loss = F.mse_loss(o, y)
            else:
                loss = F.cross_entropy(o, y.long())
            self.log(f"train/{task.name}_loss", loss, on_step=False, on_epoch=True)
            if self.log_vars is not None:
                c = 0.5 if task.kind == REGRESSION else 1.0
                loss = c * torch.exp(-self.log_vars[t]) * loss + 0.5 * self.log_vars[t]
            total = total + w * loss
        self.log("train/loss", total, on_step=False, on_epoch=True, prog_bar=True)
        return self.check_finite(total)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, weight_decay=self.weight_decay)
