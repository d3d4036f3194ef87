"""Properties of the evaluator over generated splits and scores (hypothesis): every metric in its range, tie-aware
metrics invariant to how tied items happen to be numbered, masking that ignores the scores of known items."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metarec.eval import Evaluator
from metarec.protocols.split import Split
from tests.toys import random_split

torch.set_num_threads(1)

BOUNDED = ["recall@3", "recall@5", "ndcg@3", "ndcg@5", "hit@3", "mrr@5", "precision@5", "map@5", "diversity@5",
           "auc", "coverage@5", "gini@5", "gauc"]
METRICS = BOUNDED + ["novelty@5"]


@st.composite
def scored_split(draw):
    """A random split (8-20 users, 8-25 items) and integer scores with 1-4 levels: heavy ties, a constant scorer
    included."""
    n_items = draw(st.integers(8, 25))
    split = random_split(n_users=draw(st.integers(8, 20)), n_items=n_items, per_user=(3, min(12, n_items - 2)),
                         seed=draw(st.integers(0, 2**31 - 1)), genres=draw(st.booleans()), no_target_users=1)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    levels = draw(st.integers(1, 4))
    return split, torch.randint(0, levels, (split.n_users, split.n_items), generator=g).double()


def relabelled(split: Split, perm: np.ndarray) -> Split:
    """The same split with item i renamed perm[i] (frames and item features alike)."""
    frames = {}
    for name, df in split.frames.items():
        df = df.copy()
        df["item"] = perm[df["item"].to_numpy()]
        frames[name] = df
    feats = None
    if split.item_features is not None:
        feats = split.item_features.iloc[np.argsort(perm)].reset_index(drop=True)
    return Split(split.dataset, split.protocol, split.params, split.seed, split.n_users, split.n_items, frames,
                 item_features=feats)


@settings(max_examples=30)
@given(case=scored_split())
def test_every_metric_is_in_its_range(case):
    split, scores = case
    res = Evaluator(split, METRICS).evaluate_scores(scores)
    for m in BOUNDED:
        values = res.per_user[m].dropna().to_numpy() if m in res.per_user else np.array([res.means[m]])
        assert ((values >= -1e-12) & (values <= 1 + 1e-12)).all(), m
    assert (res.per_user["novelty@5"] >= 0).all()
    # more of the list can only find more targets; precision@K <= recall@K * targets / K is exact
    assert (res.per_user["recall@5"] >= res.per_user["recall@3"] - 1e-12).all()
    assert (res.per_user["hit@3"] >= res.per_user["recall@3"] - 1e-12).all()


@settings(max_examples=30)
@given(case=scored_split(), seed=st.integers(0, 2**31 - 1))
def test_tie_aware_metrics_do_not_depend_on_item_numbering(case, seed):
    """Renaming the items (a permutation, applied to scores, targets and categories alike) reorders ties and
    nothing else: every tie-aware value is unchanged (1e-9). The id order of ``ties="first"`` is what it changes."""
    split, scores = case
    perm = np.random.default_rng(seed).permutation(split.n_items)
    moved = torch.empty_like(scores)
    moved[:, torch.from_numpy(perm)] = scores
    a = Evaluator(split, METRICS).evaluate_scores(scores)
    b = Evaluator(relabelled(split, perm), METRICS).evaluate_scores(moved)
    per_unit = [m for m in METRICS if m in a.per_user]
    np.testing.assert_allclose(b.per_user[per_unit].to_numpy(), a.per_user[per_unit].to_numpy(), rtol=0,
                               atol=1e-9)
    for m in METRICS:
        assert b.means[m] == pytest.approx(a.means[m], abs=1e-9), m


@settings(max_examples=20)
@given(case=scored_split(), seed=st.integers(0, 2**31 - 1))
def test_scores_of_training_items_do_not_matter(case, seed):
    """Known (training) items are masked before ranking: any values there leave every metric unchanged."""
    split, scores = case
    noisy = scores.clone()
    known = split.known("test")
    rng = np.random.default_rng(seed)
    noisy[known.user.to_numpy(), known.item.to_numpy()] = torch.from_numpy(rng.normal(0, 100, len(known)))
    a = Evaluator(split, METRICS).evaluate_scores(scores).means
    b = Evaluator(split, METRICS).evaluate_scores(noisy).means
    assert b == pytest.approx(a, abs=1e-9)
