"""``DistillModule``: one LightningModule for every distillation method — a backbone (``SeqEncoder`` or
``BagTwoTower``), its hard recommendation loss, and optionally (a) a frozen teacher with a logit-KD loss and
(b) an item-text pathway: fixed pre-computed text vectors (the MiniLM teacher) or a trainable DistilBERT student
distilled from them.

The frozen teacher is held outside the module's registered children, so it is never in ``parameters()``,
``state_dict()`` (best-weights copies) or the optimizer, and gradients cannot reach it (its parameters have
``requires_grad=False`` and its forward runs under ``torch.no_grad``).
"""
from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from metarec.methods.distill import losses
from metarec.methods.distill.backbones import dense_rows
from metarec.methods.lightning import FiniteLossGuard


class FrozenTeacher:
    """A trained teacher backbone (+ its fixed text vectors) that produces logits and never learns."""

    def __init__(self, module: "DistillModule"):
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        self.module = module

    def to(self, device):
        self.module.to(device)
        return self

    @torch.no_grad()
    def seq_logits(self, inputs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        m = self.module
        table = m.item_table()
        h = m.backbone.hidden(inputs, table)
        return m.backbone.logits(h[valid], table)

    @torch.no_grad()
    def seq_topk(self, inputs: torch.Tensor, targets: torch.Tensor, k: int, exclude_target: bool,
                 batch: int = 256) -> torch.Tensor:
        """[C, L, K] the teacher's top-K next items at every position of every training chunk (computed once per
        student run: the chunks are fixed and the teacher is deterministic in eval mode). With ``exclude_target``
        the position's own target is left out (Ranking Distillation: it is in the hard loss already)."""
        out = torch.zeros((*inputs.shape, k), dtype=torch.long)
        for lo in range(0, len(inputs), batch):
            x, y = inputs[lo:lo + batch], targets[lo:lo + batch]
            valid = y >= 0
            t = self.seq_logits(x, valid)
            if exclude_target:
                t.scatter_(1, y[valid].unsqueeze(1), float("-inf"))
            block = torch.zeros((*x.shape, k), dtype=torch.long)
            block[valid] = t.topk(k, dim=-1).indices
            out[lo:lo + batch] = block
        return out

    @torch.no_grad()
    def bag_logits(self, bag: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        m = self.module
        return m.backbone.score(bag, m.item_table())


class MethodTeacher:
    """Any fitted method as a general-protocol teacher: its ``score(users)`` over all items are the logits
    (e.g. a tuned, converged mf-bpr). Sequence KD needs logits at every training prefix, which only a sequence
    backbone gives: ``seq_logits`` refuses."""

    def __init__(self, method):
        self.method = method
        if getattr(method, "module", None) is not None:
            method.module.eval()
            for p in method.module.parameters():
                p.requires_grad_(False)

    def to(self, device):
        if getattr(self.method, "module", None) is not None:
            self.method.module.to(device)
        return self

    @torch.no_grad()
    def bag_logits(self, bag: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        self.method.set_stage("valid")   # train history only, as the student's training bag
        return self.method.score(users).to(bag.device, bag.dtype)

    def seq_logits(self, inputs, valid):
        raise ValueError("a method teacher gives whole-catalogue user scores, not logits at sequence positions")

    def seq_topk(self, *args, **kwargs):
        raise ValueError("a method teacher gives whole-catalogue user scores, not logits at sequence positions")


class DistillModule(FiniteLossGuard, pl.LightningModule):
    def __init__(self, backbone, *, histories: dict, train_matrix=None, lr: float = 1e-3, weight_decay: float = 0.0,
                 kd: str | None = None, kd_weight: float = 0.0, temperature: float = 2.0, kd_k: int = 10,
                 rd_lambda: float = 5.0, teacher: FrozenTeacher | None = None,
                 text_emb: torch.Tensor | None = None, has_text: torch.Tensor | None = None,
                 text_student=None, text_ids: torch.Tensor | None = None, text_mask: torch.Tensor | None = None,
                 emb_weight: float = 0.0, text_batch: int = 256):
        super().__init__()
        self.backbone = backbone
        self.kind = backbone.kind
        self.histories = histories          # stage -> (seq, length) or CSR matrix
        self.train_matrix = train_matrix    # general: CSR of split.train
        self.lr, self.weight_decay = lr, weight_decay
        self.kd, self.kd_weight, self.temperature, self.kd_k, self.rd_lambda = kd, kd_weight, temperature, kd_k, rd_lambda
        self._teacher = (teacher,) if teacher is not None else ()   # a tuple: not a registered child
        self.text_student = text_student
        self.emb_weight, self.text_batch = emb_weight, text_batch
        n_items = backbone.items.emb.num_embeddings - 1
        if text_emb is not None:
            self.register_buffer("text_emb", text_emb.float(), persistent=False)
            self.register_buffer("has_text", has_text.bool(), persistent=False)
        else:
            self.text_emb = self.has_text = None
        if text_student is not None:
            self.register_buffer("text_ids", text_ids, persistent=False)
            self.register_buffer("text_mask", text_mask, persistent=False)
            self.register_buffer("text_cache", torch.zeros(n_items, text_student.dim), persistent=False)
            self._cache_dirty = True
        self.gen = torch.Generator().manual_seed(0)
        self.epoch_times: list[float] = []

    @property
    def teacher(self) -> FrozenTeacher | None:
        return self._teacher[0] if self._teacher else None

    def on_fit_start(self):
        if self.kd and self.teacher is None:   # (a module built only to score or to load weights needs none)
            raise ValueError(f"kd={self.kd!r} needs a teacher to train")
        if self.teacher is not None:
            self.teacher.to(self.device)

    # ---- item text ------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def refresh_text_cache(self, batch: int = 512) -> None:
        """Re-encode every item with text through the student encoder (eval mode) into ``text_cache``."""
        if self.text_student is None:
            return
        was = self.text_student.training
        self.text_student.eval()
        idx = torch.nonzero(self.has_text, as_tuple=True)[0]
        for lo in range(0, len(idx), batch):
            i = idx[lo:lo + batch]
            self.text_cache[i] = self.text_student(self.text_ids[i], self.text_mask[i])
        self.text_student.train(was)
        self._cache_dirty = False

    def item_table(self, fresh_items: torch.Tensor | None = None):
        """[n_items + 1, dim] item representations; with a text student and ``fresh_items``, those items are
        re-encoded with gradients (the others come from the per-epoch cache). Returns (table, fresh vectors)."""
        if self.text_student is not None:
            if self._cache_dirty and fresh_items is None:
                self.refresh_text_cache()
            text = self.text_cache
            fresh = None
            if fresh_items is not None and len(fresh_items):
                fresh = self.text_student(self.text_ids[fresh_items], self.text_mask[fresh_items])
                text = text.index_put((fresh_items,), fresh)
            table = self.backbone.items(text, self.has_text)
            return (table, fresh) if fresh_items is not None else table
        table = self.backbone.items(self.text_emb, self.has_text)
        return (table, None) if fresh_items is not None else table

    def _fresh_items(self, seen: torch.Tensor) -> torch.Tensor:
        """Items to re-encode this step: the batch's items with text, topped up with random ones, capped."""
        cand = torch.unique(seen[seen >= 0])
        cand = cand[self.has_text[cand]]
        k = self.text_batch
        if len(cand) > k:
            cand = cand[torch.randperm(len(cand), generator=self.gen)[:k].to(cand.device)]
        elif len(cand) < k:
            pool = torch.nonzero(self.has_text, as_tuple=True)[0]
            extra = pool[torch.randint(len(pool), (k - len(cand),), generator=self.gen).to(pool.device)]
            cand = torch.unique(torch.cat([cand, extra]))
        return cand

    def on_train_epoch_start(self):
        import time

        self._close_epoch_timer()
        self._epoch_t0 = time.perf_counter()
        if self.text_student is not None:
            self.refresh_text_cache()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        import time

        self._batch_t1 = time.perf_counter()

    def on_train_end(self):
        self._close_epoch_timer()

    def _close_epoch_timer(self) -> None:
        """``epoch_times``: seconds from each epoch's start to its last optimizer step (validation excluded)."""
        if getattr(self, "_epoch_t0", None) is not None and getattr(self, "_batch_t1", None) is not None:
            self.epoch_times.append(self._batch_t1 - self._epoch_t0)
        self._epoch_t0 = self._batch_t1 = None

    # ---- training -------------------------------------------------------------------------------------------------
    def forward_train(self, batch):
        """(student logits [N, n_items], hard loss, teacher logits or None, the KD exclusion targets, seen items)."""
        top = None
        if self.kind == "sequential":
            inputs, targets = batch[0], batch[1]
            width = int((targets >= 0).sum(1).max().clamp(min=1))   # right padding: drop all-pad columns
            inputs, targets = inputs[:, :width], targets[:, :width]
            valid = targets >= 0
            seen = targets[valid]
            if len(batch) > 2:                                        # pre-computed teacher top-K
                top = batch[2][:, :width][valid]
        else:
            (users,) = batch
            bag = dense_rows(self.train_matrix, users).to(self.device)
            seen = torch.nonzero(bag.sum(0) > 0, as_tuple=True)[0]
        fresh_items = self._fresh_items(seen) if self.text_student is not None else None
        if fresh_items is not None:
            table, fresh = self.item_table(fresh_items)
        else:
            table, fresh = self.item_table(), None
        if self.kind == "sequential":
            h = self.backbone.hidden(inputs, table)
            logits = self.backbone.logits(h[valid], table)
            y = targets[valid]
            hard = F.cross_entropy(logits, y)
            t_logits = self.teacher.seq_logits(inputs, valid) if self.kd and top is None else None
            exclude = y
        else:
            logits = self.backbone.score(bag, table)
            hard = (-(bag * F.log_softmax(logits, -1)).sum(1) / bag.sum(1).clamp(min=1)).mean()
            t_logits = self.teacher.bag_logits(bag, users) if self.kd else None
            # the rank losses learn the teacher's ranking of what the user has not seen: its top-K would otherwise
            # be mostly the training items, which the hard loss already fits (RD, DE-RRD: top unobserved items)
            exclude = bag > 0
        self._top = top
        return logits, hard, t_logits, exclude, (fresh_items, fresh)

    def kd_loss(self, logits: torch.Tensor, t_logits: torch.Tensor | None, exclude: torch.Tensor | None,
                top: torch.Tensor | None = None) -> torch.Tensor:
        if self.kd == "soft":
            return losses.soft_kd(logits, t_logits, self.temperature)
        if self.kd == "rd":
            return losses.rd(logits, t_logits, k=self.kd_k, lam=self.rd_lambda, exclude=exclude, top=top)
        if self.kd == "rrd":   # sequential: the target stays a candidate (as the studies of distill.yaml ran)
            return losses.rrd(logits, t_logits, k=self.kd_k, top=top,
                              exclude=exclude if self.kind == "general" else None)
        raise ValueError(f"unknown kd {self.kd!r}")

    def training_step(self, batch, batch_idx):
        logits, hard, t_logits, exclude, (fresh_items, fresh) = self.forward_train(batch)
        loss = hard
        if self.kd:
            kd = self.kd_loss(logits, t_logits, exclude, self._top)
            self.log("train/kd", kd, on_step=False, on_epoch=True)
            loss = loss + self.kd_weight * kd
        if self.text_student is not None:
            self._cache_dirty = True
            if self.emb_weight > 0 and fresh is not None:
                emb = losses.emb_mse(self.text_student.distill_head(fresh), self.text_emb[fresh_items])
                self.log("train/emb", emb, on_step=False, on_epoch=True)
                loss = loss + self.emb_weight * emb
        self.log("train/hard", hard, on_step=False, on_epoch=True)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return self.check_finite(loss)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)

    # ---- scoring --------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, users: torch.Tensor, stage: str = "test") -> torch.Tensor:
        table = self.item_table()
        if self.kind == "sequential":
            seq, length = self.histories[stage]
            users = users.cpu()
            return self.backbone.score(seq[users].to(self.device), length[users], table)
        bag = dense_rows(self.histories[stage], users).to(self.device)
        return self.backbone.score(bag, table)


class DistillDataModule(pl.LightningDataModule):
    """Shuffled rows of ``tensors`` (sequential: chunks (inputs, targets[, teacher top-K]); general: users).

    With ``lengths`` (sequential), batches are length-bucketed: rows are shuffled, cut into pools of 32 batches,
    sorted by length within a pool, and the batches shuffled again, so a batch of short sequences is trimmed to its
    longest row instead of ``max_len`` (same rows per epoch, far less padding on short-sequence datasets)."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, seed: int,
                 lengths: torch.Tensor | None = None):
        super().__init__()
        self.tensors, self.batch_size, self.seed, self.epoch = tensors, batch_size, seed, 0
        self.lengths = lengths

    def train_dataloader(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        ds = TensorDataset(*self.tensors)
        if self.lengths is None:
            g = torch.Generator().manual_seed(int(rng.integers(2**31)))
            return DataLoader(ds, batch_size=self.batch_size, shuffle=True, generator=g)
        order = rng.permutation(len(ds))
        lengths = self.lengths.numpy()
        pool = 32 * self.batch_size
        batches = []
        for lo in range(0, len(order), pool):
            chunk = order[lo:lo + pool]
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        batches = [batches[i] for i in rng.permutation(len(batches))]
        return DataLoader(ds, batch_sampler=batches)
