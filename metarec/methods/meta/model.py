"""MeLU-style preference estimator (Lee et al., KDD 2019): user and item feature embeddings + a decision MLP.

The network is a chain of three stages, each taking one tensor::

    embed:  pairs [n, 2] (user, item) -> [n, (n_user_fields + n_item_fields) * dim]   feature embeddings
    hidden: Linear -> ReLU -> Linear -> ReLU                                          decision layers
    out:    Linear -> [n, 1]                                                          rating (or logit)

``split_stages(net, local)`` cuts the chain into a *global* prefix (meta-learned, never adapted per user) and a
*local* suffix (adapted on each user's support set; MeLU: ``local='decision'`` = hidden + out). Meta-learning
wraps only the local suffix in ``learn2learn`` so that exactly the configured parameters adapt.

Features. Each categorical column becomes one embedding field; numbers (age, year) are cut into quantile bins;
multi-valued columns ('|'-joined genres, lists) are averaged bags; missing values get their own category.
ml-100k: user age / gender / occupation / zip prefix, item genres / year; Amazon: item category / brand. A dataset
without user features gets one shared learned user vector (cold users have no usable id: personalisation comes
from adaptation alone); a dataset without item features gets a learned item-id embedding (``item_ids=True`` adds
one next to the features).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
import torch
from torch import nn

USER_COLUMNS = ("age", "gender", "occupation", "zip")
ITEM_COLUMNS = ("genres", "category", "brand", "year")
LOCAL_CHOICES = {"decision": 1, "out": 2, "all": 0}  # index of the first local stage in (embed, hidden, out)
N_BINS = 8


def _as_list(v) -> list[str]:
    if isinstance(v, (list, tuple, np.ndarray)):
        return [str(x) for x in v if str(x)]
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    return [p for p in str(v).split("|") if p]


def encode_column(col: pd.Series, name: str) -> np.ndarray:
    """One column -> codes [n, L] (0 = padding, >= 1 = category), L = longest bag (1 for single-valued)."""
    n = len(col)
    if pd.api.types.is_numeric_dtype(col):
        vals = col.to_numpy(dtype=float)
        ok = ~np.isnan(vals)
        codes = np.ones(n, dtype=np.int64)  # 1 = missing
        if ok.any():
            edges = np.unique(np.quantile(vals[ok], np.linspace(0, 1, N_BINS + 1)[1:-1]))
            codes[ok] = 2 + np.searchsorted(edges, vals[ok], side="right")
        return codes[:, None]
    if name == "zip":  # MeLU uses the zip code; its first digit is a coarse region
        col = col.map(lambda v: str(v)[:1] if isinstance(v, str) and v else None)
    lists = [_as_list(v) for v in col.to_numpy()]
    vocab = {c: j + 2 for j, c in enumerate(sorted({c for lst in lists for c in lst}))}
    width = max(1, max((len(lst) for lst in lists), default=1))
    codes = np.zeros((n, width), dtype=np.int64)
    for r, lst in enumerate(lists):
        if not lst:
            codes[r, 0] = 1  # missing
        for j, c in enumerate(lst):
            codes[r, j] = vocab[c]
    return codes


def feature_codes(frame: pd.DataFrame | None, n: int, columns, id_fallback: str) -> dict[str, np.ndarray]:
    """Field name -> codes [n, L] for the known ``columns`` present in ``frame``; without any: one fallback field
    ('id': one category per entity; 'shared': one category for all)."""
    fields: dict[str, np.ndarray] = {}
    if frame is not None and len(frame) == n:
        for c in columns:
            if c in frame.columns and frame[c].notna().any():
                fields[c] = encode_column(frame[c], c)
    if not fields:
        fields[id_fallback] = (np.arange(n, dtype=np.int64) + 1)[:, None] if id_fallback == "id" \
            else np.ones((n, 1), dtype=np.int64)
    return fields


class FeatureEmbedder(nn.Module):
    """(user, item) pairs -> concatenated field embeddings (bags averaged, padding ignored)."""

    def __init__(self, user_fields: dict[str, np.ndarray], item_fields: dict[str, np.ndarray], dim: int):
        super().__init__()
        self.user_names, self.item_names = list(user_fields), list(item_fields)
        self.emb = nn.ModuleDict()
        for side, fields in (("u", user_fields), ("i", item_fields)):
            for name, codes in fields.items():
                key = f"{side}_{name}"
                self.register_buffer(f"codes_{key}", torch.from_numpy(codes), persistent=False)
                self.emb[key] = nn.Embedding(int(codes.max()) + 1, dim, padding_idx=0)
                nn.init.normal_(self.emb[key].weight, std=0.1)
                with torch.no_grad():
                    self.emb[key].weight[0].zero_()
        self.out_dim = dim * (len(user_fields) + len(item_fields))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        parts = []
        for side, names, idx in (("u", self.user_names, pairs[:, 0]), ("i", self.item_names, pairs[:, 1])):
            for name in names:
                key = f"{side}_{name}"
                codes = getattr(self, f"codes_{key}")[idx]                       # [n, L]
                e = self.emb[key](codes)                                        # [n, L, d]
                cnt = (codes > 0).sum(1, keepdim=True).clamp_min(1).to(e.dtype)
                parts.append(e.sum(1) / cnt)
        return torch.cat(parts, dim=1)


class MeLUNet(nn.Sequential):
    """embed -> hidden (decision layers) -> out; ``forward(pairs) -> [n]`` predictions."""

    def __init__(self, user_fields, item_fields, dim: int = 32, hidden: int = 64, init_bias: float = 0.0):
        embed = FeatureEmbedder(user_fields, item_fields, dim)
        mlp = nn.Sequential(nn.Linear(embed.out_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        out = nn.Linear(hidden, 1)
        with torch.no_grad():
            out.bias.fill_(init_bias)
        super().__init__()
        self.add_module("embed", embed)
        self.add_module("hidden", mlp)
        self.add_module("out", out)


def split_stages(net: MeLUNet, local: str) -> tuple[nn.Sequential, nn.Sequential]:
    """(global prefix, local suffix) sharing the net's modules; an empty Sequential is the identity."""
    if local not in LOCAL_CHOICES:
        raise ValueError(f"local must be one of {', '.join(LOCAL_CHOICES)}, got {local!r}")
    stages = list(net.named_children())  # stage names (embed, hidden, out) are kept in parameter names
    cut = LOCAL_CHOICES[local]
    return nn.Sequential(OrderedDict(stages[:cut])), nn.Sequential(OrderedDict(stages[cut:]))


def build_net(split, dim: int, hidden: int, init_bias: float = 0.0, item_ids: bool | None = None) -> MeLUNet:
    """``item_ids``: add a learned item-id field (None: only when the split has no item features)."""
    users = feature_codes(split.user_features, split.n_users, USER_COLUMNS, "shared")
    items = feature_codes(split.item_features, split.n_items, ITEM_COLUMNS, "id")
    if item_ids and "id" not in items:
        items["id"] = (np.arange(split.n_items, dtype=np.int64) + 1)[:, None]
    return MeLUNet(users, items, dim=dim, hidden=hidden, init_bias=init_bias)
