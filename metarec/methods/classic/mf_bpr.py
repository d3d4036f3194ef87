"""Matrix factorisation with the BPR loss (Rendle et al., UAI 2009) as a LightningModule + LightningDataModule.

Negatives are sampled uniformly per epoch for every training pair, vectorised: candidate negatives are drawn for
all pairs at once and the ones that hit a user's training item are redrawn, until none do. Batches are slices of a
shuffled index (``IndexBatches``), not a per-sample ``DataLoader`` collation: on ml-100k that is ~5 ms an epoch
instead of ~900 ms, which is most of an epoch's cost for a model this small.

The model and training loop are RecBole 1.2.1's BPR (64-d, Xavier-normal init, Adam, one uniform negative per
positive, validation every epoch, stop after 10 validations without gain). The defaults ``lr=4e-3``,
``weight_decay=2e-5`` are the tuned values (results/tuned-bpr: 20 TPE trials on the ml-100k general tuning split,
best lr 4.17e-3, weight decay 2.14e-5); with RecBole's own defaults (lr 1e-3, no weight decay) both reach the same
quality (docs/tuning.md). ``search_space`` is what a tuned grid searches.
"""
from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from metarec.data.schema import ITEM, USER
from metarec.methods.lightning import FiniteLossGuard, LightningMethod
from metarec.methods.registry import register
from metarec.methods.space import loguniform


def sample_negatives(users: np.ndarray, n_items: int, positive_keys: np.ndarray, rng: np.random.Generator,
                     max_rounds: int = 100) -> np.ndarray:
    """One uniform negative per row, never an item in ``positive_keys`` (sorted user * n_items + item)."""
    neg = rng.integers(0, n_items, size=len(users))
    todo = np.arange(len(users))
    for _ in range(max_rounds):
        keys = users[todo] * n_items + neg[todo]
        pos = np.searchsorted(positive_keys, keys)
        hit = positive_keys[np.minimum(pos, len(positive_keys) - 1)] == keys
        todo = todo[hit]
        if not len(todo):
            return neg
        neg[todo] = rng.integers(0, n_items, size=len(todo))
    return neg  # a user who has interacted with (almost) every item keeps a few false negatives


class IndexBatches:
    """Mini-batches of aligned tensors, shuffled by one permutation and cut into slices (no per-sample collation)."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], batch_size: int, generator: torch.Generator):
        self.tensors, self.batch_size = tensors, batch_size
        self.order = torch.randperm(len(tensors[0]), generator=generator)

    def __len__(self) -> int:
        return (len(self.order) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        for start in range(0, len(self.order), self.batch_size):
            idx = self.order[start:start + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


class PairwiseDataModule(pl.LightningDataModule):
    """Yields (user, positive, negative) batches; fresh negatives each epoch (deterministic given the seed)."""

    def __init__(self, split, batch_size: int, seed: int):
        super().__init__()
        self.users = split.train[USER].to_numpy(np.int64)
        self.items = split.train[ITEM].to_numpy(np.int64)
        self.n_items = split.n_items
        self.keys = np.unique(self.users * self.n_items + self.items)
        self.batch_size, self.seed, self.epoch = batch_size, seed, 0

    def train_dataloader(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        neg = sample_negatives(self.users, self.n_items, self.keys, rng)
        g = torch.Generator().manual_seed(int(rng.integers(2**31)))
        return IndexBatches((torch.from_numpy(self.users), torch.from_numpy(self.items), torch.from_numpy(neg)),
                            self.batch_size, g)


class MFBPRModule(FiniteLossGuard, pl.LightningModule):
    def __init__(self, n_users: int, n_items: int, dim: int, lr: float, reg: float, weight_decay: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        nn.init.xavier_normal_(self.user.weight)   # RecBole's BPR initialisation
        nn.init.xavier_normal_(self.item.weight)

    def training_step(self, batch, batch_idx):
        u, i, j = batch
        # index_select, not the embedding call: its backward (a scatter-add) is ~25 % cheaper on CPU than
        # embedding_dense_backward, and this gather is most of a step's cost for a model this small
        users, items = self.user.weight, self.item.weight
        eu, ei, ej = users.index_select(0, u), items.index_select(0, i), items.index_select(0, j)
        x = (eu * (ei - ej)).sum(-1)
        loss = -F.logsigmoid(x).mean()
        # L2 on the embeddings used in the batch (the usual BPR regulariser), averaged per example
        if self.hparams.reg:
            loss = loss + self.hparams.reg * (eu.pow(2).sum() + ei.pow(2).sum() + ej.pow(2).sum()) / len(u)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return self.check_finite(loss)

    def configure_optimizers(self):
        # weight_decay: Adam's L2 on every parameter at every step, as RecBole's trainer applies it (its BPR has no
        # other regulariser); reg: the classic per-batch L2 on the embeddings a batch uses
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.user(users) @ self.item.weight.T


@register("mf-bpr")
class MFBPR(LightningMethod):
    """Matrix factorisation trained with BPR (Rendle 2009): dot product of user and item embeddings."""
    defaults = {**LightningMethod.defaults, "dim": 64, "lr": 4e-3, "reg": 0.0, "weight_decay": 2e-5, "batch_size": 4096,
                "max_epochs": 500, "patience": 10, "eval_every": 1}
    # the same two knobs over the same ranges as recbole:BPR's space (learning rate, Adam's weight decay), width fixed
    # at 64 like RecBole's benchmarks; 1e-8 stands in for "no L2" on a log scale
    search_space = {"lr": loguniform(5e-5, 1e-2), "weight_decay": loguniform(1e-8, 1e-4)}

    def build_module(self, split):
        p = self.params
        return MFBPRModule(split.n_users, split.n_items, int(p["dim"]), float(p["lr"]), float(p["reg"]),
                           float(p["weight_decay"]))

    def build_datamodule(self, split, seed):
        return PairwiseDataModule(split, int(self.params["batch_size"]), seed)
