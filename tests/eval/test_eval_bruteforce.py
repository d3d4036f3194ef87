"""(b) Every metric against a plain Python loop implementation on random data (1e-9)."""
from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.toys import distinct_scores, random_split
from metarec.eval import Evaluator
from metarec.eval import metrics as M
from metarec.protocols.split import Split

torch.set_num_threads(1)
TOL = 1e-9


# ---- brute-force definitions ----------------------------------------------------------------------------------------
def bf_ranking(ranked, targets, k):
    top = ranked[:k]
    h = [1 if i in targets else 0 for i in top]
    n = len(targets)
    out = {"recall": sum(h) / n, "precision": sum(h) / k, "hit": 1.0 if any(h) else 0.0}
    out["mrr"] = next((1.0 / (r + 1) for r, x in enumerate(h) if x), 0.0)
    dcg = sum(x / math.log2(r + 2) for r, x in enumerate(h))
    idcg = sum(1 / math.log2(r + 2) for r in range(min(n, k)))
    out["ndcg"] = dcg / idcg
    ap, seen = 0.0, 0
    for r, x in enumerate(h):
        if x:
            seen += 1
            ap += seen / (r + 1)
    out["map"] = ap / min(n, k)
    return out


def bf_auc(scores, pos, neg):
    tot = 0.0
    for p in pos:
        for q in neg:
            tot += 1.0 if scores[p] > scores[q] else 0.5 if scores[p] == scores[q] else 0.0
    return tot / (len(pos) * len(neg))


def bf_gini(counts):
    x = list(counts)
    n, s = len(x), sum(x)
    return sum(abs(a - b) for a in x for b in x) / (2 * n * s)


def bf_jaccard_div(items, cats):
    d = []
    for a, b in combinations(items, 2):
        A, B = cats[a], cats[b]
        d.append(0.0 if not (A | B) else 1 - len(A & B) / len(A | B))
    return sum(d) / len(d)


# ---- MIND's evaluation script (msnews.github.io), verbatim in substance ---------------------------------------------
def mind_dcg(y_true, y_score, k=10):
    order = np.argsort(y_score)[::-1]
    y_true = np.take(y_true, order[:k])
    gains = 2 ** y_true - 1
    discounts = np.log2(np.arange(len(y_true)) + 2)
    return np.sum(gains / discounts)


def mind_ndcg(y_true, y_score, k=10):
    return mind_dcg(y_true, y_score, k) / mind_dcg(y_true, y_true, k)


def mind_mrr(y_true, y_score):
    order = np.argsort(y_score)[::-1]
    y_true = np.take(y_true, order)
    return np.sum(y_true / (np.arange(len(y_true)) + 1)) / np.sum(y_true)


# ---- tests ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_full_ranking_metrics_vs_bruteforce(seed):
    split = random_split(n_users=45, n_items=50, seed=seed)
    scores = distinct_scores(45, 50, seed=seed + 100)
    ks = [1, 3, 10]
    names = [f"{m}@{k}" for m in ("recall", "ndcg", "hit", "mrr", "precision", "map", "novelty", "diversity",
                                  "coverage", "gini") for k in ks if not (m == "diversity" and k == 1)]
    ev = Evaluator(split, names + ["auc", "gauc"], batch_size=8)
    for stage in ("valid", "test"):
        res = ev.evaluate_scores(scores, stage)
        known = split.known(stage).groupby("user")["item"].agg(set).to_dict()
        targets = split.frames[stage].groupby("user")["item"].agg(set).to_dict()
        train_counts = np.bincount(split.train["item"], minlength=50)
        total = train_counts.sum()
        cats = {i: set(g.split("|")) - {""} for i, g in enumerate(split.item_features["genres"])}
        assert sorted(res.per_user.index) == sorted(targets)  # train-only users skipped
        rec_counts = {k: np.zeros(50, dtype=int) for k in ks}
        aucs, weights = [], []
        for u in sorted(targets):
            allowed = [i for i in range(50) if i not in known.get(u, set())]
            ranked = sorted(allowed, key=lambda i: -float(scores[u, i]))
            row = res.per_user.loc[u]
            for k in ks:
                for m, v in bf_ranking(ranked, targets[u], k).items():
                    assert abs(row[f"{m}@{k}"] - v) < TOL, (stage, u, m, k)
                nov = sum(-math.log2(max(train_counts[i], 1) / total) for i in ranked[:k]) / k
                assert abs(row[f"novelty@{k}"] - nov) < TOL
                if k > 1:
                    assert abs(row[f"diversity@{k}"] - bf_jaccard_div(ranked[:k], cats)) < TOL
                for i in ranked[:k]:
                    rec_counts[k][i] += 1
            pos = [i for i in allowed if i in targets[u]]
            neg = [i for i in allowed if i not in targets[u]]
            a = bf_auc(scores[u].tolist(), pos, neg)
            assert abs(row["auc"] - a) < TOL
            aucs.append(a)
            weights.append(len(pos))
        for k in ks:
            assert abs(res.means[f"coverage@{k}"] - (rec_counts[k] > 0).sum() / 50) < TOL
            assert abs(res.means[f"gini@{k}"] - bf_gini(rec_counts[k])) < TOL
        assert abs(res.means["gauc"] - np.dot(aucs, weights) / sum(weights)) < TOL


