"""The cold-start protocol on a dataset whose every history is known: which users go where, which events are
support and which are queries, the history bounds, new items, and each parameter error in full."""
from __future__ import annotations

import pandas as pd
import pytest

from metarec.data.schema import build_dataset
from metarec.errors import ConfigError
from metarec.protocols import get_protocol

N_USERS = 20


def length(u: int) -> int:
    return 6 + u % 5          # 6..10 events


@pytest.fixture(scope="module")
def ds():
    rows = [(f"u{u:02d}", f"i{(3 * u + k) % 40:02d}", 1000 * u + k) for u in range(N_USERS) for k in range(length(u))]
    return build_dataset("known", pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]))


def cold(ds, **params):
    return get_protocol("cold_start")(ds, seed=params.pop("seed", 0), **{"k_shot": 2, "n_query": 3, **params})


def events(ds, u):
    """User u's (item, timestamp) in time order."""
    f = ds.interactions[ds.interactions.user == u].sort_values("timestamp")
    return list(zip(f.item, f.timestamp))


def test_users_are_split_by_ratio_and_histories_cut_into_support_and_query(ds):
    s = cold(ds)
    users = {name: set(s.frames[name].user) for name in ("train", "valid", "test")}
    assert (len(users["train"]), len(users["valid"]), len(users["test"])) == (14, 2, 4)   # round(.7*20), round(.1*20)
    assert not (users["train"] & users["valid"] or users["train"] & users["test"] or users["valid"] & users["test"])
    assert len(s.train) == sum(len(events(ds, u)) for u in users["train"])               # whole histories
    for name in ("valid", "test"):
        assert set(s.support(name).user) == users[name]
        for u in users[name]:
            ev = events(ds, u)
            q = s.frames[name][s.frames[name].user == u].sort_values("timestamp")
            sup = s.support(name)[s.support(name).user == u].sort_values("timestamp")
            assert list(zip(q.item, q.timestamp)) == ev[-3:]                    # the 3 latest are the queries
            assert list(zip(sup.item, sup.timestamp)) == ev[-5:-3]              # the 2 before them the support
    assert s.params == {"user_ratios": [0.7, 0.1, 0.2], "k_shot": 2, "n_query": 3, "min_history": 5,
                        "max_history": None, "new_items": False, "new_item_ratio": 0.2}
    assert s.meta["cold_users"] == {"valid": 2, "test": 4} and s.meta["new_items"] == 0
    assert set(cold(ds, seed=1).test.user) != users["test"]                      # the seed draws the users


@pytest.mark.parametrize("bounds, kept", [({"min_history": 8}, {8, 9, 10}), ({"max_history": 8}, {6, 7, 8}),
                                          ({"min_history": 7, "max_history": 7}, {7})])
def test_history_bounds_are_inclusive(ds, bounds, kept):
    s = cold(ds, user_ratios=[0.2, 0.3, 0.5], **bounds)
    for name in ("valid", "test"):
        assert {length(u) for u in set(s.frames[name].user)} <= kept
    evaluated = set(s.valid.user) | set(s.test.user)
    held_out = {u for u in range(N_USERS) if u not in set(s.train.user)}
    assert evaluated == {u for u in held_out if length(u) in kept}
    assert s.params["min_history"] == bounds.get("min_history", 5)


def test_new_items_are_the_latest_introduced_and_never_trained_on(ds):
    s = cold(ds, new_items=True, new_item_ratio=0.5, n_query=1, k_shot=1, user_ratios=[0.3, 0.2, 0.5])
    first = ds.interactions.groupby("item").timestamp.min().sort_values(kind="stable")
    new = set(first.index[int(round(0.5 * len(first))):])
    assert s.meta["new_items"] == len(new) and len(new) == len(first) - int(round(0.5 * len(first)))
    assert not set(s.train.item) & new
    for name in ("valid", "test"):
        assert set(s.frames[name].item) <= new and len(s.frames[name]) == s.frames[name].user.nunique()
        assert len(s.support(name)) == s.support(name).user.nunique()
    assert s.params["new_items"] is True and s.params["new_item_ratio"] == 0.5
    bounded = cold(ds, new_items=True, new_item_ratio=0.5, n_query=1, k_shot=1, user_ratios=[0.3, 0.2, 0.5],
                   max_history=7)
    assert {length(u) for u in set(bounded.test.user) | set(bounded.valid.user)} <= {6, 7}


