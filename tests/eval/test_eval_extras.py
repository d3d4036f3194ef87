"""The evaluator's extras: MeLU's query-set metrics and the multi-task heads' metrics, each checked against a direct
computation (sklearn's AUC, a plain loop for nDCG and MAE) on small known data, every "does not apply" case and every
input check fed its case; and how an extra's result is folded into the stage's result."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from metarec.eval import Evaluator
from metarec.eval.evaluator import EvalResult
from metarec.eval.extras import extras, merge, register_extra
from metarec.eval.query_ranking import melu_ndcg, query_metrics, query_ranking
from metarec.eval.registry import higher_is_better
from metarec.eval.tasks import task_metrics
from metarec.methods.multitask.tasks import Task
from metarec.protocols.split import Split
from tests.toys import impressions_split, random_split


# ---- the registry of extras and the merge --------------------------------------------------------------------------
def test_both_extras_are_registered_once_and_a_new_one_is_added(monkeypatch):
    from metarec.eval import extras as registry

    found = extras()
    assert query_ranking in found and task_metrics in found
    assert register_extra(query_ranking) is query_ranking and extras().count(query_ranking) == 1
    assert extras() is not extras()          # a copy: a caller cannot change the registry
    monkeypatch.setattr(registry, "_EXTRAS", list(registry._EXTRAS))

    def mine(method, split, stage, evaluator):
        return None

    assert register_extra(mine) is mine and extras()[-1] is mine


def test_extra_modules_are_imported_on_first_use_and_a_broken_one_is_an_error(monkeypatch, tmp_path):
    import sys

    from metarec.eval import extras as registry

    (tmp_path / "my_extra_mod.py").write_text(
        "from metarec.eval.extras import register_extra\n"
        "@register_extra\n"
        "def my_extra(method, split, stage, evaluator):\n    return None\n")
    (tmp_path / "broken_extra_mod.py").write_text("import a_package_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_EXTRAS", list(registry._EXTRAS))
    monkeypatch.setattr(registry, "_LOADED", False)
    monkeypatch.setattr(registry, "EXTRA_MODULES", ("my_extra_mod", "an_extra_module_that_does_not_exist"))
    monkeypatch.delitem(sys.modules, "my_extra_mod", raising=False)
    names = [fn.__name__ for fn in extras()]          # a module that is not there at all is skipped
    assert names[-1] == "my_extra" and registry._LOADED is True
    monkeypatch.setattr(registry, "_LOADED", False)
    monkeypatch.setattr(registry, "EXTRA_MODULES", ("broken_extra_mod",))
    with pytest.raises(ModuleNotFoundError, match="a_package_that_is_not_installed"):
        extras()                                        # one that is there but cannot import its own needs


def test_merge_folds_means_columns_and_notes_in():
    idx = pd.Index([0, 1, 2], name="user")
    base = EvalResult(stage="test", mode="full", means={"ndcg@10": 0.5},
                      per_user=pd.DataFrame({"ndcg@10": [0.1, 0.2, 0.3]}, index=idx), n_users=3, timings={},
                      unit="user", notes=["a"])
    extra = EvalResult(stage="test", mode="query", means={"query/mae": 1.5},
                       per_user=pd.DataFrame({"query/mae": [1.0, 2.0]}, index=pd.Index([1, 3], name="user")),
                       n_users=2, timings={}, unit="user", notes=["b"])
    merge(base, extra)
    assert base.means == {"ndcg@10": 0.5, "query/mae": 1.5} and base.notes == ["a", "b"]
    assert base.per_user.index.tolist() == [0, 1, 2, 3]                 # outer: users of either side
    np.testing.assert_array_equal(base.per_user["query/mae"].to_numpy(), [np.nan, 1.0, np.nan, 2.0])
    np.testing.assert_array_equal(base.per_user["ndcg@10"].to_numpy(), [0.1, 0.2, 0.3, np.nan])
    quiet = EvalResult(stage="test", mode="x", means={"m": 1.0}, per_user=pd.DataFrame(index=idx), n_users=0,
                       timings={}, unit="user", notes=[])
    merge(base, quiet)                                                  # no columns: the table is left as it was
    assert list(base.per_user.columns) == ["ndcg@10", "query/mae"] and base.notes == ["a", "b"]
    clash = EvalResult(stage="test", mode="x", means={}, n_users=1, timings={}, unit="user", notes=["c"],
                       per_user=pd.DataFrame({"ndcg@10": [9.0]}, index=pd.Index([0], name="user")))
    merge(base, clash)                                                  # a shared column: the stage's stays put
    assert list(base.per_user.columns) == ["ndcg@10", "query/mae", "ndcg@10_extra"]
    assert base.per_user.loc[0, "ndcg@10"] == 0.1 and base.per_user.loc[0, "ndcg@10_extra"] == 9.0
    assert base.notes == ["a", "b", "c"]


# ---- MeLU's query metrics -------------------------------------------------------------------------------------------
def _melu_reference(pred, true, k=3) -> float:
    ranked = sorted(range(len(pred)), key=lambda j: (-pred[j], j))[:k]
    dcg = sum((2.0 ** true[j] - 1) / math.log2(n + 2) for n, j in enumerate(ranked))
    ideal = sorted(true, reverse=True)[:k]
    idcg = sum((2.0 ** r - 1) / math.log2(n + 2) for n, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else math.nan


def test_melu_ndcg_against_a_loop_on_random_lists_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 8))
        k = int(rng.integers(1, 6))
        pred = rng.integers(0, 3, n).astype(float)           # many ties: the earlier row goes first
        true = rng.integers(0, 6, n).astype(float)
        ref = _melu_reference(list(pred), list(true), k)
        got = melu_ndcg(pred, true, k)
        assert (math.isnan(ref) and math.isnan(got)) or abs(got - ref) <= 1e-12, (pred, true, k)
    assert math.isnan(melu_ndcg(np.array([1.0, 2.0]), np.zeros(2)))   # no gain anywhere
    assert melu_ndcg(np.array([0.0, 1.0, 2.0, 3.0]), np.array([4.0, 3.0, 2.0, 1.0])) == pytest.approx(
        _melu_reference([0, 1, 2, 3], [4, 3, 2, 1]), abs=0)                 # the default cut-off is 3


def test_query_metrics_per_user_and_pooled():
    frame = pd.DataFrame({"user": [3, 1, 3, 1, 1], "item": [0, 2, 1, 0, 1], "rating": [5, 1, 3, 4, 2]})
    pred = np.array([4.0, 2.0, 3.5, 4.0, 1.0])
    means, per = query_metrics(frame, pred)
    assert per.index.name == "user" and per.index.tolist() == [1, 3] and list(per.columns) == ["query/mae",
                                                                                                "query/ndcg@3"]
    assert per.loc[1, "query/mae"] == pytest.approx((1 + 0 + 1) / 3, abs=1e-15)
    assert per.loc[3, "query/mae"] == pytest.approx((1 + 0.5) / 2, abs=1e-15)
    # user 1's rows in item order: items 0, 1, 2 with ratings 4, 2, 1 and predictions 4, 1, 2
    assert per.loc[1, "query/ndcg@3"] == pytest.approx(_melu_reference([4.0, 1.0, 2.0], [4, 2, 1]), abs=1e-15)
    assert per.loc[3, "query/ndcg@3"] == pytest.approx(_melu_reference([4.0, 3.5], [5, 3]), abs=1e-15)
    err = pred - frame["rating"].to_numpy()
    assert means["query/rmse"] == pytest.approx(math.sqrt((err ** 2).mean()), abs=1e-15)
    assert means["query/mae"] == pytest.approx(per["query/mae"].mean(), abs=1e-15)
    assert means["query/ndcg@3"] == pytest.approx(per["query/ndcg@3"].mean(), abs=1e-15)
    means, per = query_metrics(frame, pred, k=1)
    assert list(per.columns) == ["query/mae", "query/ndcg@1"] and "query/ndcg@1" in means
    assert per.loc[1, "query/ndcg@1"] == pytest.approx(_melu_reference([4.0, 1.0, 2.0], [4, 2, 1], k=1), abs=1e-15)
    assert _melu_reference([4.0, 1.0, 2.0], [4, 2, 1], k=1) != pytest.approx(   # the cut-off matters on this list
        _melu_reference([4.0, 1.0, 2.0], [4, 2, 1], k=3))
    flat = frame.assign(rating=0)               # no gain for anyone: nDCG is undefined, not 0
    means, per = query_metrics(flat, pred)
    assert per["query/ndcg@3"].isna().all() and math.isnan(means["query/ndcg@3"])
    half = frame.assign(rating=[0, 1, 0, 4, 2])  # user 3 undefined, user 1 defined: the mean skips the NaN
    means, per = query_metrics(half, pred)
    assert math.isnan(per.loc[3, "query/ndcg@3"]) and means["query/ndcg@3"] == per.loc[1, "query/ndcg@3"]
    means, per = query_metrics(frame.iloc[:0], np.zeros(0))
    assert len(per) == 0 and math.isnan(means["query/rmse"]) and math.isnan(means["query/ndcg@3"])


def _cold_split(with_rating=True) -> Split:
    train = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 2], "rating": [4.0, 2.0, 5.0]})
    test = pd.DataFrame({"user": [2, 2, 3, 3], "item": [0, 3, 1, 2], "rating": [5.0, 1.0, 3.0, 4.0]})
    support = pd.DataFrame({"user": [2, 3], "item": [1, 0], "rating": [3.0, 2.0]})
    frames = {"train": train, "valid": test.iloc[:0], "test": test, "test_support": support}
    if not with_rating:
        frames = {k: v.drop(columns="rating") for k, v in frames.items()}
    return Split("toy", "cold_start", {}, 0, 4, 4, frames)


class Rater:
    def __init__(self, pred=None):
        self.calls = []
        self.pred = pred

    def predict_rating(self, u, i):
        self.calls.append((u.tolist(), i.tolist()))
        return self.pred(u, i) if self.pred else (u + i).double()

    def score(self, users):
        return torch.zeros(len(users), 4)


def test_the_query_extra_scores_the_query_set_and_says_where_it_does_not_apply():
    cold = _cold_split()
    m = Rater()
    res = query_ranking(m, cold, "test", None)
    assert m.calls == [([2, 2, 3, 3], [0, 3, 1, 2])]
    frame = cold.test
    means, per = query_metrics(frame, (frame.user + frame.item).to_numpy(float))
    assert res.means == means and res.per_user.equals(per)
    assert (res.stage, res.mode, res.unit, res.n_users, res.per_user.attrs) == ("test", "query", "user", 2,
                                                                                {"stage": "test"})
    assert set(res.timings) == {"query_s"} and res.timings["query_s"] >= 0
    general = Split("toy", "ratio", {}, 0, 4, 4, {k: v for k, v in cold.frames.items() if k != "test_support"})
    assert query_ranking(m, general, "test", None) is None                   # not cold start
    assert query_ranking(m, _cold_split(with_rating=False), "test", None) is None   # no ratings
    assert query_ranking(m, cold, "valid", None) is None                     # an empty stage
    assert query_ranking(object(), cold, "test", None) is None              # no predict_rating
    missing = _cold_split()
    del missing.frames["valid"]
    assert query_ranking(m, missing, "valid", None) is None                  # no such stage
    imp = impressions_split()
    imp.protocol = "cold_start"
    assert query_ranking(m, imp, "test", None) is None                        # impressions never
    with pytest.raises(ValueError, match=r"^predict_rating returned 3 values for 4 pairs$"):
        query_ranking(Rater(lambda u, i: torch.zeros(3)), cold, "test", None)
    res = query_ranking(Rater(lambda u, i: [[1.0, 2.0], [3.0, 4.0]]), cold, "test", None)   # any shape, flattened
    assert res.per_user.loc[2, "query/mae"] == pytest.approx((4 + 1) / 2)


# ---- the multi-task heads ---------------------------------------------------------------------------------------
class Heads:
    """Fixed predictions per (user, item): what a trained multi-task method would return, without training."""

    like_threshold = 4.0

    def __init__(self, tasks, split=None):
        self.tasks = tasks
        self.split = split
        self.calls = 0

    def predict_tasks(self, u, i):
        self.calls += 1
        u, i = np.asarray(u, np.int64), np.asarray(i, np.int64)
        out = {"rating": torch.from_numpy(((u * 7 + i * 3) % 5 + 1).astype(np.float32)),
               "like": torch.from_numpy(((u * 5 + i * 11) % 13 / 13).astype(np.float32)),
               "click": torch.from_numpy(((u * 3 + i * 7) % 11 / 11).astype(np.float32))}
        logits = np.zeros((len(i), 4), np.float32)
        logits[np.arange(len(i)), (i * 3) % 4] = 1.0
        out["category"] = torch.from_numpy(logits)
        brands = np.zeros((len(i), 3), np.float32)
        brands[np.arange(len(i)), (u + i) % 3] = 1.0
        out["brand"] = torch.from_numpy(brands)
        return out

    def score(self, users):
        return torch.from_numpy(np.add.outer(np.asarray(users) * 0.01, np.arange(self.split.n_items) % 7)).float()


def _per_group_auc(groups, prob, label):
    out = {}
    for g in np.unique(groups):
        y, p = label[groups == g], prob[groups == g]
        out[g] = roc_auc_score(y, p) if 0 < y.sum() < len(y) else np.nan
    return pd.Series(out)


def test_rating_and_like_heads_against_a_direct_computation():
    split = random_split(n_users=30, n_items=40, seed=1)
    rated = split.test.copy()
    rated.loc[rated.index[::4], "rating"] = np.nan        # unrated rows are left out of both heads
    split.frames["test"] = rated
    m = Heads([Task("interaction", "binary"), Task("rating", "regression"), Task("like", "binary")])
    res = task_metrics(m, split, "test", Evaluator(split, ["ndcg@5"]))
    f = rated[rated.rating.notna()]
    u, i, r = f.user.to_numpy(), f.item.to_numpy(), f.rating.to_numpy()
    pred = m.predict_tasks(u, i)
    rhat = pred["rating"].double().numpy()
    assert res.means["rating/mae"] == pytest.approx(np.abs(rhat - r).mean(), abs=1e-12)
    assert res.means["rating/rmse"] == pytest.approx(np.sqrt(((rhat - r) ** 2).mean()), abs=1e-12)
    user_mae = pd.Series(np.abs(rhat - r)).groupby(u).mean()
    np.testing.assert_allclose(res.per_user["rating/user_mae"].dropna().sort_index().to_numpy(),
                               user_mae.to_numpy(), atol=1e-12)
    assert res.means["rating/user_mae"] == pytest.approx(user_mae.mean(), abs=1e-12)
    like = r >= 4.0
    p = pred["like"].double().numpy()
    ref = _per_group_auc(u, p, like)
    got = res.per_user["like/auc"].reindex(ref.index)
    assert ref.notna().sum() >= 3 and ref.isna().sum() >= 1      # both kinds of user are in the data
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), atol=1e-12)
    assert res.means["like/auc"] == pytest.approx(ref.mean(), abs=1e-12)
    n_pos = pd.Series(like.astype(float)).groupby(u).sum().reindex(ref.index)
    keep = ref.notna()
    assert res.means["like/gauc"] == pytest.approx((ref[keep] * n_pos[keep]).sum() / n_pos[keep].sum(), abs=1e-12)
    assert res.means["like/pooled_auc"] == pytest.approx(roc_auc_score(like, p), abs=1e-12)
    assert res.per_user.index.name == "user" and res.unit == "user" and res.notes == []
    assert (res.stage, res.mode, res.n_users) == ("test", "full", len(res.per_user))
    only_rating = task_metrics(Heads([Task("rating", "regression")]), split, "test", Evaluator(split, ["ndcg@5"]))
    assert set(only_rating.means) == {"rating/mae", "rating/rmse", "rating/user_mae"}
    only_like = task_metrics(Heads([Task("like", "binary")]), split, "test", Evaluator(split, ["ndcg@5"]))
    assert set(only_like.means) == {"like/auc", "like/gauc", "like/pooled_auc"}


def test_heads_without_labels_or_tasks_are_left_out_with_a_note():
    split = random_split(n_users=10, n_items=20, rating=False)
    res = task_metrics(Heads([Task("rating", "regression")]), split, "test", Evaluator(split, ["ndcg@5"]))
    assert res is None                      # nothing measured: no result, whatever the notes
    unrated = random_split(n_users=10, n_items=20)
    unrated.frames["test"] = unrated.test.assign(rating=np.nan)
    m = Heads([Task("rating", "regression"), Task("like", "binary")])
    assert task_metrics(m, unrated, "test", Evaluator(unrated, ["ndcg@5"])) is None and m.calls == 0
    assert task_metrics(Heads([]), unrated, "test", None) is None
    assert task_metrics(object(), unrated, "test", None) is None

    class NoPredict:
        tasks = [Task("rating", "regression")]

    assert task_metrics(NoPredict(), unrated, "test", None) is None
    # the note travels with a result that measured something else
    imp = impressions_split()
    imp.item_features = None
    res = task_metrics(Heads([Task("click", "binary"), Task("category", "multiclass", 4)]), imp, "test",
                       Evaluator(imp, ["auc"]))
    assert res.notes == ["category metrics skipped: no test candidate has a known category"]
    assert set(res.means) == {"click/auc", "click/pooled_auc"}


def test_click_and_category_heads_on_impressions():
    split = impressions_split(n_imp=200)
    feats = split.item_features.copy()
    feats.loc[feats.index[::3], "category"] = None           # a third of the items have no known category
    split.item_features = feats
    m = Heads([Task("click", "binary"), Task("category", "multiclass", 4, classes=["c 0", "c 1", "c 2", "c 3"])])
    res = task_metrics(m, split, "test", Evaluator(split, ["auc"]))
    test = split.test
    imp, items = test.impression.to_numpy(), test.item.to_numpy()
    pred = m.predict_tasks(test.user.to_numpy(), items)
    click = pred["click"].double().numpy()
    ref = _per_group_auc(imp, click, test.label.to_numpy() == 1)
    assert res.unit == "impression" and res.per_user.index.name == "impression"
    np.testing.assert_allclose(res.per_user["click/auc"].reindex(ref.index).to_numpy(), ref.to_numpy(), atol=1e-12)
    assert res.means["click/auc"] == pytest.approx(ref.mean(), abs=1e-12)
    assert res.means["click/pooled_auc"] == pytest.approx(roc_auc_score(test.label == 1, click), abs=1e-12)
    assert "click/gauc" not in res.means
    # the evaluator's own impression AUC of the click head is the same number

    class Clicks:
        def score_pairs(self, users, items):
            return m.predict_tasks(users.numpy(), items.numpy())["click"]

    assert Evaluator(split, ["auc"]).evaluate(Clicks(), "test").means["auc"] == pytest.approx(
        res.means["click/auc"], abs=1e-12)
    cat = feats["category"].map(lambda c: int(c[-1]) if isinstance(c, str) else -1).to_numpy()
    truth, guess = cat[items], (items * 3) % 4
    known = truth >= 0
    assert 0 < known.sum() < len(known)
    assert res.means["category/accuracy"] == pytest.approx((guess == truth)[known].mean(), abs=1e-12)
    per_imp = pd.Series((guess == truth)[known].astype(float)).groupby(imp[known]).mean()
    np.testing.assert_allclose(res.per_user["category/impression_accuracy"].dropna().sort_index().to_numpy(),
                               per_imp.to_numpy(), atol=1e-12)
    assert res.means["category/impression_accuracy"] == pytest.approx(per_imp.mean(), abs=1e-12)
    train_cats = cat[split.frames["train_impressions"].item.to_numpy()]
    majority = np.bincount(train_cats[train_cats >= 0]).argmax()
    assert res.means["category/majority_accuracy"] == pytest.approx((truth[known] == majority).mean(), abs=1e-12)
    assert all(higher_is_better(name) for name in [*res.means, *res.per_user.columns])   # each has a direction
    assert res.notes == [f"category: {known.sum()} of {len(known)} test candidates have a known category "
                         f"({known.mean():.1%}); the rest are not scored"]
    only_click = task_metrics(Heads([Task("click", "binary")]), split, "test", Evaluator(split, ["auc"]))
    assert set(only_click.means) == {"click/auc", "click/pooled_auc"} and only_click.notes == []
    # rating heads do not apply to impressions, click heads not to ranking splits
    assert task_metrics(Heads([Task("rating", "regression")]), split, "test", Evaluator(split, ["auc"])) is None
    ranking = random_split(n_users=10, n_items=20)
    assert task_metrics(Heads([Task("click", "binary")]), ranking, "test", Evaluator(ranking, ["ndcg@5"])) is None


def test_item_label_heads_under_a_ranking_protocol_are_scored_per_user():
    split = random_split(n_users=30, n_items=40, seed=2)
    n = split.n_items
    split.item_features = pd.DataFrame({"category": [f"c{i % 4}" for i in range(n)],
                                        "brand": [["b0", "b1", "b2"][i % 3] if i % 5 else "" for i in range(n)]})
    m = Heads([Task("interaction", "ranking"), Task("category", "multiclass", 4),
               Task("brand", "multiclass", 3)])
    res = task_metrics(m, split, "test", Evaluator(split, ["ndcg@5"]))
    test = split.test
    u, items = test.user.to_numpy(), test.item.to_numpy()
    assert res.unit == "user" and res.per_user.index.name == "user"
    # category: every item labelled; the guess is (item * 3) % 4, the truth item % 4
    right = ((items * 3) % 4 == items % 4).astype(float)
    assert res.means["category/accuracy"] == pytest.approx(right.mean(), abs=1e-12)
    per_user = pd.Series(right).groupby(u).mean()
    np.testing.assert_allclose(res.per_user["category/user_accuracy"].dropna().sort_index().to_numpy(),
                               per_user.to_numpy(), atol=1e-12)
    assert res.means["category/user_accuracy"] == pytest.approx(per_user.mean(), abs=1e-12)
    train_major = np.bincount(split.train.item.to_numpy() % 4).argmax()
    assert res.means["category/majority_accuracy"] == pytest.approx(np.mean(items % 4 == train_major), abs=1e-12)
    # brand: items divisible by 5 are unlabelled and left out; the guess is (user + item) % 3
    known = items % 5 != 0
    b_right = (((u + items) % 3) == (items % 3))[known].astype(float)
    assert 0 < known.sum() < len(known)
    assert res.means["brand/accuracy"] == pytest.approx(b_right.mean(), abs=1e-12)
    b_user = pd.Series(b_right).groupby(u[known]).mean()
    np.testing.assert_allclose(res.per_user["brand/user_accuracy"].dropna().sort_index().to_numpy(),
                               b_user.to_numpy(), atol=1e-12)
    train_items = split.train.item.to_numpy()
    b_major = np.bincount((train_items % 3)[train_items % 5 != 0]).argmax()
    assert res.means["brand/majority_accuracy"] == pytest.approx(np.mean((items % 3)[known] == b_major), abs=1e-12)
    # every name the extra writes is a registered metric with a direction: a report must be able to rank it
    assert all(higher_is_better(name) for name in [*res.means, *res.per_user.columns])
    assert res.notes == [f"category: {len(items)} of {len(items)} test pairs have a known category (100.0%); the rest "
                         f"are not scored", f"brand: {known.sum()} of {len(known)} test pairs have a known brand "
                         f"({known.mean():.1%}); the rest are not scored"]
    assert m.calls == 1                                       # one prediction pass serves every head
    split.item_features = pd.DataFrame({"category": [f"c{i % 4}" for i in range(n)], "brand": [""] * n})
    res = task_metrics(m, split, "test", Evaluator(split, ["ndcg@5"]))
    assert "brand metrics skipped: no test pair has a known brand" in res.notes
    assert not any(k.startswith("brand/") for k in res.means)


def test_domain_heads_report_the_ranking_metrics_of_each_domain_s_users():
    split = random_split(n_users=20, n_items=30, seed=2)
    split.user_features = pd.DataFrame({"domain": ["a" if u % 3 else "b" for u in range(20)]})
    m = Heads([Task("domain:a", "binary", domain=0), Task("domain:b", "binary", domain=1)], split)
    ev = Evaluator(split, ["ndcg@5", "hit@5"])
    res = task_metrics(m, split, "test", ev)
    whole = Evaluator(split, ["ndcg@5", "hit@5"]).evaluate_scores(m.score, "test").per_user
    dom = np.where(whole.index.to_numpy() % 3, "a", "b")
    for d in ("a", "b"):
        for metric in ("ndcg@5", "hit@5"):
            assert res.means[f"{d}/{metric}"] == pytest.approx(whole[metric][dom == d].mean(), abs=1e-12)
            np.testing.assert_allclose(res.per_user[f"{d}/{metric}"].dropna().to_numpy(),
                                       whole[metric][dom == d].to_numpy(), atol=1e-12)
    assert set(res.means) == {"a/ndcg@5", "a/hit@5", "b/ndcg@5", "b/hit@5"}
    split.user_features = None                     # no user domains: nothing to split by
    assert task_metrics(m, split, "test", ev) is None
    split.user_features = pd.DataFrame({"group": ["a"] * 20})
    assert task_metrics(m, split, "test", ev) is None


def test_a_like_head_where_no_user_has_both_classes_has_no_auc():
    split = random_split(n_users=10, n_items=20)
    split.frames["test"] = split.test.assign(rating=5.0)            # every test pair liked: no per-user AUC
    res = task_metrics(Heads([Task("like", "binary")]), split, "test", Evaluator(split, ["ndcg@5"]))
    assert res.per_user["like/auc"].isna().all()
    assert math.isnan(res.means["like/auc"]) and math.isnan(res.means["like/gauc"])
    assert math.isnan(res.means["like/pooled_auc"])
