"""Non-personalised baselines: most-popular (optionally in a recent window), most-recent, and random.

They are the floor every learned model must clear; on news (the MIND sample) popularity over all time, popularity in
a recent window and recency can rank quite differently, so a table needs all of them. ``pop`` and ``recency`` give
every user the same list; ``random`` a fresh ordering per user.
"""
from __future__ import annotations

import numpy as np
import torch

from metarec.data.schema import ITEM, LABEL, TIME
from metarec.errors import ConfigError
from metarec.methods.base import Method, as_user_tensor
from metarec.methods.registry import register
from metarec.params import Domain


class _ItemScores(Method):
    """One score per item, the same for every user; cold users' support says nothing about it."""

    def adapt(self, support):
        return None

    def score(self, users):
        users = as_user_tensor(users)
        return self.item_scores.unsqueeze(0).expand(len(users), -1)


def _train_events(split):
    """The positive train events with their times: clicks of train impressions under impressions (the click
    histories' times are those of the impression that showed them, which can lie in a later stage), else train."""
    if split.is_impressions:
        imp = split.frames["train_impressions"]
        return imp[imp[LABEL] == 1]
    return split.train


def _train_end(split) -> int:
    frame = split.frames["train_impressions"] if split.is_impressions else split.train
    return int(frame[TIME].max())


def _need_timestamps(method: Method, split, why: str) -> None:
    if "timestamps" not in split.capabilities:
        raise ConfigError(f"method {method.name!r}: {why} needs timestamps; split {split.dataset}/{split.protocol} "
                          f"has none")


@register("pop")
class Pop(_ItemScores):
    """Most popular items: each item scored by its number of training interactions (impressions: train clicks),
    counting only the last ``window_s`` seconds of the train stage when set (popularity-in-window)."""
    defaults = {"window_s": None}
    domains = {"window_s": Domain("int", 1, nullable=True)}

    def fit(self, split, *, seed=0, workdir=None):
        self.n_users, self.n_items = split.n_users, split.n_items
        events = split.train
        if self.params["window_s"] is not None:
            _need_timestamps(self, split, "window_s")
            events = _train_events(split)
            events = events[events[TIME] > _train_end(split) - int(self.params["window_s"])]
        counts = np.bincount(events[ITEM].to_numpy(), minlength=split.n_items).astype(np.float32)
        self.counts = self.item_scores = torch.from_numpy(counts)
        return self


@register("recency")
class Recency(_ItemScores):
    """Newest items first: each item scored by the first time it appears in the train stage (as an interaction or,
    under impressions, as a shown candidate); items the train stage never showed are newer than all of them and tie
    at the top. For news this is the publication-order baseline (MIND has no publication times)."""
    defaults = {}

    def fit(self, split, *, seed=0, workdir=None):
        _need_timestamps(self, split, "recency")
        self.n_users, self.n_items = split.n_users, split.n_items
        frame = split.frames["train_impressions"] if split.is_impressions else split.train
        first = np.full(split.n_items, np.inf)
        np.minimum.at(first, frame[ITEM].to_numpy(np.int64), frame[TIME].to_numpy(np.float64))
        # float64 keeps unix seconds exact; an unseen item is newest (+inf)
        self.item_scores = torch.from_numpy(np.where(np.isinf(first), np.inf, first - _train_end(split)))
        return self


@register("random")
class Random(Method):
    """Uniformly random scores: per user a random ordering of the catalogue, drawn from (run seed, user) so a user's
    list does not depend on how users are batched. The floor of chance."""
    defaults = {}

    def fit(self, split, *, seed=0, workdir=None):
        self.n_users, self.n_items, self.seed = split.n_users, split.n_items, int(seed)
        return self

    def score(self, users):
        users = as_user_tensor(users)
        out = torch.empty((len(users), self.n_items))
        for row, user in enumerate(users.tolist()):
            out[row] = torch.rand(self.n_items, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + user))
        return out
