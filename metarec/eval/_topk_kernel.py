"""The evaluator's CPU top-K selection, compiled with numba.

Why a compiled loop: on this suite's CPUs a full-catalogue top-K over a batch of users costs ~8 ms in vectorised
numpy/torch (compare, nonzero and sort each touch every score), most of one evaluation. A loop that visits only the
blocks that can hold a top-K item touches about K blocks of each row and needs no temporary arrays.

Selection per row (exact, and the same order as a stable descending sort: equal scores, lower item index first):
1. the maxima of blocks of ``block`` consecutive items (computed while the row is in cache);
2. ``th`` = the K-th largest block maximum (an insertion top-K over the maxima): K distinct blocks reach it, so at
   least K items score >= th and every top-K item does; with fewer than K blocks th = -inf (every item is a
   candidate);
3. the candidates (items >= th, only in blocks whose maximum >= th), gathered in increasing item index without a
   branch per item;
4. an insertion top-K over them: the first K fill the list, later ones enter only when strictly better than the
   K-th, and each new item goes after the equal ones already listed, which is what keeps ties in index order.
Cost is one pass over the row plus ~K blocks, and O(candidates x K) in the worst case (many tied scores), never a
sort.

The evaluator's full-ranking path fuses more into the same loop (``masked_topk_hits``): each row is copied into a
small buffer with the user's known items set to -inf, selected, and its hits looked up, so the score matrix is
neither copied nor masked in place and no [B, n_items] target mask is built (on ml-100k this took the evaluation
from ~8 to ~5 ms, benchmarks/eval_speed.py).

The kernels live in ``_topk_compiled``, imported on first use (importing numba costs ~0.3 s); the first call in a
process compiles once per dtype, and ``cache=True`` keeps the machine code next to that file so later processes
skip that.
"""
from __future__ import annotations

import numpy as np


def topk_by_blocks(scores: np.ndarray, k: int, block: int) -> np.ndarray:
    """Indices [B, k] of each row's k best scores (stable: ties to the lower index). ``scores`` [B, n] float32 or
    float64, C-contiguous, without NaN (the caller checks: the selection assumes a total order); 1 <= k <= n."""
    out = np.empty((scores.shape[0], k), dtype=np.int64)
    _kernels()[0](scores, k, block, out)
    return out


def masked_topk_hits(scores: np.ndarray, rows: np.ndarray, known: tuple[np.ndarray, np.ndarray],
                     target: tuple[np.ndarray, np.ndarray], k: int, block: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The evaluator's fused CPU path for a batch: for each batch row r, the row ``scores[rows[r]]`` with the
    items of ``known`` (CSR over batch rows: indptr, indices) set to -inf in a private copy (``scores`` is only
    read), its top-k by the selection above, and whether each listed item is in ``target`` (CSR over batch rows).
    Returns top [B, k] int64, hits [B, k] float64 and flags [B] int8: 1 = NaN among the unmasked scores (nothing
    else is filled for that row), 2 = two equal scores among the k listed, 4 = fewer than k scored items (the k-th
    is -inf). Rows with a flag need the general path (tie-aware expectation, short lists, the NaN error)."""
    B = len(rows)
    top = np.empty((B, k), dtype=np.int64)
    hits = np.empty((B, k), dtype=np.float64)
    flags = np.zeros(B, dtype=np.int8)
    _kernels()[1](scores, rows, known[0], known[1], target[0], target[1], k, block, top, hits, flags)
    return top, hits, flags


def _kernels():
    from metarec.eval import _topk_compiled as c

    return c.topk_rows, c.masked_topk_rows
