"""`temporal`: one global time cut. Train is everything before the first cut, valid between the cuts, test after."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from metarec.data.schema import ITEM, TIME, USER, Dataset
from metarec.errors import ConfigError
from metarec.protocols.base import dedupe_pairs, make_split, protocol
from metarec.protocols.leakage import check_no_test_pair_in_train, check_time_order

if TYPE_CHECKING:
    from metarec.protocols.split import Split


def temporal(ds: Dataset, *, seed: int, ratios, drop_cold: bool) -> "Split":
    """Global time cuts at the ratio quantiles of event time; valid/test rows of unseen users/items dropped."""
    if TIME not in ds.interactions:
        raise ConfigError(f"protocol 'temporal' needs timestamps; dataset {ds.name!r} has only "
                          f"{', '.join(ds.interactions.columns)} (use 'sequential' or 'general')")
    r = np.asarray(ratios, dtype=float)   # checked by Protocol.resolve (check_ratios)
    inter = dedupe_pairs(ds.interactions).sort_values(TIME, kind="stable")
    t = inter[TIME].to_numpy()
    cut1, cut2 = np.quantile(t, [r[0], r[0] + r[1]], method="lower")
    if cut2 == cut1 and r[1] > 0:
        # both quantiles fall on one (tied) time: the events at that time form the valid stage and test starts
        # one tick later; with no valid share asked for, valid stays empty and test starts at the cut
        cut2 = cut1 + 1   # one tick on: timestamps are int64 (metarec.data.schema.normalise_dtypes)
    train, valid, test = inter[t < cut1], inter[(t >= cut1) & (t < cut2)], inter[t >= cut2]
    if drop_cold:
        users, items = set(train[USER]), set(train[ITEM])
        valid = valid[valid[USER].isin(users) & valid[ITEM].isin(items)]
        test = test[test[USER].isin(users) & test[ITEM].isin(items)]
    frames = {"train": train, "valid": valid, "test": test}
    return make_split(ds, "temporal", {"ratios": list(map(float, ratios)), "drop_cold": bool(drop_cold)}, seed,
                      frames, [check_no_test_pair_in_train, check_time_order],
                      cut_times=[int(cut1), int(cut2)])


# registered after the definition rather than by a decorator: mutation testing (mutmut) leaves decorated
# functions alone, and this is the split algorithm every comparison rests on
# version 2: a zero valid share gives an empty valid stage even when the quantiles fall on one tied time
# (version 1 then put the tied events in valid)
protocol("temporal", version=2, ratios=[0.8, 0.1, 0.1], drop_cold=True)(temporal)
