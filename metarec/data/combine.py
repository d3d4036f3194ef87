"""A combined multi-domain dataset: several loaded Datasets (e.g. the Amazon 2018 categories) side by side, one
domain each, with disjoint user and item id ranges (a reviewer id seen in two categories becomes two users: the
domains share the model, not the ids). Items keep contiguous ranges per domain and carry ``item_features['domain']``;
the multi-task methods then get one interaction task per domain (``tasks: [domains]``).

A dataset card with ``parts`` (e.g. ``amazon2018-multidomain``) is loaded this way by ``load_dataset``, so a
combined dataset goes through splits, the run store and grids like any other."""
from __future__ import annotations

import numpy as np
import pandas as pd

from metarec.data.schema import ITEM, USER, Dataset

PREFIX = "multidomain:"


def combine(datasets: list[Dataset], name: str | None = None) -> Dataset:
    """Concatenate ``datasets`` into one Dataset named ``multidomain:<a>+<b>...`` (ids offset per domain)."""
    if len(datasets) < 2:
        raise ValueError("a multi-domain dataset needs at least two datasets")
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise ValueError(f"datasets listed twice: {names}")
    inter, users, items, ifeat, ufeat = [], [], [], [], []
    u_off = i_off = 0
    for d in datasets:
        f = d.interactions.copy()
        f[USER] = f[USER].astype(np.int64) + u_off
        f[ITEM] = f[ITEM].astype(np.int64) + i_off
        inter.append(f)
        users.append(np.array([f"{d.name}/{u}" for u in d.user_ids], dtype=object))
        items.append(np.array([f"{d.name}/{i}" for i in d.item_ids], dtype=object))
        ifeat.append(pd.DataFrame({"original_id": items[-1], "domain": d.name}))
        ufeat.append(pd.DataFrame({"original_id": users[-1], "domain": d.name}))
        u_off += d.n_users
        i_off += d.n_items
    cols = sorted(set.intersection(*(set(f.columns) for f in inter)), key=list(inter[0].columns).index)
    frame = pd.concat([f[cols] for f in inter], ignore_index=True)
    return Dataset(name=name or PREFIX + "+".join(names), interactions=frame, user_ids=np.concatenate(users),
                   item_ids=np.concatenate(items), item_features=pd.concat(ifeat, ignore_index=True),
                   user_features=pd.concat(ufeat, ignore_index=True),
                   meta={"domains": names, "note": "combined multi-domain dataset; ids disjoint per domain"})
