"""`impressions`: impression logs (MIND). Impressions are ordered by time and cut into train/valid/test
(default 8:1:1 of impressions). valid/test frames hold one row per shown candidate with its click label; the
evaluator ranks candidates within each impression. ``train`` holds what a method may learn from as positive
(user, item) events — click histories plus clicks in train impressions — and ``train_impressions`` the train
candidates with labels (for CTR-style models)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from metarec.data.schema import IMPRESSION, ITEM, LABEL, TIME, USER, Dataset
from metarec.errors import ConfigError
from metarec.protocols.base import make_split, protocol
from metarec.protocols.leakage import check_time_order

if TYPE_CHECKING:
    from metarec.protocols.split import Split


def impressions(ds: Dataset, *, seed: int, ratios) -> "Split":
    """Impressions in time order cut 8:1:1; candidates + labels per impression (MIND)."""
    if ds.impressions is None:
        raise ConfigError(f"protocol 'impressions' needs an impression log; dataset {ds.name!r} has none")
    r = np.asarray(ratios, dtype=float)   # checked by Protocol.resolve (check_ratios)
    imp = ds.impressions.sort_values([TIME, IMPRESSION], kind="stable")
    first = imp.drop_duplicates(IMPRESSION)[[IMPRESSION, TIME]]
    n = len(first)
    if n == 0:   # (with at least one impression the time cuts always leave the last one to test)
        raise ConfigError(f"protocol 'impressions' on {ds.name}: too few impressions for a test stage")
    c1, c2 = int(round(r[0] * n)), int(round((r[0] + r[1]) * n))
    # cut on time, not on rank, so that no two stages share a timestamp
    t = first[TIME].to_numpy()
    c1 = int(np.searchsorted(t, t[min(c1, n - 1)], "left"))
    c2 = max(c1, int(np.searchsorted(t, t[min(c2, n - 1)], "left")))
    stage = pd.Series(np.r_[np.zeros(c1, int), np.ones(c2 - c1, int), np.full(n - c2, 2)],
                      index=first[IMPRESSION].to_numpy())
    s = stage.reindex(imp[IMPRESSION]).to_numpy()
    train_imp, valid, test = imp[s == 0], imp[s == 1], imp[s == 2]
    clicks = train_imp[train_imp[LABEL] == 1][[USER, ITEM, TIME]]
    history = ds.interactions[[USER, ITEM] + ([TIME] if TIME in ds.interactions else [])]
    train = pd.concat([history, clicks], ignore_index=True).drop_duplicates([USER, ITEM])
    frames = {"train": train, "train_impressions": train_imp, "valid": valid, "test": test}
    return make_split(ds, "impressions", {"ratios": list(map(float, ratios))}, seed, frames, [check_time_order])


# registered after the definition rather than by a decorator: mutation testing (mutmut) leaves decorated
# functions alone, and this is the split algorithm every comparison rests on
protocol("impressions", metric_kind="impressions", ratios=[0.8, 0.1, 0.1])(impressions)
