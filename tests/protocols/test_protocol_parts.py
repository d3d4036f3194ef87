"""The shared protocol plumbing on hand-made frames: parameter resolution, ratio rules, duplicate pairs, time order,
random ranks, RecBole's per-user counts and the Split assembly with its checks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metarec.errors import ConfigError, UnknownNameError
from metarec.protocols import PROTOCOLS, get_protocol, params_key
from metarec.protocols.base import (check_ratios, chronological, dedupe_pairs, make_split, random_rank_within_user,
                                    split_counts)
from tests.toys import toy_dataset


def test_resolve_fills_defaults_and_checks_every_parameter():
    p = get_protocol("general")
    assert p.resolve(None) == {"ratios": [0.8, 0.1, 0.1]} and p.resolve({"ratios": [0.6, 0.2, 0.2]}) == \
        {"ratios": [0.6, 0.2, 0.2]}
    with pytest.raises(ConfigError, match=r"^protocol 'general': unknown parameter\(s\) k_shot, ratio; valid: ratios$"):
        p.resolve({"ratio": 1, "k_shot": 2})
    with pytest.raises(ConfigError, match=r"protocol 'cold_start': user_ratios must sum to 1"):
        get_protocol("cold_start").resolve({"user_ratios": [0.5, 0.3, 0.1]})
    with pytest.raises(ConfigError, match=r"^protocol 'sequential': parameter 'min_length' must be an integer >= 3, got 'three'$"):
        get_protocol("sequential").resolve({"min_length": "three"})      # each value against its domain
    assert sorted(PROTOCOLS) == ["cold_start", "general", "given", "impressions", "sequential", "temporal"]
    with pytest.raises(UnknownNameError, match=r"unknown protocol 'genral' \(did you mean 'general'\?\)"):
        get_protocol("genral")
    assert get_protocol("general").version == 2 and get_protocol("sequential").version == 1
    assert get_protocol("general").metric_kind == "ranking" and get_protocol("impressions").metric_kind == "impressions"


@pytest.mark.parametrize("ratios, message", [
    ("abc", r"ratios must be three numbers, got 'abc'"),
    ([0.5, 0.5], r"ratios must be three non-negative numbers with train > 0, got \[0.5, 0.5\]"),
    ([0.0, 0.5, 0.5], r"ratios must be three non-negative numbers with train > 0, got \[0.0, 0.5, 0.5\]"),
    ([1.1, -0.05, -0.05], r"ratios must be three non-negative numbers with train > 0, got \[1.1, -0.05, -0.05\]"),
    ([0.5, 0.3, 0.1], r"ratios must sum to 1 \(train, valid, test shares\), got \[0.5, 0.3, 0.1\] \(sum 0.9\)"),
    ([[0.8], 0.1, 0.1], r"ratios must be three numbers, got \[\[0.8\], 0.1, 0.1\]"),
])
def test_ratio_rules(ratios, message):
    with pytest.raises(ConfigError, match=r"^protocol 'p': " + message + "$"):
        check_ratios("p", ratios)


def test_ratios_that_pass():
    assert check_ratios("p", [0.8, 0.1, 0.1]).tolist() == [0.8, 0.1, 0.1]
    assert check_ratios("p", [1.0, 0.0, 0.0]).tolist() == [1.0, 0.0, 0.0]
    assert check_ratios("p", [0.7, 0.2, 0.1 + 5e-7]).shape == (3,)     # within the 1e-6 tolerance
    with pytest.raises(ConfigError, match=r"user_ratios must sum"):
        check_ratios("p", [0.7, 0.2, 0.1 + 5e-6], "user_ratios")


def test_params_key_is_order_free_and_short():
    assert params_key({"a": 1, "b": [1, 2]}) == params_key({"b": [1, 2], "a": 1})
    assert len(params_key({})) == 10 and params_key({"a": 1}) != params_key({"a": 2})


def test_dedupe_keeps_each_pairs_latest_event_in_row_order():
    df = pd.DataFrame({"user": [0, 0, 1, 0, 1], "item": [5, 6, 5, 5, 7], "rating": [1.0, 2.0, 3.0, 4.0, 5.0],
                       "timestamp": [30, 10, 20, 20, 5]})
    out = dedupe_pairs(df)
    # (0, 5) twice: the row at t=30 is the latest, though the t=20 row comes later in the file
    assert out.to_dict("list") == {"user": [0, 0, 1, 1], "item": [5, 6, 5, 7], "rating": [1.0, 2.0, 3.0, 5.0],
                                   "timestamp": [30, 10, 20, 5]}
    no_time = dedupe_pairs(df.drop(columns="timestamp"))   # without time: the last row of the pair
    assert no_time.rating.tolist() == [2.0, 3.0, 4.0, 5.0] and list(no_time.index) == [0, 1, 2, 3]
    tie = pd.DataFrame({"user": [0, 0], "item": [1, 1], "rating": [1.0, 2.0], "timestamp": [7, 7]})
    assert dedupe_pairs(tie).rating.tolist() == [2.0]        # equal times: the later row


def test_chronological_orders_each_user_by_time_then_file_order():
    df = pd.DataFrame({"user": [1, 0, 1, 0, 1], "item": [10, 11, 12, 13, 14], "timestamp": [5, 9, 5, 1, 2]})
    out = chronological(df)
    assert out.user.tolist() == [0, 0, 1, 1, 1] and out.item.tolist() == [13, 11, 14, 10, 12]
    assert out._pos.tolist() == [0, 1, 0, 1, 2] and list(out.index) == list(range(5))
    no_time = chronological(df.drop(columns="timestamp"))
    assert no_time.item.tolist() == [11, 13, 10, 12, 14] and no_time._pos.tolist() == [0, 1, 0, 1, 2]


def test_random_ranks_are_a_permutation_within_each_user():
    users = np.array([2, 0, 2, 1, 0, 2, 2])
    rank, size = random_rank_within_user(users, np.random.default_rng(0))
    assert size.tolist() == [4, 2, 4, 1, 2, 4, 4]
    for u in (0, 1, 2):
        assert sorted(rank[users == u].tolist()) == list(range((users == u).sum()))
    again, _ = random_rank_within_user(users, np.random.default_rng(0))
    assert again.tolist() == rank.tolist()
    seen = {tuple(random_rank_within_user(users, np.random.default_rng(s))[0][users == 2]) for s in range(40)}
    assert len(seen) > 10                                    # random, not a fixed order


def test_split_counts_follow_recbole():
    n = np.array([1, 2, 3, 4, 9, 10, 20])
    v, t = split_counts(n, np.array([0.8, 0.1, 0.1]))
    # floor(0.1 n), raised to 1 when it rounds to 0 and train keeps >= 1 (test first, then valid)
    assert t.tolist() == [0, 1, 1, 1, 1, 1, 2] and v.tolist() == [0, 0, 1, 1, 1, 1, 2]
    v, t = split_counts(n, np.array([0.7, 0.0, 0.3]))
    assert v.tolist() == [0] * 7 and t.tolist() == [0, 1, 1, 1, 2, 3, 6]
    v, t = split_counts(np.array([3, 4]), np.array([0.5, 0.25, 0.25]))
    assert (v.tolist(), t.tolist()) == ([1, 1], [1, 1])


def test_make_split_records_checks_drops_helpers_and_refuses_an_empty_train():
    ds = toy_dataset(n_users=3, n_items=5, per_user=3)
    inter = ds.interactions.assign(_pos=0)
    calls = []

    def check(split):
        calls.append(sorted(split.frames["train"].columns))   # checks see the helper columns
        return "checked"

    s = make_split(ds, "p", {"a": 1}, 4, {"train": inter, "valid": inter.iloc[:0], "test": inter.iloc[:2]}, [check],
                   extra="x")
    assert calls and "_pos" in calls[0] and "_pos" not in s.train.columns
    assert s.meta["checks"] == ["checked"] and s.meta["extra"] == "x"
    assert (s.dataset, s.protocol, s.params, s.seed, s.n_users, s.n_items) == ("toy", "p", {"a": 1}, 4, 3, ds.n_items)
    assert list(s.test.index) == [0, 1]
    with pytest.raises(ConfigError, match=r"^protocol 'p' on toy: empty train set \(parameters \{'a': 1\}\)$"):
        make_split(ds, "p", {"a": 1}, 0, {"train": inter.iloc[:0], "valid": inter, "test": inter}, [])


def test_registering_a_protocol(monkeypatch):
    from metarec.protocols import base

    monkeypatch.setattr(base, "PROTOCOLS", {})

    def halves(ds, *, seed, share):
        """Half and half.

        More text that is not the summary."""
        return share

    assert base.protocol("halves", share=0.5)(halves) is halves
    p = base.PROTOCOLS["halves"]
    assert (p.name, p.make, p.defaults, p.doc, p.metric_kind, p.domains, p.version) == \
        ("halves", halves, {"share": 0.5}, "Half and half.", "ranking", {}, 1)
    from metarec.params import Domain

    def quiet(ds, *, seed):
        return seed

    base.protocol("quiet", metric_kind="impressions", domains={"x": Domain("int", 1)}, version=3)(quiet)
    q = base.PROTOCOLS["quiet"]
    assert (q.doc, q.metric_kind, q.version, q.defaults) == ("", "impressions", 3, {})
    assert q.domains == {"x": Domain("int", 1)} and q(None, seed=4) == 4


def test_params_key_of_values_json_does_not_know():
    from pathlib import Path

    assert params_key({"root": Path("/x")}) == params_key({"root": "/x"})


def test_integer_results_where_counts_and_ranks_are_meant():
    rank, size = random_rank_within_user(np.array([1, 0, 1]), np.random.default_rng(1))
    assert rank.dtype == np.int64 and size.dtype == np.int64
    v, t = split_counts(np.array([5, 10]), np.array([0.8, 0.1, 0.1]))
    assert v.dtype == np.int64 and t.dtype == np.int64
    # valid takes the user's second item: test is not raised to 1 when train would be left with nothing
    v, t = split_counts(np.array([2]), np.array([0.4, 0.5, 0.1]))
    assert (v.tolist(), t.tolist()) == ([1], [0])


def test_parameter_errors_name_every_valid_parameter(monkeypatch):
    from metarec.protocols import base

    with pytest.raises(ConfigError, match=r"^protocol 'temporal': unknown parameter\(s\) x; valid: drop_cold, "
                                          r"ratios$"):
        get_protocol("temporal").resolve({"x": 1})
    monkeypatch.setattr(base, "PROTOCOLS", {})

    def bare(ds, *, seed):
        return seed

    base.protocol("bare")(bare)
    with pytest.raises(ConfigError, match=r"^protocol 'bare': unknown parameter\(s\) x; valid: \(none\)$"):
        base.PROTOCOLS["bare"].resolve({"x": 1})
    assert base.PROTOCOLS["bare"](None) == 0            # seed 0 unless given


def test_make_split_carries_the_side_information():
    ds = toy_dataset(n_users=3, n_items=5, per_user=3)
    ds.item_features = pd.DataFrame({"genres": ["a"] * ds.n_items})
    ds.user_features = pd.DataFrame({"age": [1] * ds.n_users})
    inter = ds.interactions
    s = make_split(ds, "p", {}, 0, {"train": inter, "valid": inter.iloc[:0], "test": inter.iloc[:0]}, [])
    assert s.item_features is ds.item_features and s.user_features is ds.user_features
