"""Tie-aware ranking metrics: each top-K metric is its expectation over every order of the tied items
(McSherry & Najork 2008), checked against a brute-force average over all permutations used as tie-breakers."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from metarec.eval import Evaluator
from tests.toys import distinct_scores, random_split

PER_USER = ["recall@1", "recall@3", "ndcg@2", "ndcg@3", "hit@1", "hit@3", "mrr@2", "mrr@3", "precision@3",
            "map@2", "map@3", "novelty@3", "diversity@2", "diversity@3"]


def fixed_item_vectors(monkeypatch):
    """Reference item vectors with similarities of every size: unit vectors in the plane at angles 0, 0.5, 1.0, ...
    (the rank-r SVD of a 6-item toy gives nearly orthogonal vectors, diversity 1 for every list, so the pair sums
    would go unchecked)."""
    from metarec.eval import metrics as M

    def vectors(users, items, n_users, n_items, dim):
        angle = torch.arange(n_items, dtype=torch.float64) * 0.5
        return torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    monkeypatch.setattr(M, "reference_item_vectors", vectors)


def brute_force(split, scores, stage="test", names=PER_USER):
    """Per-user metrics averaged over all n! global tie-breaking orders (each induces a uniform order of every
    user's tied items), each order scored with the deterministic evaluator; and, per user and item, the fraction
    of orders that put the item in the top 3 (the inclusion probabilities coverage is built from)."""
    n = split.n_items
    ev = Evaluator(split, names, ties="first")
    total, incl = None, None
    perms = list(itertools.permutations(range(n)))
    for perm in perms:
        breaker = torch.tensor(perm, dtype=torch.float64)
        # distinct scores that order by (score desc, breaker asc)
        order = np.lexsort((breaker.numpy()[None, :].repeat(len(scores), 0), -scores.numpy()), axis=1)
        ranked = torch.empty_like(scores, dtype=torch.float64)
        ranked.scatter_(1, torch.from_numpy(order), -torch.arange(n, dtype=torch.float64).expand(len(scores), n))
        res = ev.evaluate_scores(ranked, stage)
        pu = res.per_user[names].to_numpy()
        total = pu if total is None else total + pu
        _, top = ev.top_k(ranked, stage, k=3)
        inc = np.zeros((len(top), n))
        np.put_along_axis(inc, top, 1.0, axis=1)
        incl = inc if incl is None else incl + inc
    return total / len(perms), incl / len(perms)


@pytest.mark.parametrize("genres", [True, False], ids=["categories", "vectors"])
@pytest.mark.parametrize("seed, levels", [(0, 2), (1, 3), (2, 1)])
def test_tie_aware_metrics_equal_the_average_over_all_tie_orders(seed, levels, genres, monkeypatch):
    """Without item categories diversity@K runs on reference item vectors: its tie-aware form is checked too."""
    if not genres:
        fixed_item_vectors(monkeypatch)
    split = random_split(n_users=6, n_items=6, per_user=(3, 3), seed=seed, no_target_users=0, genres=genres)
    g = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (split.n_users, split.n_items), generator=g).double()  # levels=1: constant
    want, incl = brute_force(split, scores)
    # every user has 4 unscored-yet items and lists of 3: the tie at the cut-off goes on past the list
    assert all(split.n_items - len(split.known("test").query("user == @u")) > 3 for u in range(split.n_users))
    ev = Evaluator(split, PER_USER + ["coverage@3"])
    got = ev.evaluate_scores(scores)
    assert any(n.startswith("diversity@K by item vectors") for n in got.notes) == (not genres)
    np.testing.assert_allclose(got.per_user[PER_USER].to_numpy(), want, rtol=0, atol=1e-9)
    # coverage: E[#items in some list] with independent tie orders per user = sum_i 1 - prod_u (1 - P_ui)
    cov = (1.0 - np.prod(1.0 - incl, axis=0)).sum() / split.n_items
    assert got.means["coverage@3"] == pytest.approx(cov, abs=1e-9)


LONGER = PER_USER + ["hit@4", "novelty@2"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_infinite_top_scores_are_a_tie_like_any_other(seed, monkeypatch):
    """+inf is a score, not padding (only -inf is: masked items): `recency` gives every item the training split never
    showed +inf, as the newest. A tie of +inf items at the cut-off is a tie like any other, its expectation taken over
    the whole run (until session 9 such a run counted no positive at all: recency scored exactly 0 on ml-100k)."""
    fixed_item_vectors(monkeypatch)
    split = random_split(n_users=6, n_items=6, per_user=(3, 3), seed=seed, no_target_users=0, genres=False)
    g = torch.Generator().manual_seed(seed + 20)
    scores = torch.randint(0, 3, (split.n_users, split.n_items), generator=g).double()
    scores[scores == 2] = float("inf")
    assert bool(torch.isinf(scores).any())
    want, incl = brute_force(split, scores, names=LONGER)
    got = Evaluator(split, LONGER + ["coverage@3"]).evaluate_scores(scores)
    np.testing.assert_allclose(got.per_user[LONGER].to_numpy(), want, rtol=0, atol=1e-9)
    assert got.means["coverage@3"] == pytest.approx((1.0 - np.prod(1.0 - incl, axis=0)).sum() / split.n_items,
                                                    abs=1e-9)


@pytest.mark.parametrize("genres", [True, False], ids=["categories", "vectors"])
@pytest.mark.parametrize("seed, levels", [(0, 2), (1, 3), (2, None)])
def test_tie_aware_metrics_at_cut_offs_well_inside_the_list(seed, levels, genres, monkeypatch):
    """Lists of 4 (hit@4) scored at 2 and 3 as well: runs that start after a cut-off must count for nothing there,
    and the run straddling it only for its share (coverage@3 and diversity@2 read the same lists). ``levels=None``:
    every user's four rankable items score 3, 2, 2, 1 (in a random order), so that a run straddles 2 and another
    starts at 3 in every list."""
    if not genres:
        fixed_item_vectors(monkeypatch)
    split = random_split(n_users=6, n_items=6, per_user=(3, 3), seed=seed, no_target_users=0, genres=genres)
    g = torch.Generator().manual_seed(seed + 10)
    if levels is not None:
        scores = torch.randint(0, levels, (split.n_users, split.n_items), generator=g).double()
    else:
        scores = torch.full((split.n_users, split.n_items), -1.0, dtype=torch.float64)
        for u in range(split.n_users):
            free = sorted(set(range(split.n_items)) - set(split.known("test").query("user == @u").item))
            assert len(free) == 4
            scores[u, free] = torch.tensor([3.0, 2.0, 2.0, 1.0], dtype=torch.float64)[torch.randperm(4, generator=g)]
    want, incl = brute_force(split, scores, names=LONGER)
    got = Evaluator(split, LONGER + ["coverage@3", "gini@3"]).evaluate_scores(scores)
    np.testing.assert_allclose(got.per_user[LONGER].to_numpy(), want, rtol=0, atol=1e-9)
    assert got.means["coverage@3"] == pytest.approx((1.0 - np.prod(1.0 - incl, axis=0)).sum() / split.n_items,
                                                    abs=1e-9)
    # gini is computed from the expected number of lists each item is in (the sum of its inclusion probabilities)
    from metarec.eval.metrics import gini_from_counts
    assert got.means["gini@3"] == pytest.approx(gini_from_counts(torch.from_numpy(incl.sum(0))), abs=1e-9)


@pytest.mark.parametrize("levels", [2, 3])
def test_tie_aware_metrics_with_several_positives_in_a_tie(levels):
    """Users with 2-3 targets among 5 rankable items, so that tied runs hold several positives: AP's terms for a
    positive after other positives of its own run, and after those of earlier runs, against the brute force."""
    import pandas as pd
    from metarec.protocols import Split

    rng = np.random.default_rng(levels)
    train, test = [], []
    for u in range(6):
        items = rng.permutation(6)
        train.append((u, int(items[0])))
        test += [(u, int(i)) for i in items[1:3 + u % 2]]
    frames = {"train": pd.DataFrame(train, columns=["user", "item"]),
              "valid": pd.DataFrame({"user": [], "item": []}, dtype="int64"),
              "test": pd.DataFrame(test, columns=["user", "item"])}
    split = Split("multi", "ratio", {}, 0, 6, 6, frames)
    scores = torch.randint(0, levels, (6, 6), generator=torch.Generator().manual_seed(levels)).double()
    names = [n for n in LONGER if not n.startswith("diversity")]
    want, _ = brute_force(split, scores, names=names)
    got = Evaluator(split, names).evaluate_scores(scores)
    np.testing.assert_allclose(got.per_user[names].to_numpy(), want, rtol=0, atol=1e-9)


def test_first_order_ties_go_to_the_lower_item_and_differ_from_the_expectation():
    split = random_split(n_users=30, n_items=50, seed=3)
    const = torch.zeros(split.n_users, split.n_items)
    first = Evaluator(split, ["ndcg@10", "coverage@10"], ties="first").evaluate_scores(const)
    assert first.means["coverage@10"] <= 30 * 10 / 50   # every list is (nearly) the same: lowest unmasked ids
    exp = Evaluator(split, ["ndcg@10", "coverage@10"]).evaluate_scores(const)
    assert exp.means["coverage@10"] > 0.99 and first.means["coverage@10"] < 0.5


def test_without_ties_both_orders_agree_exactly():
    split = random_split(n_users=40, n_items=60, seed=4)
    scores = distinct_scores(split.n_users, split.n_items, seed=4)
    names = PER_USER + ["coverage@10", "gini@10", "auc"]
    a = Evaluator(split, names).evaluate_scores(scores)
    b = Evaluator(split, names, ties="first").evaluate_scores(scores)
    assert a.means == pytest.approx(b.means, abs=1e-12)


def test_ties_option_is_checked():
    from metarec.errors import ConfigError

    with pytest.raises(ConfigError, match="ties must be one of expected, first"):
        Evaluator(random_split(n_users=4, n_items=30), ["ndcg@5"], ties="random")


def test_a_constant_scorer_scores_what_random_scores_do_on_ml100k(tmp_path):
    """ml-100k general: with tie-aware metrics a constant scorer equals the mean of random scorers (within 4
    standard errors over 16 random draws); ranked by item id instead, it scores several times higher, because
    internal ids follow original ids, which correlate with popularity."""
    from metarec.bench.experiment import get_split

    split = get_split("ml-100k", "general", root=tmp_path)
    names = ["ndcg@10", "hit@10", "precision@10", "recall@20"]
    const = torch.zeros(split.n_users, split.n_items)
    tied = Evaluator(split, names).evaluate_scores(const).means
    first = Evaluator(split, names, ties="first").evaluate_scores(const).means
    g = torch.Generator().manual_seed(0)
    ev = Evaluator(split, names, ties="first")
    draws = np.array([[ev.evaluate_scores(torch.rand(split.n_users, split.n_items, generator=g)).means[n]
                       for n in names] for _ in range(16)])
    mean, se = draws.mean(0), draws.std(0, ddof=1) / np.sqrt(len(draws))
    for j, n in enumerate(names):
        assert abs(tied[n] - mean[j]) < 4 * se[j], (n, tied[n], mean[j], se[j])
        assert first[n] > 3 * tied[n]   # the old order flatters a constant scorer


def test_impression_metrics_equal_the_average_over_all_tie_orders():
    """MIND's MRR and nDCG per impression (``impression_metrics``) with ties: each the mean of the row-order metric
    over every order of the impression's candidates (all orders of a run of tied candidates are equally likely);
    constant impressions and +inf ties among them. AUC, tie-aware by construction (ties count 0.5), is unchanged."""
    import torch as T

    from metarec.errors import ConfigError
    from metarec.eval import metrics as M

    rng = np.random.default_rng(5)
    imps = []
    for imp in range(24):
        n = int(rng.integers(2, 6))
        lab = (rng.random(n) < 0.4).astype(float)
        lab[rng.integers(n)] = 1.0
        sc = rng.integers(0, 3, n).astype(float)
        if imp % 5 == 0:
            sc[:] = 1.0                   # a constant scorer: every order equally likely
        if imp % 7 == 0:
            sc[sc == 2] = np.inf          # recency's unseen candidates
        imps.append((lab, sc))
    groups = T.tensor(np.concatenate([[j] * len(lab) for j, (lab, _) in enumerate(imps)]))
    labels = T.tensor(np.concatenate([lab for lab, _ in imps]))
    scores = T.tensor(np.concatenate([sc for _, sc in imps]))
    names = ["mrr", "ndcg@1", "ndcg@3", "auc"]
    _, got = M.impression_metrics(groups, labels, scores, ndcg_ks=(1, 3), ties="expected")
    _, first = M.impression_metrics(groups, labels, scores, ndcg_ks=(1, 3), ties="first")
    differs = False
    for j, (lab, sc) in enumerate(imps):
        runs = []
        for perm in itertools.permutations(range(len(lab))):
            p = list(perm)
            _, v = M.impression_metrics(T.zeros(len(p), dtype=T.long), T.tensor(lab[p]), T.tensor(sc[p]),
                                        ndcg_ks=(1, 3), ties="first")
            runs.append([float(v[name][0]) for name in names])
        want = np.mean(runs, axis=0)
        np.testing.assert_allclose([float(got[name][j]) for name in names], want, rtol=0, atol=1e-12,
                                   err_msg=f"impression {j}")
        differs |= any(abs(float(first[name][j]) - w) > 1e-9 for name, w in zip(names, want))
    assert differs   # row order is not the expectation: the cases have ties that matter
    with pytest.raises(ConfigError, match="ties must be 'expected' or 'first'"):
        M.impression_metrics(groups, labels, scores, ties="random")