def test_auc_with_ties_and_masks_vs_bruteforce():
    rng = np.random.default_rng(7)
    U, n = 30, 25
    scores = torch.from_numpy(rng.integers(0, 4, (U, n)).astype(np.float64))
    scores[0, :5] = float("-inf")  # unmasked items the model itself scores -inf still take part
    valid = torch.from_numpy(rng.random((U, n)) < 0.7)
    pos = torch.from_numpy(rng.random((U, n)) < 0.3)
    auc, w = M.auc_per_user(scores.masked_fill(~valid, float("-inf")), pos, valid)
    for u in range(U):
        P = [i for i in range(n) if valid[u, i] and pos[u, i]]
        N = [i for i in range(n) if valid[u, i] and not pos[u, i]]
        assert w[u] == len(P)
        if not P or not N:
            assert math.isnan(auc[u])
        else:
            assert abs(float(auc[u]) - bf_auc(scores[u].tolist(), P, N)) < TOL


@pytest.mark.parametrize("ties", [False, True])
def test_impression_metrics_vs_mind_script(ties):
    rng = np.random.default_rng(3)
    rows = []
    for imp in rng.permutation(80):
        n = int(rng.integers(2, 25))
        lab = (rng.random(n) < rng.uniform(0, 0.5)).astype(int)
        if imp % 7 == 0:
            lab[:] = 0  # no click: mrr/ndcg undefined, auc undefined
        if imp % 11 == 0:
            lab[:] = 1  # only clicks: auc undefined
        sc = rng.integers(0, 5, n).astype(float) if ties else rng.random(n)
        rows += [(imp, lab[j], sc[j]) for j in range(n)]
    df = pd.DataFrame(rows, columns=["imp", "label", "score"]).sample(frac=1, random_state=1)
    gid, vals = M.impression_metrics(torch.tensor(df.imp.to_numpy()), torch.tensor(df.label.to_numpy()),
                                     torch.tensor(df.score.to_numpy()), ndcg_ks=(5, 10))
    from sklearn.metrics import roc_auc_score
    for j, imp in enumerate(gid.tolist()):
        g = df[df.imp == imp]
        y, s = g.label.to_numpy(), g.score.to_numpy()
        if 0 < y.sum() < len(y):
            assert abs(float(vals["auc"][j]) - roc_auc_score(y, s)) < TOL
        else:
            assert math.isnan(vals["auc"][j])
        if y.sum() == 0:
            assert math.isnan(vals["mrr"][j]) and math.isnan(vals["ndcg@5"][j])
            continue
        if not ties:  # with ties MIND's order depends on numpy's unstable argsort; ours follows row order
            assert abs(float(vals["mrr"][j]) - mind_mrr(y, s)) < TOL
            for k in (5, 10):
                assert abs(float(vals[f"ndcg@{k}"][j]) - mind_ndcg(y, s, k)) < TOL


