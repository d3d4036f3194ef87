"""Top-K selection and the per-user metric functions, beyond the brute-force comparisons in test_eval_bruteforce.py:
the whole catalogue as K, double precision kept, catalogues that are an exact number of blocks, an empty batch's
type, which path runs, NaN rows counted, cut-offs past the list, users without positives."""
from __future__ import annotations

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
    # n = 8 blocks of _BLOCK items exactly (no partial last block), enough blocks for the block-maximum path (>= 2k)
    n, k = 8 * M._BLOCK, 3
    g = torch.Generator().manual_seed(1)
    ints = torch.randint(0, 4, (5, n), generator=g)          # integer scores (counts) are ranked as floats
    for s in (torch.rand(5, n, generator=g), ints, ints.float()):
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
    with pytest.raises(ConfigError, match=r"^cut-off 5 exceeds the 3 ranked positions available$"):
        M.topk_table(hits, n_pos, [("ndcg", 2), ("recall", 5)])     # the evaluator's table of all of them at once


def test_a_user_without_positives_is_undefined_not_zero():
    """recall, NDCG and AP divide by the user's positives: with none the value is NaN (such a user is not evaluated;
    a 0 would pull an average down), while hit, MRR and precision are 0."""
    hits, n_pos = torch.zeros(1, 3), torch.zeros(1)
    for name in ("recall", "ndcg", "map"):
        assert torch.isnan(M.TOPK_FUNCTIONS[name](hits, n_pos, 3)).all(), name
    for name in ("hit", "mrr", "precision"):
        assert M.TOPK_FUNCTIONS[name](hits, n_pos, 3).tolist() == [0.0], name
