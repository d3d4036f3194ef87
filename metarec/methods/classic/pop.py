"""Most-popular: every user gets the items ranked by their number of training interactions."""
from __future__ import annotations

import numpy as np
import torch

from metarec.data.schema import ITEM
from metarec.methods.base import Method, as_user_tensor
from metarec.methods.registry import register


@register("pop")
class Pop(Method):
    """Most popular items: each item scored by its training interaction count (the same list for every user)."""
    defaults = {}

    def fit(self, split, *, seed=0, workdir=None):
        self.n_users, self.n_items = split.n_users, split.n_items
        counts = np.bincount(split.train[ITEM].to_numpy(), minlength=split.n_items).astype(np.float32)
        self.counts = torch.from_numpy(counts)
        return self

    def adapt(self, support):  # a cold user's support interactions say nothing about global popularity
        return None

    def score(self, users):
        users = as_user_tensor(users)
        return self.counts.unsqueeze(0).expand(len(users), -1)
