"""The one in-memory schema every loader produces and every protocol consumes.

Ids inside metarec are contiguous ints from 0 (``user``/``item`` columns); original ids live only in
``user_ids``/``item_ids`` (index -> original id as str). Item 0 is a real item.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from metarec.errors import DataError

# Column names of the interaction frame. Optional columns are simply absent.
USER, ITEM, RATING, TIME = "user", "item", "rating", "timestamp"
IMPRESSION, LABEL = "impression", "label"
OPTIONAL_COLUMNS = (RATING, TIME, IMPRESSION, LABEL)


@dataclass
class Dataset:
    """Interactions + side information + id maps.

    interactions: one row per event, columns ``user``, ``item`` (int64) and optionally ``rating`` (float32),
        ``timestamp`` (int64 unix seconds, or order index where a dataset only has order), ``impression`` (int64
        impression id) and ``label`` (int8 click 0/1). Row order is meaningful where there is no timestamp
        (chronological per user).
    item_features / user_features: indexed 0..n-1 by metarec index. Conventional columns: items ``title`` (str),
        ``text`` (str: the best text available for a text encoder), ``genres``/``category`` (list[str] or str);
        users ``age``, ``gender``, ``occupation`` ... Missing values are NaN / "" / [], never absent rows.
    given: for datasets that ship their own split: {"train"|"valid"|"test": interactions-like frame}.
    impressions: for impression logs (MIND): columns impression, user, item, label, timestamp, one row per
        candidate shown; ``interactions`` then holds the users' click histories.
    """

    name: str
    interactions: pd.DataFrame
    user_ids: np.ndarray
    item_ids: np.ndarray
    item_features: pd.DataFrame | None = None
    user_features: pd.DataFrame | None = None
    given: dict[str, pd.DataFrame] | None = None
    impressions: pd.DataFrame | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. {"sample": True, "note": "..."}

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        if self.given:
            return sum(len(f) for f in self.given.values())
        return len(self.interactions)

    @property
    def columns(self) -> list[str]:
        return [c for c in self.interactions.columns]

    def describe(self) -> dict[str, Any]:
        inter = self.all_interactions()
        out = {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": len(inter),
            "columns": list(inter.columns),
            "density": len(inter) / max(1, self.n_users * self.n_items),
        }
        if self.impressions is not None:
            out["impressions"] = int(self.impressions[IMPRESSION].nunique())
            out["impression_candidates"] = len(self.impressions)
            out["clicks"] = int(self.impressions[LABEL].sum())
        if self.item_features is not None and "text" in self.item_features:
            out["items_with_text"] = int((self.item_features["text"].fillna("").str.len() > 0).sum())
        return out

    def all_interactions(self) -> pd.DataFrame:
        """Interactions, with a ``given`` split's parts concatenated (train, valid, test)."""
        if self.given:
            return pd.concat([self.given[k] for k in ("train", "valid", "test") if k in self.given],
                             ignore_index=True)
        return self.interactions

    def validate(self) -> "Dataset":
        """Cheap structural checks; raises DataError naming the dataset."""
        frames = {"interactions": self.interactions, **{f"given[{k}]": v for k, v in (self.given or {}).items()}}
        if self.impressions is not None:
            frames["impressions"] = self.impressions
        for label, df in frames.items():
            for col in (USER, ITEM):
                if col not in df.columns:
                    raise DataError(f"{self.name}: {label} has no {col!r} column")
                if len(df) and (df[col].min() < 0 or df[col].max() >= (self.n_users if col == USER else self.n_items)):
                    raise DataError(f"{self.name}: {label}.{col} out of range 0..{(self.n_users if col == USER else self.n_items) - 1}")
        return self


def index_ids(values: pd.Series, universe=None) -> tuple[np.ndarray, np.ndarray]:
    """Map original ids to contiguous ints 0..n-1 deterministically (sorted by original id; numeric ids sort
    numerically). Returns (codes, originals) with ``originals[code] == str(original id)``."""
    if universe is None:
        universe = values
    uniq = pd.unique(pd.Series(universe))
    try:
        order = np.argsort(np.asarray(uniq, dtype=np.int64), kind="stable")
    except (ValueError, TypeError, OverflowError):
        order = np.argsort(np.asarray(uniq, dtype=str), kind="stable")
    originals = np.asarray(uniq)[order].astype(str)
    lookup = pd.Index(originals)
    codes = lookup.get_indexer(values.astype(str))
    if (codes < 0).any():
        missing = values[codes < 0].iloc[0]
        raise DataError(f"id {missing!r} not in the id universe")
    return codes.astype(np.int64), originals


def build_dataset(name: str, frame: pd.DataFrame, *, user_col: str = "user_id", item_col: str = "item_id",
                  item_features: pd.DataFrame | None = None, item_key: str | None = None,
                  user_features: pd.DataFrame | None = None, user_key: str | None = None,
                  extra_items=None, extra_users=None, **kwargs) -> Dataset:
    """Build a Dataset from a frame with original ids in ``user_col``/``item_col``.

    Side-information frames carry the original id in ``item_key``/``user_key``; they are re-indexed to metarec's
    indices and rows for ids without side information are filled with missing values. ``extra_items`` /
    ``extra_users`` add ids that have no interaction (e.g. MIND candidates only seen in impressions).
    """
    users = frame[user_col] if extra_users is None else pd.concat([frame[user_col], pd.Series(extra_users)])
    items = frame[item_col] if extra_items is None else pd.concat([frame[item_col], pd.Series(extra_items)])
    u, user_ids = index_ids(frame[user_col], users)
    i, item_ids = index_ids(frame[item_col], items)
    out = pd.DataFrame({USER: u, ITEM: i})
    for col in OPTIONAL_COLUMNS:
        if col in frame.columns:
            out[col] = frame[col].to_numpy()
    out = normalise_dtypes(out)
    ds = Dataset(name=name, interactions=out, user_ids=user_ids, item_ids=item_ids,
                 item_features=align_features(item_features, item_key, item_ids),
                 user_features=align_features(user_features, user_key, user_ids), **kwargs)
    return ds


def normalise_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df[USER] = df[USER].astype(np.int64)
    df[ITEM] = df[ITEM].astype(np.int64)
    if RATING in df:
        df[RATING] = df[RATING].astype(np.float32)
    if TIME in df:
        df[TIME] = df[TIME].astype(np.int64)
    if IMPRESSION in df:
        df[IMPRESSION] = df[IMPRESSION].astype(np.int64)
    if LABEL in df:
        df[LABEL] = df[LABEL].astype(np.int8)
    return df


def align_features(features: pd.DataFrame | None, key: str | None, originals: np.ndarray) -> pd.DataFrame | None:
    """Re-index a side-information frame (keyed by original id) to 0..n-1; ids without a row get NaN."""
    if features is None:
        return None
    f = features.copy()
    f[key] = f[key].astype(str)
    f = f.drop_duplicates(key).set_index(key)
    f = f.reindex(pd.Index(originals, name=key))
    return f.reset_index(drop=False).rename(columns={key: "original_id"})
