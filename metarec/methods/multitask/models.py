"""Multi-task recommenders on a two-tower ranking backbone, and their LightningModule.

Why two towers: the ranking task must be as strong as the best single-task model, or no multi-task gain can be
believed (issue: the old concatenate-then-MLP networks ranked at popularity's level on ml-100k). A dot product of a
user vector and an item vector trained with BPR is that model (mf-bpr); every architecture here keeps that form for
every task and differs only in how a task's vectors are built from shared parts, so one backbone serves them all and
full ranking stays one matrix product.

For a ranking task t and a (user, item) pair the output is ``<u_t, i_t>``, as mf-bpr's; the other tasks add biases,
``<u_t, i_t> + b_t[item] + c_t[user] + a_t``. Why no item bias in ranking: with one, BPR first separates positives by
popularity through the bias, its sigmoid saturates and the dot product learns slowly; at learning rates below ~2e-3
validation NDCG@10 stayed at popularity's level (0.12 on the ml-100k tuning split, where mf-bpr at the same learning
rate and weight decay reaches 0.248) until early stopping ended training. Each vector is the
side's id embedding plus a residual: ``u_t = e_user + tower_t(h_t(x))``, where x is the side's field embeddings
(user id + age / gender / occupation; item id + averaged bags of genres / category / domain) and the towers' last
layers start at zero, so every task starts as matrix factorisation and the shared parts only add what the losses
ask of them. The architectures differ in h_t:

    single         per task its own field embeddings (id embedding included) and its own expert: separate models
                   trained side by side
    shared-bottom  one shared expert per side (Caruana 1997)
    mmoe           ``num_experts`` shared experts per side, per task and side a softmax gate over them (Ma et al.,
                   KDD 2018)
    ple            per side, ``num_levels`` CGC layers of ``num_experts`` shared and ``task_experts`` per-task experts;
                   a task's gate mixes its own and the shared experts, a shared gate between levels mixes all of them
                   (Tang et al., RecSys 2020)

An expert is an MLP (``expert_hidden``, ReLU) ending in a linear map to ``dim``; a tower is the same with
``tower_hidden``. A multiclass task (category) is an item-side head: a linear classifier on the task's item vector.

Losses, over the rows that carry the task's label: ranking tasks (interaction; each domain of a combined dataset)
BPR against one sampled negative per positive, exactly as mf-bpr; binary heads binary cross-entropy; regression MSE
around the train mean rating; multiclass cross-entropy. Weighting: fixed weights ``w_t``; learned uncertainty
(Kendall, Gal & Cipolla, CVPR 2018) ``w_t * (c_t * exp(-s_t) * L_t + s_t / 2)``, c_t = 1/2 for regression, else 1;
or PCGrad (Yu et al., NeurIPS 2020): each task's gradient on the shared parameters loses its component along any
other task's gradient it conflicts with (negative inner product), in a random order per step, before they are
summed. A task whose weight is 0 is left out of the loss, so its own parameters receive no gradient.
"""
from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from metarec.methods.lightning import FiniteLossGuard
from metarec.methods.multitask.tasks import BINARY, MULTICLASS, RANKING, REGRESSION, SideInfo, Task

ARCHITECTURES = ("single", "shared-bottom", "mmoe", "ple")
WEIGHTINGS = ("fixed", "uncertainty", "pcgrad")


class FieldEmbedding(nn.Module):
    """One side's input: the concatenation of its field embeddings, [B, n_fields * dim]."""

    def __init__(self, n_rows: int, dim: int, field_sizes: list[int], fields: np.ndarray | None = None,
                 bags: list[np.ndarray] | None = None):
        super().__init__()
        self.id = nn.Embedding(n_rows, dim)
        self.tables = nn.ModuleList(nn.Embedding(n, dim, padding_idx=0) for n in field_sizes)
        self.bag = bags is not None
        if self.bag:      # item side: per item a padded bag of feature ids per table, averaged
            for k, b in enumerate(bags):
                self.register_buffer(f"bag{k}", torch.from_numpy(b), persistent=False)
        else:             # user side: one id per field
            self.register_buffer("fields", torch.from_numpy(fields), persistent=False)
        nn.init.xavier_normal_(self.id.weight)        # mf-bpr's (RecBole's BPR) initialisation
        for t in self.tables:
            nn.init.normal_(t.weight, std=0.05)
            with torch.no_grad():
                t.weight[0].zero_()                    # padding / unknown contributes nothing
        self.out_dim = dim * (1 + len(field_sizes))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        parts = [self.id.weight.index_select(0, rows)]
        for k, table in enumerate(self.tables):
            if self.bag:
                ids = getattr(self, f"bag{k}")[rows]                           # [B, L], 0 = padding
                n = (ids > 0).sum(1, keepdim=True).clamp(min=1)
                parts.append(table(ids).sum(1) / n)
            else:
                parts.append(table(self.fields[rows, k]))
        return torch.cat(parts, -1) if len(parts) > 1 else parts[0]


