"""What a split's data can say beyond (user, item): item class labels, item domains, and the split's capabilities.

Capabilities are the declared side of "what can run here": a method or a task says what it requires, the split says
what it has, and one set comparison decides (no dataset-name globs). A split has

    ranking            interaction frames ranked over the catalogue (every protocol but impressions)
    impressions        candidate lists with click labels (``train_impressions``; MIND)
    ratings            explicit ratings on train interactions
    timestamps         event times on train interactions
    support            cold start: K-shot support sets of the evaluated users
    user_features      a user feature table
    item_text          some item has text
    item_label:<col>   a single-label item attribute with at least two classes (``ITEM_LABELS``: category, brand);
                       an item whose value is missing or a list is unlabelled
    domains            a combined multi-domain dataset (``item_features['domain']``, ``metarec.data.combine``)
"""
from __future__ import annotations

import numpy as np

from metarec.data.schema import RATING, TIME

#: single-label item attributes a model may be asked to predict (multi-task class heads)
ITEM_LABELS = ("category", "brand")


def item_labels(split, column: str) -> tuple[np.ndarray, list[str]]:
    """Per-item class index (-1 where unknown) and the sorted class names of ``item_features[column]``.

    Only single string values label an item; empty strings, NaN and lists (several categories) do not."""
    feats = split.item_features
    if feats is None or column not in feats.columns or len(feats) != split.n_items:
        return np.full(split.n_items, -1, dtype=np.int64), []
    raw = [v if isinstance(v, str) else "" for v in feats[column].to_numpy(dtype=object)]
    classes = sorted({c for c in raw if c})
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(c, -1) for c in raw], dtype=np.int64), classes


def item_domains(split) -> tuple[np.ndarray, list[str]] | None:
    """Per-item domain index and names for a combined multi-domain split (item_features['domain']); else None."""
    feats = split.item_features
    if feats is None or "domain" not in feats.columns:
        return None
    names = sorted(set(feats["domain"]))
    index = {d: i for i, d in enumerate(names)}
    return feats["domain"].map(index).to_numpy(np.int64), names


def capabilities(split) -> frozenset[str]:
    """What the split's data offers (see the module docstring)."""
    caps = set()
    caps.add("impressions" if split.is_impressions else "ranking")
    train = split.train
    if RATING in train.columns and train[RATING].notna().any():
        caps.add("ratings")
    if TIME in train.columns:
        caps.add("timestamps")
    if any(name.endswith("_support") for name in split.frames):
        caps.add("support")
    if split.user_features is not None and len(split.user_features.columns):
        caps.add("user_features")
    feats = split.item_features
    if feats is not None:
        if "text" in feats.columns and feats["text"].map(lambda v: isinstance(v, str) and bool(v.strip())).any():
            caps.add("item_text")
        for column in ITEM_LABELS:
            if len(item_labels(split, column)[1]) >= 2:
                caps.add(f"item_label:{column}")
        if "domain" in feats.columns:
            caps.add("domains")
    return frozenset(caps)