@pytest.mark.parametrize("params, message", [
    ({"min_history": 4}, r"^protocol 'cold_start': min_history must be an int >= k_shot \+ n_query \(5\), got 4$"),
    ({"min_history": 5.5}, r"^protocol 'cold_start': parameter 'min_history' must be an integer >= 1 \(or null\), "
                           r"got 5.5$"),
    ({"min_history": 6, "max_history": 5}, r"^protocol 'cold_start': max_history must be None or an int >= "
                                           r"min_history, got 5$"),
    ({"min_history": 11}, r"^protocol 'cold_start' on known: no test user has >= 11 interactions$"),
    ({"max_history": 5, "min_history": 5, "user_ratios": [0.9, 0.05, 0.05]}, r"no test user has >= 5 interactions"),
])
def test_each_parameter_error_in_full(ds, params, message):
    with pytest.raises(ConfigError, match=message):
        cold(ds, **params)
    assert cold(ds, min_history=6, max_history=6, user_ratios=[0.2, 0.3, 0.5]).params["max_history"] == 6


def test_what_the_split_records(ds):
    s = cold(ds, seed=2)
    assert (s.protocol, s.seed) == ("cold_start", 2)
    assert s.meta["checks"] == ["cold users disjoint from meta-train and from each other",
                                "valid: no pair in train; test: no pair in train"]


@pytest.mark.parametrize("bounds, kept", [({"min_history": 8}, {8, 9, 10}), ({"max_history": 8}, {6, 7, 8})])
def test_new_item_histories_are_bounded_inclusively(ds, bounds, kept):
    s = cold(ds, new_items=True, new_item_ratio=0.5, n_query=1, k_shot=1, user_ratios=[0.3, 0.2, 0.5], **bounds)
    users = set(s.test.user) | set(s.valid.user)
    assert users and {length(u) for u in users} <= kept
    assert any(length(u) == 8 for u in users)       # the bound itself is inside


def test_new_items_without_timestamps_follow_file_order():
    rows = [(f"u{u}", f"i{(2 * u + k) % 12:02d}") for u in range(12) for k in range(4)]
    ds = build_dataset("order", pd.DataFrame(rows, columns=["user_id", "item_id"]))
    s = get_protocol("cold_start")(ds, seed=0, k_shot=1, n_query=1, new_items=True, new_item_ratio=0.5,
                                   user_ratios=[0.4, 0.2, 0.4])
    assert s.meta["new_items"] == 6 and not set(s.train.item) & set(s.test.item)


def test_new_items_with_no_user_having_enough_new_item_queries_is_a_clear_error(ds):
    # 2 new items of 40: nobody has 3 queries among them, so no stage keeps a user
    with pytest.raises(ConfigError, match=r"^protocol 'cold_start' on known: no test user has >= 5 interactions$"):
        cold(ds, new_items=True, new_item_ratio=0.05)


def test_new_item_split_ranks_its_cold_users_among_the_items_without_train_interactions(ds):
    """MeLU's new-item question is which new item a cold user chooses: the evaluator masks every warm item (one
    with a train interaction) for the stage's users, and nothing else beyond ``known``; a plain split masks
    ``known`` only. Scored over the whole catalogue instead, warm items (trained bias, counts) outranked every new
    item and every method of benchmarks/meta_newitems.yaml scored NDCG@10 0."""
    import torch

    from metarec.eval.evaluator import Evaluator

    s = cold(ds, new_items=True, new_item_ratio=0.5, n_query=1, k_shot=1, user_ratios=[0.3, 0.2, 0.5])
    warm = set(s.train.item)
    for stage in ("valid", "test"):
        masked = set(zip(s.masked(stage).user, s.masked(stage).item))
        extra = masked - set(zip(s.known(stage).user, s.known(stage).item))
        assert extra == {(u, i) for u in s.users(stage) for i in warm} - set(zip(s.known(stage).user,
                                                                                  s.known(stage).item))
        assert not set(zip(s.frames[stage].user, s.frames[stage].item)) & masked   # queries stay rankable
    plain = cold(ds)
    assert plain.masked("test").equals(plain.known("test"))

    # warm items scored far above everything, the query items next: only the new-item mask puts them first
    scores = torch.zeros(s.n_users, s.n_items, dtype=torch.float64)
    scores[:, sorted(warm)] = 100.0
    scores[torch.as_tensor(s.test.user.to_numpy()), torch.as_tensor(s.test.item.to_numpy())] = 1.0
    res = Evaluator(s, ["ndcg@10"]).evaluate_scores(scores, "test")
    assert res.means["ndcg@10"] == pytest.approx(1.0)
