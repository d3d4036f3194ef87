"""Toy data shared by the test tree: one place for the small datasets and splits tests build (not fixtures, so a
test says the size it needs). Real data lives in tests that load ml-100k."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

import metarec  # noqa: F401  (compat shims)
from metarec.data.schema import Dataset, build_dataset
from metarec.protocols.split import Split


def toy_dataset(n_users=30, n_items=40, per_user=25, seed=0, with_time=True) -> Dataset:
    """A Dataset with string ids "u<k>"/"i<k>": user k rates ``per_user - k % 5`` distinct random items (1-5 stars),
    at increasing distinct timestamps (none with ``with_time=False``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user - (u % 5), replace=False)
        for k, i in enumerate(items):
            rows.append((f"u{u}", f"i{i}", float(rng.integers(1, 6)), 1_000_000 + 100 * k + u))
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    if not with_time:
        df = df.drop(columns="timestamp")
    return build_dataset("toy", df)


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


def impressions_split(n_users=30, n_items=40, n_imp=150, seed=0) -> Split:
    """MIND-like impressions: each of ``n_imp`` impressions shows a user 5 candidates, one clicked; split 8:1:1 by
    impression time; ``train`` holds the clicks; items carry a category."""
    rng = np.random.default_rng(seed)
    rows = []
    for imp in range(n_imp):
        u = int(rng.integers(n_users))
        cand = rng.choice(n_items, 5, replace=False)
        lab = np.zeros(5, np.int8)
        lab[rng.integers(5)] = 1
        rows += [(imp, u, int(i), int(y), 1000 + imp) for i, y in zip(cand, lab)]
    df = pd.DataFrame(rows, columns=["impression", "user", "item", "label", "timestamp"])
    cut1, cut2 = int(n_imp * 0.8), int(n_imp * 0.9)
    frames = {"train_impressions": df[df.impression < cut1],
              "valid": df[(df.impression >= cut1) & (df.impression < cut2)], "test": df[df.impression >= cut2]}
    frames["train"] = frames["train_impressions"][frames["train_impressions"].label == 1][["user", "item", "timestamp"]]
    feats = pd.DataFrame({"category": [f"c {i % 4}" for i in range(n_items)], "subcategory": [None] * n_items})
    return Split(dataset="toy-imp", protocol="impressions", params={}, seed=0, n_users=n_users, n_items=n_items,
                 frames={k: v.reset_index(drop=True) for k, v in frames.items()}, item_features=feats)
