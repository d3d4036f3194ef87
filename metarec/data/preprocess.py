"""Dataset-level preprocessing: rating threshold, iterative k-core, contiguous re-indexing.

Applied consistently to ``interactions`` and every ``given`` part (the k-core is computed on all interactions, i.e.
the union of the given parts, so the parts stay a partition of it). Impression logs (MIND) cannot be k-cored without
changing what was shown, so ``k_core`` on a dataset with ``impressions`` is a ConfigError; so is ``min_rating`` on
a dataset without ratings.
"""
from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from metarec.data.schema import ITEM, RATING, USER, Dataset
from metarec.errors import ConfigError


def copy_dataset(ds: Dataset) -> Dataset:
    """An independent copy (frames and id arrays copied; list cells inside feature frames are shared)."""
    return Dataset(
        name=ds.name,
        interactions=ds.interactions.copy(),
        user_ids=ds.user_ids.copy(),
        item_ids=ds.item_ids.copy(),
        item_features=None if ds.item_features is None else ds.item_features.copy(),
        user_features=None if ds.user_features is None else ds.user_features.copy(),
        given=None if ds.given is None else {k: v.copy() for k, v in ds.given.items()},
        impressions=None if ds.impressions is None else ds.impressions.copy(),
        meta=copy.deepcopy(ds.meta),
    )


def k_core_mask(users: np.ndarray, items: np.ndarray, k: int, n_users: int, n_items: int) -> np.ndarray:
    """Boolean row mask of the iterative k-core: every kept user and item has >= k kept rows."""
    keep = np.ones(len(users), dtype=bool)
    while True:
        uc = np.bincount(users[keep], minlength=n_users)
        ic = np.bincount(items[keep], minlength=n_items)
        new = keep & (uc[users] >= k) & (ic[items] >= k)
        if new.sum() == keep.sum():
            return new
        keep = new


def preprocess(ds: Dataset, min_rating: float | None = None, k_core: int | None = None) -> Dataset:
    """Keep rows with rating >= ``min_rating``, then the iterative ``k_core`` (users and items), then re-index users
    and items to 0..n-1 (id maps and side information follow). Returns a new Dataset; ``ds`` is not modified."""
    if k_core is not None and (isinstance(k_core, bool) or not isinstance(k_core, (int, np.integer))
                               or k_core < 1):
        raise ConfigError(f"k_core must be a positive integer, got {k_core!r}")
    if min_rating is not None and not isinstance(min_rating, (int, float, np.number)):
        raise ConfigError(f"min_rating must be a number, got {min_rating!r}")
    if min_rating is None and not k_core:
        return ds
    frames: dict[str, pd.DataFrame] = {"interactions": ds.interactions}
    for k, v in (ds.given or {}).items():
        frames[f"given:{k}"] = v
    if min_rating is not None:
        if any(RATING not in f.columns for f in frames.values()):
            raise ConfigError(f"min_rating={min_rating}: dataset {ds.name!r} has no ratings "
                              f"(columns: {', '.join(ds.interactions.columns)})")
        frames = {k: f[f[RATING].to_numpy() >= min_rating] for k, f in frames.items()}
    if k_core:
        if ds.impressions is not None:
            raise ConfigError(f"k_core is not defined for the impression log of {ds.name!r}: filtering candidates "
                              "would change what users were shown; filter users/items in the protocol instead")
        base = frames["interactions"]
        if ds.given:  # the union of the parts (interactions is that union, possibly in another order)
            base = pd.concat([frames[f"given:{k}"] for k in ds.given], ignore_index=True)
        keep = k_core_mask(base[USER].to_numpy(), base[ITEM].to_numpy(), int(k_core), ds.n_users, ds.n_items)
        kept_users = np.zeros(ds.n_users, dtype=bool)
        kept_items = np.zeros(ds.n_items, dtype=bool)
        kept_users[base[USER].to_numpy()[keep]] = True
        kept_items[base[ITEM].to_numpy()[keep]] = True
        frames = {k: f[kept_users[f[USER].to_numpy()] & kept_items[f[ITEM].to_numpy()]] for k, f in frames.items()}
    # re-index: users/items that keep at least one row (in interactions, any given part or the impressions)
    used_u = np.zeros(ds.n_users, dtype=bool)
    used_i = np.zeros(ds.n_items, dtype=bool)
    for f in frames.values():
        used_u[f[USER].to_numpy()] = True
        used_i[f[ITEM].to_numpy()] = True
    imps = ds.impressions
    if imps is not None:
        keep_imp = used_u[imps[USER].to_numpy()]  # impressions of users that still exist (rating filter only)
        imps = imps[keep_imp]
        used_i[imps[ITEM].to_numpy()] = True
    old_u = np.flatnonzero(used_u)
    old_i = np.flatnonzero(used_i)
    new_u = np.full(ds.n_users, -1, dtype=np.int64)
    new_i = np.full(ds.n_items, -1, dtype=np.int64)
    new_u[old_u] = np.arange(len(old_u))
    new_i[old_i] = np.arange(len(old_i))

    def remap(f: pd.DataFrame) -> pd.DataFrame:
        f = f.reset_index(drop=True).copy()
        f[USER] = new_u[f[USER].to_numpy()]
        f[ITEM] = new_i[f[ITEM].to_numpy()]
        return f

    out = copy_dataset(ds)
    out.interactions = remap(frames["interactions"])
    if ds.given:
        out.given = {k: remap(frames[f"given:{k}"]) for k in ds.given}
    if imps is not None:
        out.impressions = remap(imps)
    out.user_ids = ds.user_ids[old_u]
    out.item_ids = ds.item_ids[old_i]
    if ds.item_features is not None:
        out.item_features = ds.item_features.iloc[old_i].reset_index(drop=True)
    if ds.user_features is not None:
        out.user_features = ds.user_features.iloc[old_u].reset_index(drop=True)
    out.meta["preprocess"] = {"min_rating": min_rating, "k_core": k_core}
    return out.validate()
