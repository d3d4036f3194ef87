"""The time-ordered protocols on datasets whose every event time is known: sequential leave-one-out, global
temporal cuts, impression logs cut by time; each boundary and each error in full."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metarec.data.schema import Dataset, build_dataset
from metarec.errors import ConfigError
from metarec.protocols import get_protocol


def dataset(rows, name="t"):
    """rows: (user, item, timestamp) with string-able ids."""
    return build_dataset(name, pd.DataFrame([(f"u{u}", f"i{i:02d}", t) for u, i, t in rows],
                                            columns=["user_id", "item_id", "timestamp"]))


def pairs(df):
    return sorted(zip(df.user.tolist(), df.item.tolist()))


# ---- sequential -----------------------------------------------------------------------------------------------------
def test_sequential_leaves_the_latest_out_for_users_long_enough():
    # u0: 4 events, u1: exactly 3 (eligible at min_length 3), u2: 2 (train only); times out of file order
    rows = [(0, 1, 40), (0, 2, 10), (0, 3, 30), (0, 4, 20), (1, 5, 5), (1, 6, 7), (1, 7, 6), (2, 8, 1), (2, 9, 2)]
    ds = dataset(rows)
    s = get_protocol("sequential")(ds, seed=3)
    ids = {name: sorted(ds.item_ids[s.frames[name].item]) for name in ("train", "valid", "test")}
    assert ids["test"] == ["i01", "i06"] and ids["valid"] == ["i03", "i07"]
    assert ids["train"] == ["i02", "i04", "i05", "i08", "i09"]
    assert s.params == {"min_length": 3} and s.meta["ordered"] is True and s.seed == 3
    longer = get_protocol("sequential")(ds, seed=0, min_length=4)
    assert sorted(ds.item_ids[longer.test.item]) == ["i01"] and sorted(ds.item_ids[longer.valid.item]) == ["i03"]
    assert len(longer.train) == 7


def test_sequential_keeps_repeat_consumption():
    s = get_protocol("sequential")(dataset([(0, 1, 1), (0, 2, 2), (0, 1, 3)]))
    assert len(s.test) == 1 and s.meta["checks"][1] == "valid: no pair in train; test: 1 repeat pairs"


# ---- temporal -------------------------------------------------------------------------------------------------------
def test_temporal_cuts_at_the_time_quantiles_and_drops_cold_rows():
    # ten events at t = 0..9: the 'lower' 0.8 and 0.9 quantiles cut at t=7 (valid from) and t=8 (test from)
    rows = [(u % 3, u % 4, t) for u, t in zip(range(10), range(10))]
    ds = dataset(rows)
    s = get_protocol("temporal")(ds, seed=0, drop_cold=False)
    assert sorted(s.train.timestamp) == list(range(7)) and s.valid.timestamp.tolist() == [7]
    assert sorted(s.test.timestamp) == [8, 9] and s.meta["cut_times"] == [7, 8]
    assert s.params == {"ratios": [0.8, 0.1, 0.1], "drop_cold": False}
    cold = dataset(rows[:8] + [(7, 1, 8), (1, 9, 9)])      # a user and an item first seen after the cut
    kept = get_protocol("temporal")(cold, seed=0)
    assert len(kept.valid) == 1 and len(kept.test) == 0     # u7 and i09 were never trained on
    assert kept.params["drop_cold"] is True
    assert len(get_protocol("temporal")(cold, seed=0, drop_cold=False).test) == 2


def test_temporal_with_tied_times_and_without_times():
    ds = dataset([(0, 1, 1), (1, 2, 5), (2, 3, 5), (0, 4, 7)])   # both cuts fall on the tied time 5
    s = get_protocol("temporal")(ds, seed=0, ratios=[0.5, 0.0, 0.5], drop_cold=False)
    assert s.meta["cut_times"] == [5, 5] and (len(s.train), len(s.valid), len(s.test)) == (1, 0, 3)
    s = get_protocol("temporal")(ds, seed=0, ratios=[0.5, 0.2, 0.3], drop_cold=False)
    assert s.meta["cut_times"] == [5, 6]                          # a valid share: the tied events, test after
    assert (len(s.train), len(s.valid), len(s.test)) == (1, 2, 1)
    assert (s.protocol, s.seed, s.params["drop_cold"]) == ("temporal", 0, False)
    no_time = build_dataset("nt", pd.DataFrame({"user_id": ["a"], "item_id": ["x"]}))
    with pytest.raises(ConfigError, match=r"^protocol 'temporal' needs timestamps; dataset 'nt' has only user, item "
                                          r"\(use 'sequential' or 'general'\)$"):
        get_protocol("temporal")(no_time)


# ---- impressions ----------------------------------------------------------------------------------------------------
def impression_dataset(times, history=((0, 0),)):
    """One impression per time (2 candidates, the first clicked), users cycling 0..2, 6 items."""
    rows = []
    for imp, t in enumerate(times):
        rows += [(imp, imp % 3, (2 * imp) % 6, 1, t), (imp, imp % 3, (2 * imp + 1) % 6, 0, t)]
    log = pd.DataFrame(rows, columns=["impression", "user", "item", "label", "timestamp"])
    hist = pd.DataFrame(list(history), columns=["user", "item"])
    return Dataset(name="mind-toy", interactions=hist, user_ids=np.array(["a", "b", "c"]),
                   item_ids=np.array([f"n{i}" for i in range(6)]), impressions=log)


def test_impressions_are_cut_by_time_and_train_holds_history_and_clicks():
    ds = impression_dataset(times=range(10))
    s = get_protocol("impressions")(ds, seed=0)
    assert sorted(set(s.frames["train_impressions"].impression)) == list(range(8))
    assert set(s.valid.impression) == {8} and set(s.test.impression) == {9}
    clicks = {(i % 3, (2 * i) % 6) for i in range(8)}
    assert set(pairs(s.train)) == clicks | {(0, 0)} and len(s.train) == len(set(pairs(s.train)))
    assert s.params == {"ratios": [0.8, 0.1, 0.1]} and s.is_impressions
    # two impressions at the same time never straddle a cut
    tied = get_protocol("impressions")(impression_dataset(times=[0, 1, 2, 3, 4, 5, 6, 7, 7, 9]), seed=0)
    assert set(tied.valid.impression) == {7, 8} and set(tied.test.impression) == {9}
    assert set(tied.frames["train_impressions"].impression) == set(range(7))


def test_impression_errors_in_full():
    plain = build_dataset("plain", pd.DataFrame({"user_id": ["a"], "item_id": ["x"]}))
    with pytest.raises(ConfigError, match=r"^protocol 'impressions' needs an impression log; dataset 'plain' has "
                                          r"none$"):
        get_protocol("impressions")(plain)
    with pytest.raises(ConfigError, match=r"^protocol 'impressions' on mind-toy: too few impressions for a test "
                                          r"stage$"):
        get_protocol("impressions")(impression_dataset(times=[]))


def test_impressions_with_uneven_shares_and_ids_that_are_not_ranks():
    ds = impression_dataset(times=range(10))
    ds.impressions["impression"] = 1000 - ds.impressions["impression"] * 7       # ids fall as time goes on
    ds.interactions = pd.DataFrame({"user": [0], "item": [0], "timestamp": [-5]})
    s = get_protocol("impressions")(ds, seed=4, ratios=[0.5, 0.3, 0.2])
    ids = {name: sorted((1000 - s.frames[name].impression.unique()) // 7)
           for name in ("train_impressions", "valid", "test")}
    assert ids == {"train_impressions": [0, 1, 2, 3, 4], "valid": [5, 6, 7], "test": [8, 9]}
    assert s.seed == 4 and "timestamp" in s.train.columns and s.train.timestamp.tolist()[0] == -5


def test_impressions_are_cut_by_their_count_not_by_their_candidates():
    """8:1:1 of ten impressions is 8 / 1 / 1 whatever the number of candidates each shows: the last one shows all six
    items (counting candidate rows, 24, would move impression 8 into train)."""
    ds = impression_dataset(times=range(10))
    log = ds.impressions[ds.impressions.impression < 9]
    wide = pd.DataFrame([(9, 0, i, int(i == 0), 9) for i in range(6)], columns=log.columns)
    ds = Dataset(name=ds.name, interactions=ds.interactions, user_ids=ds.user_ids, item_ids=ds.item_ids,
                 impressions=pd.concat([log, wide], ignore_index=True))
    s = get_protocol("impressions")(ds, seed=0)
    assert sorted(set(s.frames["train_impressions"].impression)) == list(range(8))
    assert set(s.valid.impression) == {8} and set(s.test.impression) == {9} and len(s.test) == 6


def test_impressions_with_all_of_them_in_train_share_still_leave_the_last_time_to_test():
    """train share 1: the cut index is clamped to the last impression, whose time starts the test stage."""
    s = get_protocol("impressions")(impression_dataset(times=[0, 1, 2, 3, 3]), seed=0, ratios=[1.0, 0.0, 0.0])
    assert set(s.frames["train_impressions"].impression) == {0, 1, 2} and set(s.test.impression) == {3, 4}
    assert len(s.valid) == 0
    s = get_protocol("impressions")(impression_dataset(times=range(5)), seed=0, ratios=[0.8, 0.2, 0.0])
    assert set(s.frames["train_impressions"].impression) == {0, 1, 2, 3} and set(s.test.impression) == {4}
