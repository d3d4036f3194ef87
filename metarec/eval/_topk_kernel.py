"""The evaluator's CPU top-K selection, compiled with numba.

Why a compiled loop: on this suite's CPUs a full-catalogue top-K over a batch of users costs ~8 ms in vectorised
numpy/torch (compare, nonzero and sort each touch every score), most of one evaluation. A loop that visits only the
blocks that can hold a top-K item touches about K blocks of each row and needs no temporary arrays.

Selection per row (exact, and the same order as a stable descending sort: equal scores, lower item index first):
1. the maxima of blocks of ``block`` consecutive items (computed while the row is in cache);
2. ``th`` = the K-th largest block maximum: K distinct blocks reach it, so at least K items score >= th and every
   top-K item does; with fewer than K blocks th = -inf (every item is a candidate);
3. the candidates (items >= th, only in blocks whose maximum >= th), visited in increasing item index;
4. an insertion top-K over them: the first K fill the list, later ones enter only when strictly better than the
   K-th, and each new item goes after the equal ones already listed, which is what keeps ties in index order.
Cost is one pass over ~K blocks per row plus O(candidates x K) in the worst case (many tied scores), never a sort.

The module imports numba lazily (its import costs ~0.3 s); the first call in a process compiles once per dtype, and
``cache=True`` keeps the machine code next to this file so later processes skip that.
"""
from __future__ import annotations

import numpy as np

_kernel = None


def _build():
    import numba

    @numba.njit(cache=True, nogil=True, boundscheck=False)
    def topk_rows(a, k, block, out):  # pragma: no cover  (compiled; covered through topk_by_blocks)
        B, n = a.shape
        nb = (n + block - 1) // block
        bm = np.empty(nb, a.dtype)
        vals = np.empty(k, a.dtype)
        idx = np.empty(k, np.int64)
        for r in range(B):
            row = a[r]
            # 1. block maxima, while the row is in cache; four accumulators break the compare-select chain
            for b in range(nb):
                lo = b * block
                hi = min(lo + block, n)
                m0, m1, m2, m3 = row[lo], row[min(lo + 1, hi - 1)], row[min(lo + 2, hi - 1)], row[min(lo + 3, hi - 1)]
                j = lo + 4
                while j + 4 <= hi:
                    v0, v1, v2, v3 = row[j], row[j + 1], row[j + 2], row[j + 3]
                    m0 = v0 if v0 > m0 else m0
                    m1 = v1 if v1 > m1 else m1
                    m2 = v2 if v2 > m2 else m2
                    m3 = v3 if v3 > m3 else m3
                    j += 4
                while j < hi:
                    v0 = row[j]
                    m0 = v0 if v0 > m0 else m0
                    j += 1
                m0 = m1 if m1 > m0 else m0
                m2 = m3 if m3 > m2 else m2
                bm[b] = m2 if m2 > m0 else m0
            # 2. th: the k-th largest block maximum, by the same insertion top-k on the nb maxima
            if nb >= k:
                for j in range(k):
                    v = bm[j]
                    p = j
                    while p > 0 and vals[p - 1] < v:
                        vals[p] = vals[p - 1]
                        p -= 1
                    vals[p] = v
                for j in range(k, nb):
                    v = bm[j]
                    if v > vals[k - 1]:
                        p = k - 1
                        while p > 0 and vals[p - 1] < v:
                            vals[p] = vals[p - 1]
                            p -= 1
                        vals[p] = v
                th = vals[k - 1]
            else:
                th = -np.inf
            # 3-4. candidates in item order, insertion top-k (strict > past the first k keeps ties in index order)
            m = 0
            for b in range(nb):
                if bm[b] < th:
                    continue
                hi = min(b * block + block, n)
                for j in range(b * block, hi):
                    v = row[j]
                    if v < th:
                        continue
                    if m < k:
                        p = m
                        m += 1
                    elif v > vals[k - 1]:
                        p = k - 1
                    else:
                        continue
                    while p > 0 and vals[p - 1] < v:
                        vals[p] = vals[p - 1]
                        idx[p] = idx[p - 1]
                        p -= 1
                    vals[p] = v
                    idx[p] = j
            for j in range(k):
                out[r, j] = idx[j]
        return 0

    return topk_rows


def topk_by_blocks(scores: np.ndarray, k: int, block: int) -> np.ndarray:
    """Indices [B, k] of each row's k best scores (stable: ties to the lower index). ``scores`` [B, n] float32 or
    float64, C-contiguous, without NaN (the caller checks: the selection assumes a total order); 1 <= k <= n."""
    global _kernel
    if _kernel is None:
        _kernel = _build()
    out = np.empty((scores.shape[0], k), dtype=np.int64)
    _kernel(scores, k, block, out)
    return out
