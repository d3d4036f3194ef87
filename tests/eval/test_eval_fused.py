"""The fused CPU path of full ranking (``_topk_kernel.masked_topk_hits``: mask, top-K and hits in one compiled pass
over the caller's scores) must give exactly what the general path gives, and hand every batch it cannot treat
(ties, short lists, NaN) to the general path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from metarec.errors import TrainingError
from metarec.eval import Evaluator
from metarec.eval import _topk_kernel
from metarec.protocols.split import Split

METRICS = ["ndcg@10", "recall@20", "hit@5", "mrr@10", "precision@10", "map@20", "coverage@10", "novelty@10",
           "gini@20"]


def random_split(n_users=150, n_items=900, seed=0) -> Split:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=int(rng.integers(12, 60)), replace=False)
        rows += [(u, int(i)) for i in items]
    df = pd.DataFrame(rows, columns=["user", "item"])
    df["rating"] = 1.0
    part = rng.choice(["train", "valid", "test"], size=len(df), p=[0.7, 0.1, 0.2])
    frames = {p: df[part == p].reset_index(drop=True) for p in ("train", "valid", "test")}
    return Split(dataset="toy", protocol="ratio", params={}, seed=seed, n_users=n_users, n_items=n_items,
                 frames=frames)


@pytest.fixture(scope="module")
def split():
    return random_split()


@pytest.fixture
def fused_calls(monkeypatch):
    """Counts the batches the fused kernel ranked, and which of them it handed back (a flag set)."""
    real, seen = _topk_kernel.masked_topk_hits, []

    def spy(*args, **kw):
        out = real(*args, **kw)
        seen.append(bool(out[2].any()))
        return out

    monkeypatch.setattr(_topk_kernel, "masked_topk_hits", spy)
    return seen


def general_path(split, scores, ties="expected"):
    ev = Evaluator(split, METRICS, batch_size=64, ties=ties)
    ev._fused_k = lambda want_auc: 0
    return ev.evaluate_scores(scores, "test")


def assert_same(a, b):
    assert a.means.keys() == b.means.keys()
    for name in a.means:
        assert a.means[name] == pytest.approx(b.means[name], abs=1e-12, rel=0), name
    pd.testing.assert_frame_equal(a.per_user, b.per_user, check_exact=False, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ties", ["expected", "first"])
def test_the_fused_path_equals_the_general_path(split, fused_calls, ties):
    scores = torch.rand((split.n_users, split.n_items), generator=torch.Generator().manual_seed(1))
    fused = Evaluator(split, METRICS, batch_size=64, ties=ties).evaluate_scores(scores, "test")
    assert fused_calls and not any(fused_calls)        # every batch took the fused path
    assert_same(fused, general_path(split, scores, ties))
    before = scores.clone()
    calls = len(fused_calls)
    again = Evaluator(split, METRICS, batch_size=64, ties=ties).evaluate_scores(lambda u: scores[u], "test")
    assert len(fused_calls) > calls                    # a score function's batches go through it too
    assert_same(again, fused)
    assert torch.equal(scores, before)                 # the kernel masks a private copy, never the caller's scores


def test_batches_with_ties_or_short_lists_take_the_general_path(split, fused_calls):
    g = torch.Generator().manual_seed(2)
    scores = torch.rand((split.n_users, split.n_items), generator=g, dtype=torch.float64)
    scores[:40] = torch.round(scores[:40] * 8) / 8      # the first batch: heavy ties at every cut-off
    scores[70, :] = float("-inf")                       # a user with no scored item: a short (padded) list
    scores[70, :3] = torch.tensor([0.9, 0.5, 0.1], dtype=torch.float64)
    fused = Evaluator(split, METRICS, batch_size=64).evaluate_scores(scores, "test")
    assert fused_calls == [True, True, False]           # batches 1 (ties) and 2 (short list) handed back
    assert_same(fused, general_path(split, scores))


def test_nan_is_an_error_only_where_it_is_not_masked(split):
    known = split.known("test")
    u, i = int(known.user.iloc[0]), int(known.item.iloc[0])
    scores = torch.rand((split.n_users, split.n_items), generator=torch.Generator().manual_seed(3))
    scores[u, i] = float("nan")                          # a known (masked) item: never ranked, no error
    masked_nan = Evaluator(split, METRICS, batch_size=64).evaluate_scores(scores, "test")
    scores[u, i] = 0.5
    assert_same(masked_nan, Evaluator(split, METRICS, batch_size=64).evaluate_scores(scores, "test"))
    tested = int(split.test.user.iloc[0])
    free = sorted(set(range(split.n_items)) - set(known[known.user == tested].item))[0]
    scores[tested, free] = float("nan")
    with pytest.raises(TrainingError, match="NaN scores at stage 'test'"):
        Evaluator(split, METRICS, batch_size=64).evaluate_scores(scores, "test")


def test_the_kernel_flags_what_it_cannot_rank():
    a = np.array([[0.3, 0.9, 0.1, 0.7, 0.5],
                  [0.2, 0.2, 0.4, 0.1, 0.0],      # tie among the listed
                  [0.1, np.nan, 0.3, 0.2, 0.5],  # NaN at item 1, masked below: ranked
                  [0.1, 0.2, np.nan, 0.0, 0.4],  # NaN not masked
                  [0.5, 0.4, 0.3, 0.2, 0.1]], dtype=np.float32)
    known = (np.array([0, 1, 1, 2, 2, 6], dtype=np.int64), np.array([3, 1, 0, 1, 2, 3], dtype=np.int64))
    target = (np.array([0, 1, 2, 3, 4, 5], dtype=np.int64), np.array([1, 2, 0, 0, 4], dtype=np.int64))
    top, hits, flags = _topk_kernel.masked_topk_hits(a, np.arange(5, dtype=np.int64), known, target, 3, 2)
    # 0: clean; 1: a tie in the list; 2: the NaN is masked; 3: NaN not masked; 4: one scored item (short + -inf ties)
    assert flags.tolist() == [0, 2, 0, 1, 6]
    assert top[0].tolist() == [1, 4, 0] and hits[0].tolist() == [1.0, 0.0, 0.0]   # item 3 (0.7) is masked
    assert top[1].tolist() == [2, 0, 1]                                             # equal scores: item order
    assert top[2].tolist() == [4, 2, 3] and hits[2].tolist() == [0.0, 0.0, 0.0]
    assert top[4].tolist() == [4, 0, 1] and hits[4].tolist() == [1.0, 0.0, 0.0]
    assert a[2, 1] != a[2, 1]                                                       # the caller's row untouched
