"""Item-based k-nearest-neighbours with shrunk cosine similarity (Sarwar et al., WWW 2001), as a metarec plugin.

Everything metarec needs is the Method contract: ``fit(split, seed, workdir)`` and ``score(users)``. The class is
found through the entry point ``itemknn-cosine`` in this package's pyproject.toml; metarec itself is not touched.
"""
from __future__ import annotations

import numpy as np
import torch

from metarec.methods import Method


class ItemKNNCosine(Method):
    """Item kNN: cosine similarity between item columns, shrunk, top-k neighbours per item."""

    defaults = {"k": 100, "shrink": 10.0}
    # what a tuned grid searches (metarec.methods.space words: plain dicts, no metarec import needed for them)
    search_space = {"k": {"int": [10, 1000], "log": True}, "shrink": {"float": [0.0, 200.0]}}

    def fit(self, split, *, seed=0, workdir=None):
        self.n_users, self.n_items = split.n_users, split.n_items
        u = torch.as_tensor(split.train["user"].to_numpy(np.int64))
        i = torch.as_tensor(split.train["item"].to_numpy(np.int64))
        x = torch.sparse_coo_tensor(torch.stack([u, i]), torch.ones(len(u)), (self.n_users, self.n_items)).coalesce()
        x = torch.sparse_coo_tensor(x.indices(), torch.ones_like(x.values()), x.shape).coalesce()  # binarise
        self.x = x
        co = torch.sparse.mm(x.t(), x).to_dense()                       # item x item co-occurrence
        norm = co.diagonal().clamp(min=1e-12).sqrt()
        sim = co / (norm[:, None] * norm[None, :] + float(self.params["shrink"]))
        sim.fill_diagonal_(0.0)
        k = min(int(self.params["k"]), self.n_items - 1)
        top = sim.topk(k, dim=0)                                         # keep each item's k nearest neighbours
        self.sim = torch.zeros_like(sim).scatter_(0, top.indices, top.values)
        return self

    def score(self, users):
        users = torch.as_tensor(users, dtype=torch.long)
        rows = self.x.index_select(0, users)                             # sparse: the users' histories
        return torch.sparse.mm(rows, self.sim)

    def num_parameters(self) -> int:
        return 0  # memory-based: no trained parameters
