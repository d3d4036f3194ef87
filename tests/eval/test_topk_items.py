"""Top-K selection and the per-user metric functions, beyond the brute-force comparisons in test_eval_bruteforce.py:
the whole catalogue as K, double precision kept, catalogues that are an exact number of blocks, an empty batch's
type, which path runs, NaN rows counted, cut-offs past the list, users without positives."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from metarec.errors import ConfigError

from metarec.eval import metrics as M


def reference(s: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]


def test_k_may_be_the_whole_catalogue():
    s = torch.rand(3, 7, generator=torch.Generator().manual_seed(0))
    for compiled in (True, False):
        assert torch.equal(M.topk_items(s, 7, compiled=compiled), reference(s, 7))


def test_double_precision_scores_are_ranked_in_double_precision():
    # 1 + 1e-12 and 1 + 2e-12 are one float32 number: converted, their order would fall back to the item ids
    s = torch.tensor([[1.0, 1.0 + 1e-12, 1.0 + 2e-12, 0.5]], dtype=torch.float64)
    for compiled in (True, False):
        assert M.topk_items(s, 3, compiled=compiled).tolist() == [[2, 1, 0]]


def test_a_catalogue_of_whole_blocks_on_the_torch_path():
    # n = 8 blocks of TOPK_BLOCK items exactly (no partial last block), enough blocks for the block-maximum path (>= 2k)
    n, k = 8 * M.TOPK_BLOCK, 3
    g = torch.Generator().manual_seed(1)
    ints = torch.randint(0, 4, (5, n), generator=g)          # integer scores (counts) are ranked as floats
    # float64 too: the compiled loop's vectorised maxima of blocks of 32 are compiled once per dtype
    for s in (torch.rand(5, n, generator=g), ints, ints.float(), torch.rand(5, n, generator=g, dtype=torch.float64)):
        assert torch.equal(M.topk_items(s, k, compiled=False), reference(s, k))
        assert torch.equal(M.topk_items(s, k, compiled=True), reference(s, k))


def test_an_empty_batch_is_an_empty_index_tensor():
    for compiled in (True, False):
        out = M.topk_items(torch.rand(0, 9), 4, compiled=compiled)
        assert out.shape == (0, 4) and out.dtype == torch.long


def test_on_the_cpu_the_compiled_loop_runs_unless_told_otherwise(monkeypatch):
    from metarec.eval import _topk_kernel

    calls = []
    real = _topk_kernel.topk_by_blocks
    monkeypatch.setattr(_topk_kernel, "topk_by_blocks", lambda *a: calls.append(a[1]) or real(*a))
    s = torch.rand(4, 300, generator=torch.Generator().manual_seed(2))
    M.topk_items(s, 5)
    assert calls == [5]
    M.topk_items(s, 6, compiled=False)
    assert calls == [5]
    M.topk_items(s, 7, compiled=True)
    assert calls == [5, 7]


def test_nan_rows_are_counted_on_the_small_catalogue_path():
    s = torch.rand(3, 10)
    s[0, 1] = s[2, 3] = float("nan")
    for compiled in (True, False):
        with pytest.raises(ValueError, match=r"^scores contain NaN in 2 row\(s\)$"):
            M.topk_items(s, 2, compiled=compiled)


def test_a_cut_off_past_the_ranked_positions_is_an_error():
    hits, n_pos = torch.zeros(2, 3), torch.ones(2)
    for fn in M.TOPK_FUNCTIONS.values():
        with pytest.raises(ConfigError, match=r"^cut-off 5 exceeds the 3 ranked positions available$"):
            fn(hits, n_pos, 5)
    for compiled in (True, False):   # the evaluator's table of all of them at once
        with pytest.raises(ConfigError, match=r"^cut-off 5 exceeds the 3 ranked positions available$"):
            M.topk_table(hits, n_pos, [("ndcg", 2), ("recall", 5)], compiled=compiled)


def test_a_user_without_positives_is_undefined_not_zero():
    """recall, NDCG and AP divide by the user's positives: with none the value is NaN (such a user is not evaluated;
    a 0 would pull an average down), while hit, MRR and precision are 0."""
    hits, n_pos = torch.zeros(1, 3), torch.zeros(1)
    for name in ("recall", "ndcg", "map"):
        assert torch.isnan(M.TOPK_FUNCTIONS[name](hits, n_pos, 3)).all(), name
    for name in ("hit", "mrr", "precision"):
        assert M.TOPK_FUNCTIONS[name](hits, n_pos, 3).tolist() == [0.0], name


@pytest.mark.parametrize("compiled", [True, False])
def test_the_table_of_all_metrics_treats_users_without_positives_and_unknown_bases_alike(compiled):
    hits, n_pos = torch.zeros(1, 3), torch.zeros(1)
    table = M.topk_table(hits, n_pos, [("ndcg", 3), ("recall", 3), ("hit", 3), ("map", 3), ("mrr", 3)],
                         compiled=compiled)
    assert all(torch.isnan(table[n]).all() for n in ("ndcg@3", "recall@3", "map@3"))
    assert table["hit@3"].tolist() == [0.0] and table["mrr@3"].tolist() == [0.0]
    with pytest.raises(KeyError, match="'foo'"):
        M.topk_table(hits, torch.ones(1), [("foo", 2)], compiled=compiled)


def brute_auc(scores, positive, valid):
    """AUC of one row by counting pairs: a valid positive above a valid negative 1, tied 0.5."""
    pos = [s for s, p, v in zip(scores, positive, valid) if p and v]
    neg = [s for s, p, v in zip(scores, positive, valid) if not p and v]
    if not pos or not neg:
        return float("nan")
    return sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg) / (len(pos) * len(neg))


def test_auc_without_a_mask_counts_every_item_and_a_single_negative_suffices():
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 4, (5, 7), generator=g).double()          # many ties
    positive = torch.rand(5, 7, generator=g) < 0.4
    positive[0] = torch.tensor([1, 1, 1, 1, 1, 1, 0], dtype=torch.bool)  # exactly one negative
    positive[1] = False                                                  # no positive: NaN
    auc, n_pos = M.auc_per_user(scores, positive)
    want = [brute_auc(scores[u].tolist(), positive[u].tolist(), [True] * 7) for u in range(5)]
    np.testing.assert_allclose(auc.numpy(), want, rtol=0, atol=1e-12)
    assert n_pos.tolist() == positive.sum(1).double().tolist()
    same, _ = M.auc_per_user(scores, positive, torch.ones(5, 7, dtype=torch.bool))
    np.testing.assert_array_equal(auc.numpy(), same.numpy())


def test_gauc_weights_by_positives_and_leaves_undefined_users_out():
    auc = torch.tensor([0.5, float("nan"), 1.0], dtype=torch.float64)
    assert M.gauc(auc, torch.tensor([1, 4, 3])) == pytest.approx((0.5 * 1 + 1.0 * 3) / 4, abs=1e-15)
    assert M.gauc(torch.tensor([0.25]), torch.tensor([1])) == 0.25            # a total weight of one
    assert np.isnan(M.gauc(torch.tensor([float("nan")]), torch.tensor([2])))  # nobody defined


def test_gini_of_counts_down_to_a_single_recommendation():
    assert M.gini_from_counts(torch.tensor([1, 0, 0])) == pytest.approx(2 / 3, abs=1e-15)   # all on one of 3 items
    assert M.gini_from_counts(torch.tensor([2, 2])) == 0.0
    assert np.isnan(M.gini_from_counts(torch.tensor([0, 0])))


def test_counts_cover_the_whole_catalogue_when_padding_is_left_out():
    top = torch.tensor([[0, 1, 3], [1, 0, 2]])
    listed = torch.tensor([[True, True, False], [True, True, False]])
    assert M.rec_counts(top, 6, 3, listed).tolist() == [2, 2, 0, 0, 0, 0]
    assert M.rec_counts(top, 6, 3).tolist() == [2, 2, 1, 1, 0, 0]


def test_reference_vectors_of_the_smallest_matrices():
    one = M.reference_item_vectors(np.array([0]), np.array([1]), 2, 3, dim=64)      # one interaction, rank 1
    assert one.shape == (3, 1) and one[1].abs().item() == pytest.approx(1.0) and one[0].item() == 0.0
    two = M.reference_item_vectors(np.array([0, 1, 1]), np.array([0, 0, 1]), 2, 2, dim=64)   # 2 items: rank 1
    assert two.shape == (2, 1) and torch.allclose(two.abs(), torch.ones(2, 1, dtype=torch.float64))
    assert M.reference_item_vectors(np.array([0]), np.array([0]), 1, 5, dim=64) is None      # one user: no rank 1
    assert M.reference_item_vectors(np.array([], int), np.array([], int), 4, 5, dim=64) is None


def test_self_information_counts_an_unseen_item_as_seen_once():
    info = M.self_information(torch.tensor([1, 3, 0]))
    assert info.tolist() == pytest.approx([2.0, np.log2(4 / 3), 2.0], abs=1e-15)
    assert M.self_information(torch.tensor([1, 0])).tolist() == [0.0, 0.0]     # one training event in all