def test_impression_evaluator_end_to_end_vs_mind():
    rng = np.random.default_rng(4)
    rows = []
    for imp in range(30):
        u = imp % 7
        cand = rng.choice(40, int(rng.integers(3, 12)), replace=False)
        lab = (rng.random(len(cand)) < 0.3).astype(np.int8)
        rows += [(imp, u, int(i), int(l)) for i, l in zip(cand, lab)]
    test = pd.DataFrame(rows, columns=["impression", "user", "item", "label"])
    train = pd.DataFrame({"user": [0, 1], "item": [0, 1]})
    split = Split("mindtoy", "impressions", {}, 0, 7, 40, {"train": train, "valid": test.iloc[:0], "test": test})
    S = distinct_scores(7, 40, seed=9).double()

    class Fake:
        def score_pairs(self, users, items):
            return S[users, items]

    res = Evaluator(split, batch_size=3).evaluate(Fake(), "test")
    assert res.unit == "impression" and res.mode == "impressions"
    from sklearn.metrics import roc_auc_score
    exp = {"auc": [], "mrr": [], "ndcg@5": [], "ndcg@10": []}
    for imp, g in test.groupby("impression"):
        y, s = g.label.to_numpy(), S[g.user.to_numpy(), g.item.to_numpy()].numpy()
        row = res.per_user.loc[imp]
        assert row["user"] == g.user.iloc[0]
        if 0 < y.sum() < len(y):
            exp["auc"].append(roc_auc_score(y, s))
            assert abs(row["auc"] - exp["auc"][-1]) < TOL
        if y.sum():
            exp["mrr"].append(mind_mrr(y, s))
            exp["ndcg@5"].append(mind_ndcg(y, s, 5))
            exp["ndcg@10"].append(mind_ndcg(y, s, 10))
            assert abs(row["mrr"] - exp["mrr"][-1]) < TOL
    for name, v in exp.items():
        assert abs(res.means[name] - np.mean(v)) < TOL


def test_rating_metrics_vs_bruteforce():
    split = random_split(n_users=20, n_items=30, seed=2)
    R = torch.from_numpy(np.random.default_rng(0).uniform(1, 5, (20, 30)))

    class Fake:
        def score(self, users):
            return R[users].float()

        def predict_rating(self, users, items):
            return R[users, items]

        def adapt(self, support):
            pass

    res = Evaluator(split, ["mae", "rmse", "ndcg@5"]).evaluate(Fake(), "test")
    t = split.test
    err = [float(R[u, i]) - r for u, i, r in zip(t.user, t.item, t.rating)]
    assert abs(res.means["mae"] - sum(abs(e) for e in err) / len(err)) < TOL
    assert abs(res.means["rmse"] - math.sqrt(sum(e * e for e in err) / len(err))) < TOL
    assert "mae" not in res.per_user.columns


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,k", [(30, 5), (33, 3), (35, 2), (700, 10), (1682, 20), (1682, 1), (2000, 50),
                                 (5000, 20)])
def test_topk_items_is_a_stable_descending_sort(dtype, n, k):
    """topk_items == the first k of a stable descending sort (ties: lower item id first), on every code path (the
    compiled CPU loop with full and partial last blocks, fewer blocks than k, many blocks (5000 items), and the
    device branch)."""
    g = torch.Generator().manual_seed(n + k)
    B = 37
    exact = torch.rand((B, n), generator=g, dtype=torch.float64).to(dtype)
    ties = torch.randint(0, 7, (B, n), generator=g).to(dtype)
    masked = exact.clone()
    masked[torch.rand((B, n), generator=g) < 0.5] = float("-inf")
    masked[0, :] = float("-inf")          # a row with no finite score at all
    masked[1, : n - 3] = float("-inf")    # a row with fewer than k finite scores
    signed = torch.randint(-1, 2, (B, n), generator=g).to(dtype) * 0.0  # +0.0 and -0.0: equal scores
    signed[:, ::5] = 1.0
    for s in (exact, ties, masked, signed, -ties):
        ref = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]
        assert torch.equal(M.topk_items(s, k), ref)
        assert torch.equal(M.topk_items(s, k, compiled=False), ref)   # the device (torch) path, run on CPU


@pytest.mark.parametrize("compiled", [True, False])
def test_topk_items_rejects_nan_and_bad_k(compiled):
    s = torch.rand(4, 2000)
    s[2, 1234] = float("nan")
    s[3, 20] = float("nan")
    with pytest.raises(ValueError, match=r"^scores contain NaN in 2 row\(s\)$"):
        M.topk_items(s, 10, compiled=compiled)
    with pytest.raises(ValueError, match=r"^scores contain NaN in 1 row\(s\)$"):
        M.topk_items(s[:, :50], 10, compiled=compiled)  # the small-catalogue path too
    from metarec.errors import ConfigError
    for k in (0, 6):
        with pytest.raises(ConfigError, match=rf"^cut-off {k} must be in 1..5 \(the number of items\)$"):
            M.topk_items(torch.rand(2, 5), k, compiled=compiled)
    assert M.topk_items(torch.rand(0, 5), 2, compiled=compiled).shape == (0, 2)
    ints = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    assert M.topk_items(ints, 2, compiled=compiled).tolist() == [[4, 2], [0, 2]]
