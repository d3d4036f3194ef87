"""(a) Our metrics equal RecBole 1.2.1's own metric code on identical inputs (1e-9)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.eval._eval_helpers import recbole_numpy_aliases
from tests.toys import distinct_scores, random_split
from metarec.eval import Evaluator
from metarec.eval import metrics as M

torch.set_num_threads(1)
import recbole.evaluator.metrics as rb_metrics  # noqa: E402  (pinned and required: a broken import must fail)
from recbole.evaluator.collector import Collector  # noqa: E402
from recbole.evaluator.evaluator import Evaluator as RecBoleEvaluator  # noqa: E402

CFG = {"metric_decimal_place": 12, "topk": [1]}


@pytest.fixture(autouse=True)
def _aliases(monkeypatch):
    recbole_numpy_aliases(monkeypatch)


def _random_topk(seed, U=300, K=25):
    rng = np.random.default_rng(seed)
    pos_index = rng.random((U, K)) < rng.uniform(0.02, 0.5, size=(U, 1))
    # n_pos >= hits (some users have more positives than K, some fewer)
    pos_len = pos_index.sum(1) + rng.integers(0, 30, U)
    pos_len = np.maximum(pos_len, 1)
    return pos_index, pos_len


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topk_metrics_equal_recbole_metric_info(seed):
    pos_index, pos_len = _random_topk(seed)
    K = pos_index.shape[1]
    hits, n_pos = torch.from_numpy(pos_index), torch.from_numpy(pos_len)
    theirs = {
        "recall": rb_metrics.Recall(CFG).metric_info(pos_index, pos_len),
        "ndcg": rb_metrics.NDCG(CFG).metric_info(pos_index, pos_len),
        "hit": rb_metrics.Hit(CFG).metric_info(pos_index),
        "mrr": rb_metrics.MRR(CFG).metric_info(pos_index),
        "precision": rb_metrics.Precision(CFG).metric_info(pos_index),
        "map": rb_metrics.MAP(CFG).metric_info(pos_index, pos_len),
    }
    for name, table in theirs.items():
        for k in range(1, K + 1):
            ours = M.TOPK_FUNCTIONS[name](hits, n_pos, k)
            assert ours.dtype == torch.float64 and ours.shape == (len(pos_len),)
            np.testing.assert_allclose(ours.numpy(), table[:, k - 1], rtol=0, atol=1e-9, err_msg=f"{name}@{k}")


def _recbole_full_sort(scores_masked, target, metrics, topk, n_items):
    """RecBole's trainer path on already-masked scores: Collector.eval_batch_collect + Evaluator.evaluate.

    Like RecBole, item 0 is a padding item whose score is -inf: prepend that column and shift ids by one."""
    cfg = {"metrics": metrics, "topk": topk, "eval_args": {"mode": {"valid": "full", "test": "full"}},
           "device": torch.device("cpu"), "metric_decimal_place": 12}
    pad = torch.full((scores_masked.shape[0], 1), float("-inf"))
    # float64 scores: RecBole keeps pos_len in the scores dtype, and float32 would round its GAUC to ~1e-8
    s = torch.cat([pad, scores_masked], 1).double()
    pu, pi = torch.nonzero(target, as_tuple=True)
    col = Collector(cfg)
    col.eval_batch_collect(s, None, pu, pi + 1)
    struct = col.get_data_struct()
    struct.set("data.num_items", n_items + 1)
    return RecBoleEvaluator(cfg).evaluate(struct)


@pytest.mark.parametrize("ties", [False, True])
def test_auc_gauc_equal_recbole_gauc(ties):
    U, n = 120, 80
    rng = np.random.default_rng(5)
    if ties:
        scores = torch.from_numpy(rng.integers(0, 6, (U, n)).astype(np.float32))
    else:
        scores = distinct_scores(U, n, seed=5)
    masked = torch.from_numpy(rng.random((U, n)) < 0.3)
    target = torch.from_numpy(rng.random((U, n)) < 0.1) & ~masked
    target[torch.arange(U), torch.from_numpy(rng.integers(0, n, U))] = True  # >= 1 positive each
    masked &= ~target
    s = scores.masked_fill(masked, float("-inf"))
    auc, w = M.auc_per_user(s, target, ~masked)
    theirs = _recbole_full_sort(s, target, ["gauc"], [10], n)["gauc"]
    assert abs(M.gauc(auc, w) - theirs) < 1e-9


def test_evaluator_equals_recbole_pipeline():
    """End to end: Evaluator.evaluate_scores == RecBole's Collector + Evaluator on the same masked scores."""
    split = random_split(n_users=60, n_items=90, seed=3, no_target_users=0)
    scores = distinct_scores(60, 90, seed=11)
    names = ["recall", "ndcg", "hit", "mrr", "precision", "map"]
    topk = [5, 10, 20]
    ev = Evaluator(split, [f"{m}@{k}" for m in names for k in topk] + ["gauc"]
                   + [f"coverage@{k}" for k in topk] + [f"gini@{k}" for k in topk], batch_size=17)
    ours = ev.evaluate_scores(scores, "test").means
    users = ev.top_k(scores, "test", 1)[0]
    # rebuild the same masked score matrix independently (pandas, no metarec code)
    s = scores[torch.from_numpy(users)].clone()
    row = {u: r for r, u in enumerate(users)}
    known = split.known("test")
    s[[row[u] for u in known.user], known.item.to_numpy()] = float("-inf")
    target = torch.zeros_like(s, dtype=torch.bool)
    target[[row[u] for u in split.test.user], split.test.item.to_numpy()] = True
    theirs = _recbole_full_sort(s, target, names + ["gauc", "itemcoverage", "giniindex"], topk, 90)
    for m in names:
        for k in topk:
            assert abs(ours[f"{m}@{k}"] - theirs[f"{m}@{k}"]) < 1e-9, (m, k)
    assert abs(ours["gauc"] - theirs["gauc"]) < 1e-9
    for k in topk:
        # RecBole counts its padding item 0 among n_items + 1 items; rescale to our n_items
        assert abs(ours[f"coverage@{k}"] - theirs[f"itemcoverage@{k}"] * 91 / 90) < 1e-9
    # RecBole's Gini over n+1 items (one extra zero count): convert ours to that universe for the comparison
    for k in topk:
        counts = M.rec_counts(torch.from_numpy(ev.top_k(scores, "test", k)[1]), 90, k)
        ext = torch.cat([torch.zeros(1, dtype=counts.dtype), counts])
        assert abs(M.gini_from_counts(ext) - theirs[f"giniindex@{k}"]) < 1e-9
        assert abs(M.gini_from_counts(counts) - ours[f"gini@{k}"]) < 1e-12


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("seed", [0, 3])
def test_fused_table_equals_metric_functions(seed, compiled):
    """The table of all metrics at once (compiled on the CPU, torch elsewhere) equals each metric's function; the
    compiled pass sums in the same order as the torch one, so the two are equal to the last bit."""
    pos_index, pos_len = _random_topk(seed)
    hits, n_pos = torch.from_numpy(pos_index), torch.from_numpy(pos_len)
    wanted = [(b, k) for b in M.TOPK_FUNCTIONS for k in (1, 2, 5, 10, 25)]
    table = M.topk_table(hits, n_pos, wanted, compiled=compiled)
    assert set(M.TABLE_CODES) == set(M.TOPK_FUNCTIONS)
    for b, k in wanted:
        np.testing.assert_allclose(table[f"{b}@{k}"].numpy(), M.TOPK_FUNCTIONS[b](hits, n_pos, k).numpy(),
                                   rtol=0, atol=1e-12, err_msg=f"{b}@{k}")
    other = M.topk_table(hits, n_pos, wanted, compiled=not compiled)
    for name in table:
        np.testing.assert_array_equal(table[name].numpy(), other[name].numpy(), err_msg=name)