class MLP(nn.Module):
    """``hidden`` ReLU layers, then a linear map to ``out``; no bias terms, so f(0) = 0 (see ``SideNet``)."""

    def __init__(self, d_in: int, hidden: list[int], out: int, dropout: float = 0.0):
        super().__init__()
        self.hidden = nn.ModuleList()
        for h in hidden:
            self.hidden.append(nn.Linear(d_in, h, bias=False))
            d_in = h
        self.out = nn.Linear(d_in, out, bias=False)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden:
            x = F.relu(layer(x))
            if self.dropout:
                x = F.dropout(x, self.dropout, self.training)
        return self.out(x)


def _mix(gate: nn.Linear, x: torch.Tensor, experts: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.softmax(gate(x), -1)                                              # [B, E]
    return (g.unsqueeze(-1) * torch.stack(experts, 1)).sum(1), g


class CGC(nn.Module):
    """One customized gate control layer of PLE (per side)."""

    def __init__(self, d_in: int, dim: int, hidden: list[int], T: int, n_shared: int, n_task: int, last: bool,
                 dropout: float):
        super().__init__()
        self.T = T
        self.shared = nn.ModuleList(MLP(d_in, hidden, dim, dropout) for _ in range(n_shared))
        self.own = nn.ModuleList(nn.ModuleList(MLP(d_in, hidden, dim, dropout) for _ in range(n_task))
                                 for _ in range(T))
        self.task_gates = nn.ModuleList(nn.Linear(d_in, n_task + n_shared) for _ in range(T))
        self.shared_gate = None if last else nn.Linear(d_in, T * n_task + n_shared)

    def forward(self, task_in: list[torch.Tensor], shared_in: torch.Tensor, needed: list[int]):
        """(per-task outputs for ``needed``, the next level's shared input or None, gate weights)."""
        sh = [e(shared_in) for e in self.shared]
        own = {t: [e(task_in[t]) for e in self.own[t]] for t in needed}
        outs, gates = [None] * self.T, []
        for t in needed:
            outs[t], g = _mix(self.task_gates[t], task_in[t], own[t] + sh)
            gates.append(g)
        shared_out = None
        if self.shared_gate is not None:
            shared_out, g = _mix(self.shared_gate, shared_in, [e for t in range(self.T) for e in own[t]] + sh)
            gates.append(g)
        return outs, shared_out, gates


class SideNet(nn.Module):
    """One side (users or items) of every task: field embeddings -> a ``dim``-vector per task."""

    def __init__(self, arch: str, T: int, make_embedding, dim: int, expert_hidden: list[int],
                 tower_hidden: list[int], num_experts: int, task_experts: int, num_levels: int, dropout: float):
        super().__init__()
        self.arch, self.T, self.dim = arch, T, dim
        if arch == "single":
            self.embeds = nn.ModuleList(make_embedding() for _ in range(T))
            d_in = self.embeds[0].out_dim
            self.experts = nn.ModuleList(MLP(d_in, expert_hidden, dim, dropout) for _ in range(T))
        else:
            self.embed = make_embedding()
            d_in = self.embed.out_dim
            if arch == "shared-bottom":
                self.bottom = MLP(d_in, expert_hidden, dim, dropout)
            elif arch == "mmoe":
                self.experts = nn.ModuleList(MLP(d_in, expert_hidden, dim, dropout) for _ in range(num_experts))
                self.gates = nn.ModuleList(nn.Linear(d_in, num_experts) for _ in range(T))
            else:
                self.levels = nn.ModuleList(
                    CGC(d_in if lv == 0 else dim, dim, expert_hidden, T, num_experts, task_experts,
                        lv == num_levels - 1, dropout) for lv in range(num_levels))
        self.towers = nn.ModuleList(MLP(dim, tower_hidden, dim, dropout) for _ in range(T))
        for tower in self.towers:   # zero residual at the start: every task's vector is the id embedding
            nn.init.zeros_(tower.out.weight)

    def forward(self, rows: torch.Tensor, needed: list[int]) -> tuple[dict[int, torch.Tensor], list[torch.Tensor]]:
        """({task: [B, dim]} for the ``needed`` tasks, the gate weights used)."""
        gates: list[torch.Tensor] = []
        if self.arch == "single":
            xs = {t: self.embeds[t](rows) for t in needed}
            h = {t: self.experts[t](xs[t]) for t in needed}
            ids = {t: xs[t][:, :self.dim] for t in needed}
        else:
            x = self.embed(rows)
            ids = {t: x[:, :self.dim] for t in needed}
            if self.arch == "shared-bottom":
                b = self.bottom(x)
                h = {t: b for t in needed}
            elif self.arch == "mmoe":
                ex = [e(x) for e in self.experts]
                h = {}
                for t in needed:
                    h[t], g = _mix(self.gates[t], x, ex)
                    gates.append(g)
            else:
                task_in, shared_in, every = [x] * self.T, x, list(range(self.T))
                for level in self.levels:   # below the last level every task's output feeds the next one
                    task_in, shared_in, g = level(task_in, shared_in, needed if level.shared_gate is None else every)
                    gates += g
                h = {t: task_in[t] for t in needed}
        # the task's vector: its id embedding plus what the shared parts and the task's tower add to it
        return {t: ids[t] + self.towers[t](v) for t, v in h.items()}, gates


class MultiTaskNet(nn.Module):
    """Per task a user tower and an item tower (``SideNet``); ``forward(users, items) -> {task: output}`` ([B] for
    ranking/binary/regression, [B, C] logits for multiclass)."""

    def __init__(self, arch: str, n_users: int, n_items: int, tasks: list[Task], side: SideInfo, *, dim: int,
                 expert_hidden: list[int], tower_hidden: list[int], num_experts: int, task_experts: int,
                 num_levels: int, dropout: float):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {arch!r}")
        self.arch, self.tasks, self.T = arch, tasks, len(tasks)
        shape = dict(dim=dim, expert_hidden=expert_hidden, tower_hidden=tower_hidden, num_experts=num_experts,
                     task_experts=task_experts, num_levels=num_levels, dropout=dropout)
        self.users = SideNet(arch, self.T, lambda: FieldEmbedding(n_users, dim, side.user_sizes,
                                                                  fields=side.user_fields), **shape)
        self.items = SideNet(arch, self.T, lambda: FieldEmbedding(n_items, dim, side.item_sizes,
                                                                  bags=side.item_bags), **shape)
        self.item_bias = nn.Parameter(torch.zeros(self.T, n_items))
        self.user_bias = nn.Parameter(torch.zeros(self.T, n_users))
        self.offset = nn.Parameter(torch.zeros(self.T))
        self.heads = nn.ModuleDict({str(t): nn.Linear(dim, task.n_classes) for t, task in enumerate(tasks)
                                    if task.kind == MULTICLASS})

    def vectors(self, users: torch.Tensor, items: torch.Tensor, needed: list[int]):
        return self.users(users, needed)[0], self.items(items, needed)[0]

    def output(self, t: int, u: torch.Tensor, i: torch.Tensor, users: torch.Tensor, items: torch.Tensor
               ) -> torch.Tensor:
        """Task t's output for aligned rows, from their vectors ``u``, ``i``."""
        if self.tasks[t].kind == MULTICLASS:
            return self.heads[str(t)](i)
        if self.tasks[t].kind == RANKING:   # the dot product alone, as mf-bpr (see the module docstring)
            return (u * i).sum(-1)
        return (u * i).sum(-1) + self.item_bias[t, items] + self.user_bias[t, users] + self.offset[t]

    def forward(self, users: torch.Tensor, items: torch.Tensor, needed=None) -> dict[int, torch.Tensor]:
        needed = list(range(self.T)) if needed is None else list(needed)
        uv, iv = self.vectors(users, items, needed)
        return {t: self.output(t, uv[t], iv[t], users, items) for t in needed}

    def ranking_scores(self, t: int, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Task t's scores of every (user, item) in users x items: [B, N] (without the per-user terms, which do
        not change a user's ranking)."""
        u = self.users(users, [t])[0][t]
        i = self.items(items, [t])[0][t]
        return u @ i.T if self.tasks[t].kind == RANKING else u @ i.T + self.item_bias[t, items]

    def gate_weights(self, users: torch.Tensor, items: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """The softmax gates used for every task, per side: MMoE one [B, E] per task; PLE per level one [B, K+S]
        per task (+ the shared gate [B, T*K+S] below the last level). Empty lists without gates."""
        needed = list(range(self.T))
        return {"user": self.users(users, needed)[1], "item": self.items(items, needed)[1]}


def pcgrad(grads: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    """PCGrad's merged gradient of per-task flat gradients (Yu et al. 2020, Algorithm 1): each g_i is projected
    onto the normal plane of every g_j (j in a random order) it conflicts with, using the other tasks' original
    gradients; the projected gradients are summed."""
    out = []
    for i, g in enumerate(grads):
        g = g.clone()
        for j in torch.randperm(len(grads), generator=generator).tolist():
            if j == i:
                continue
            dot = torch.dot(g, grads[j])
            if dot < 0:
                g -= dot / grads[j].pow(2).sum().clamp_min(1e-20) * grads[j]
        out.append(g)
    return torch.stack(out).sum(0)


class MultiTaskModule(FiniteLossGuard, pl.LightningModule):
    def __init__(self, net: MultiTaskNet, tasks: list[Task], weights: list[float], weighting: str, lr: float,
                 weight_decay: float, rating_mean: float, main: int | None, n_items: int, dense_weight_decay: float,
                 item_domain: np.ndarray | None = None, user_domains: np.ndarray | None = None):
        super().__init__()
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        self.net, self.tasks = net, tasks
        self.weights = [float(w) for w in weights]
        self.weighting, self.lr, self.weight_decay = weighting, lr, weight_decay
        self.dense_weight_decay = dense_weight_decay
        self.rating_mean, self.main = float(rating_mean), main
        self.n_items = int(n_items)
        # Kendall et al.: s_t = log sigma_t^2, one per task (unused -> no gradient when the weight is 0)
        self.log_vars = nn.Parameter(torch.zeros(len(tasks))) if weighting == "uncertainty" else None
        self.automatic_optimization = weighting != "pcgrad"
        # PCGrad's projection order: drawn from the global generator, which fit() seeds before building the module
        self.pc_generator = torch.Generator().manual_seed(int(torch.randint(2 ** 31, ())))
        for name, arr in (("item_domain", item_domain), ("user_domains", user_domains)):
            self.register_buffer(name, None if arr is None else torch.from_numpy(arr), persistent=False)

    # ---- predictions ---------------------------------------------------------------------------------------
    def outputs(self, users: torch.Tensor, items: torch.Tensor, needed=None) -> dict[int, torch.Tensor]:
        outs = self.net(users, items, needed)
        return {t: o + self.rating_mean if self.tasks[t].kind == REGRESSION else o for t, o in outs.items()}

    def _ranking_tasks(self) -> list[int]:
        if self.main is not None:
            return [self.main]
        return [t for t, task in enumerate(self.tasks) if task.domain is not None]

    def pair_scores(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The ranking score of aligned (user, item) pairs: the main task's output, or in multi-domain each
        item's own domain task's output."""
        outs = self.outputs(users, items, needed=self._ranking_tasks())
        if self.main is not None:
            return outs[self.main]
        idx = {task.domain: t for t, task in enumerate(self.tasks) if task.domain is not None}
        stacked = torch.stack([outs[idx[d]] for d in sorted(idx)], 1)          # [rows, D]
        return torch.gather(stacked, 1, self.item_domain[items].unsqueeze(1)).squeeze(1)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        items = torch.arange(self.n_items, device=users.device)
        if self.main is not None:
            return self.net.ranking_scores(self.main, users, items)
        # multi-domain: each item scored by its own domain's task; a user only ever sees the domains they belong to
        s = torch.full((len(users), self.n_items), float("-inf"), device=users.device)
        for t, task in enumerate(self.tasks):
            if task.domain is not None:
                own = items[self.item_domain == task.domain]
                s[:, own] = self.net.ranking_scores(t, users, own)
        return s.masked_fill(~self.user_domains[users][:, self.item_domain], float("-inf"))

    # ---- training ------------------------------------------------------------------------------------------
    def task_losses(self, batch) -> dict[int, torch.Tensor]:
        """Each active task's mean loss over the batch rows that carry its label."""
        users, items, negatives, labels, mask = batch
        active = [t for t in range(len(self.tasks)) if self.weights[t] != 0 and bool(mask[:, t].any())]
        if not active:
            return {}
        ranking = [t for t in active if self.tasks[t].kind == RANKING]
        uv, iv = self.net.vectors(users, items, active)
        jv = self.net.items(negatives, ranking)[0] if ranking else {}
        losses = {}
        for t in active:
            task, m = self.tasks[t], mask[:, t]
            u, um = uv[t][m], users[m]
            o = self.net.output(t, u, iv[t][m], um, items[m])
            if task.kind == RANKING:   # BPR: the positive above the sampled negative
                loss = -F.logsigmoid(o - self.net.output(t, u, jv[t][m], um, negatives[m])).mean()
            else:
                y = labels[m, t]
                if task.kind == BINARY:
                    loss = F.binary_cross_entropy_with_logits(o, y)
                elif task.kind == REGRESSION:
                    loss = F.mse_loss(o + self.rating_mean, y)
                else:
                    loss = F.cross_entropy(o, y.long())
            self.log(f"train/{task.name}_loss", loss, on_step=False, on_epoch=True)
            if self.log_vars is not None:
                c = 0.5 if task.kind == REGRESSION else 1.0
                loss = c * torch.exp(-self.log_vars[t]) * loss + 0.5 * self.log_vars[t]
            losses[t] = self.weights[t] * loss
        return losses

    def training_step(self, batch, batch_idx):
        losses = self.task_losses(batch)
        if not losses:
            return None
        total = self.check_finite(sum(losses.values()))
        self.log("train/loss", total, on_step=False, on_epoch=True, prog_bar=True)
        if self.automatic_optimization:
            return total
        opt = self.optimizers()
        opt.zero_grad()
        params = [p for p in self.parameters() if p.requires_grad]
        per_task = [torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
                    for loss in losses.values()]
        # shared: a parameter that two or more tasks' losses reach; PCGrad merges those, the others keep the one
        # task's gradient they have (or none)
        reached = [[g[k] for g in per_task if g[k] is not None] for k in range(len(params))]
        for p, parts in zip(params, reached):
            p.grad = parts[0].clone() if len(parts) == 1 else None
        shared = [k for k, parts in enumerate(reached) if len(parts) >= 2]
        if shared:
            flat = [torch.cat([(g[k] if g[k] is not None else torch.zeros_like(params[k])).reshape(-1)
                               for k in shared]) for g in per_task]
            merged = pcgrad(flat, self.pc_generator)
            at = 0
            for k in shared:
                n = params[k].numel()
                params[k].grad = merged[at:at + n].view_as(params[k]).clone()
                at += n
        opt.step()
        return total

    def configure_optimizers(self):
        # the id embeddings and biases get mf-bpr's weight decay; the dense parts (side-field tables, experts, gates,
        # towers, heads) their own, much stronger one: they see every batch, and without it their residual overfits
        # (ml-100k, interaction alone: test NDCG@10 0.243 at 2e-5, 0.293 at 1e-2, MF 0.296)
        ids = {id(p) for m in self.net.modules() if isinstance(m, FieldEmbedding) for p in m.id.parameters()}
        ids |= {id(self.net.item_bias), id(self.net.user_bias), id(self.net.offset)}
        sparse = [p for p in self.parameters() if id(p) in ids]
        dense = [p for p in self.parameters() if id(p) not in ids]
        return torch.optim.Adam([{"params": sparse, "weight_decay": self.weight_decay},
                                 {"params": dense, "weight_decay": self.dense_weight_decay}], lr=self.lr)
