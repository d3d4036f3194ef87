"""Shared fixtures-as-functions for tests/eval (no conftest: keeps the test tree free of name clashes)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import metarec  # noqa: F401  (compat shims)
from metarec.protocols.split import Split


def random_split(n_users=40, n_items=60, per_user=(6, 20), seed=0, genres=True, rating=True,
                 no_target_users=2) -> Split:
    """A random ranking split: per user distinct items, cut into train/valid/test (disjoint per user). The last
    ``no_target_users`` users have train interactions only (no valid/test targets)."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "valid": [], "test": []}
    for u in range(n_users):
        n = int(rng.integers(per_user[0], per_user[1] + 1))
        items = rng.choice(n_items, n, replace=False)
        if u >= n_users - no_target_users:
            parts["train"].append((u, items))
            continue
        n_te = int(rng.integers(1, max(2, n // 3)))
        n_va = int(rng.integers(1, max(2, n // 4)))
        parts["test"].append((u, items[:n_te]))
        parts["valid"].append((u, items[n_te:n_te + n_va]))
        parts["train"].append((u, items[n_te + n_va:]))
    frames = {}
    for name, rows in parts.items():
        u = np.concatenate([np.full(len(it), uu) for uu, it in rows]).astype(np.int64)
        i = np.concatenate([it for _, it in rows]).astype(np.int64)
        df = pd.DataFrame({"user": u, "item": i})
        if rating:
            df["rating"] = rng.integers(1, 6, len(df)).astype(np.float32)
        frames[name] = df
    feats = None
    if genres:
        vocab = list("abcdefg")
        g = ["|".join(sorted(set(rng.choice(vocab, int(rng.integers(0, 4)), replace=True)))) for _ in range(n_items)]
        feats = pd.DataFrame({"title": [f"t{i}" for i in range(n_items)], "genres": g})
    return Split(dataset="toy", protocol="ratio", params={}, seed=seed, n_users=n_users, n_items=n_items,
                 frames=frames, item_features=feats)


def distinct_scores(n_users, n_items, seed=0) -> torch.Tensor:
    """Random scores without ties (a random permutation per row)."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(n_items, generator=g) for _ in range(n_users)]).float() / n_items


def recbole_numpy_aliases(monkeypatch) -> None:
    """RecBole 1.2.1's NDCG/MRR/MAP use ``np.float`` and GAUC ``np.bool``: aliases of the builtins that numpy 1.24
    removed. Restore them for the duration of a test (monkeypatch undoes it) so RecBole's own code can run."""
    import warnings

    with warnings.catch_warnings():  # numpy warns on the mere lookup of the removed names
        warnings.simplefilter("ignore", FutureWarning)
        monkeypatch.setattr(np, "float", float, raising=False)
        monkeypatch.setattr(np, "bool", bool, raising=False)
