"""The compiled kernels of ``_topk_kernel`` (imported lazily by it: importing numba costs ~0.3 s). Module-level
functions, so that ``cache=True`` can keep their machine code between processes (closures calling closures cannot
be cached)."""
import numba
import numpy as np


#: fast-math flags for a maximum over scores known to hold no NaN: reordering a maximum is exact then, and that
#: lets LLVM vectorise it. Not "ninf": masked scores are -inf.
_NO_NAN = {"nnan", "nsz", "arcp", "contract", "reassoc"}


@numba.njit(cache=True, nogil=True, boundscheck=False, fastmath=_NO_NAN)
def maxima32(row, nfull, bm, lanes):  # pragma: no cover  (compiled; covered through its callers)
    """bm[b] = max(row[32b : 32b + 32]) for the first ``nfull`` whole blocks (the block size the evaluator uses),
    ``row`` without NaN. The two halves of a block are compared lane by lane (16 lanes: one vector instruction on
    AVX-512), then the 16 lanes are reduced: ~2x faster than the scalar chains of the general loop on ml-100k."""
    for b in range(nfull):
        lo = b * 32
        for t in range(16):
            x = row[lo + t]
            y = row[lo + 16 + t]
            lanes[t] = x if x > y else y
        m = lanes[0]
        for t in range(1, 16):
            m = lanes[t] if lanes[t] > m else m
        bm[b] = m


@numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
def select_row(row, k, block, bm, lanes, best, cand, vals, idx):  # pragma: no cover  (compiled; via its callers)
    """Steps 1-4 for one row: vals/idx [k] get its k best scores and their items, best first. ``lanes``: scratch
    [16] of the row's dtype."""
    n = row.shape[0]
    nb = (n + block - 1) // block
    # 1. block maxima, while the row is in cache: blocks of 32 vectorised, any other size (and a partial last
    # block) by four accumulators that break the compare-select chain
    first = 0
    if block == 32:
        first = n // 32
        maxima32(row, first, bm, lanes)
    for b in range(first, nb):
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
    # 2. th: the k-th largest block maximum, by an insertion top-k over the nb maxima (in ``best``)
    if nb >= k:
        for j in range(k):
            v = bm[j]
            p = j
            while p > 0 and best[p - 1] < v:
                best[p] = best[p - 1]
                p -= 1
            best[p] = v
        for j in range(k, nb):
            v = bm[j]
            if v > best[k - 1]:
                p = k - 1
                while p > 0 and best[p - 1] < v:
                    best[p] = best[p - 1]
                    p -= 1
                best[p] = v
        th = best[k - 1]
    else:
        th = -np.inf
    # 3. the candidates, in item order, without a branch per item
    c = 0
    for b in range(nb):
        if bm[b] < th:
            continue
        for j in range(b * block, min(b * block + block, n)):
            cand[c] = j
            c += row[j] >= th
    # 4. insertion top-k over them (strict > past the first k keeps ties in index order)
    m = 0
    for t in range(c):
        j = cand[t]
        v = row[j]
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

@numba.njit(cache=True, nogil=True, boundscheck=False)
def topk_rows(a, k, block, out):  # pragma: no cover  (compiled; covered through topk_by_blocks)
    B, n = a.shape
    bm = np.empty((n + block - 1) // block, a.dtype)
    best, cand = np.empty(k, a.dtype), np.empty(n, np.int64)
    vals, lanes = np.empty(k, a.dtype), np.empty(16, a.dtype)
    idx = np.empty(k, np.int64)
    for r in range(B):
        select_row(a[r], k, block, bm, lanes, best, cand, vals, idx)
        for j in range(k):
            out[r, j] = idx[j]
    return 0

@numba.njit(cache=True, nogil=True, boundscheck=False)
def masked_topk_rows(a, rows, k_ptr, k_idx, t_ptr, t_idx, k, block, top, hits, flags
                     ):  # pragma: no cover  (compiled; covered through masked_topk_hits)
    n = a.shape[1]
    buf = np.empty(n, a.dtype)
    bm = np.empty((n + block - 1) // block, a.dtype)
    best, cand = np.empty(k, a.dtype), np.empty(n, np.int64)
    vals, lanes = np.empty(k, a.dtype), np.empty(16, a.dtype)
    idx = np.empty(k, np.int64)
    mark = np.zeros(n, np.bool_)
    for r in range(rows.shape[0]):
        src = a[rows[r]]
        nan = False
        for j in range(n):   # the row, in cache, with the user's known items masked: the caller's scores stay
            v = src[j]
            nan |= v != v
            buf[j] = v
        for t in range(k_ptr[r], k_ptr[r + 1]):
            buf[k_idx[t]] = -np.inf
        if nan:   # a NaN that masking did not cover?
            nan = False
            for j in range(n):
                nan |= buf[j] != buf[j]
        if nan:   # the selection assumes a total order: the caller handles (and reports) this row
            flags[r] = 1
            continue
        select_row(buf, k, block, bm, lanes, best, cand, vals, idx)
        f = 0
        for j in range(1, k):
            if vals[j] == vals[j - 1]:
                f = 2
        if vals[k - 1] == -np.inf:
            f |= 4
        flags[r] = f
        for t in range(t_ptr[r], t_ptr[r + 1]):
            mark[t_idx[t]] = True
        for j in range(k):
            top[r, j] = idx[j]
            hits[r, j] = 1.0 if mark[idx[j]] else 0.0
        for t in range(t_ptr[r], t_ptr[r + 1]):
            mark[t_idx[t]] = False
    return 0


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def plain_topk_table(h, npos, codes, ks, out):  # pragma: no cover  (compiled; covered through metrics.topk_table)
    """out[u, m] = metric ``codes[m]`` (metrics.TABLE_CODES) at cut-off ``ks[m]`` of user u's 0/1 hits h [B, K],
    each sum taken left to right as ``expected_topk_table`` does (the same floating-point values)."""
    B, K = h.shape
    disc = np.empty(K)
    ideal = np.empty(K)
    acc = 0.0
    for r in range(K):
        disc[r] = 1.0 / np.log2(r + 2.0)
        acc += disc[r]
        ideal[r] = acc
    cum = np.empty(K)
    dcg = np.empty(K)
    rr = np.empty(K)
    ap = np.empty(K)
    for u in range(B):
        c = 0.0
        d = 0.0
        a = 0.0
        first = 0.0
        for r in range(K):
            x = h[u, r]
            c += x
            d += x * disc[r]
            a += x * c / (r + 1.0)
            if first == 0.0 and x > 0.0:
                first = r + 1.0
            cum[r] = c
            dcg[r] = d
            ap[r] = a
            rr[r] = 1.0 / first if first > 0.0 else 0.0
        n = npos[u]
        for m in range(codes.shape[0]):
            k = ks[m]
            code = codes[m]
            if code == 0:      # recall
                v = cum[k - 1] / n
            elif code == 1:    # precision
                v = cum[k - 1] / k
            elif code == 2:    # hit
                v = 1.0 if cum[k - 1] > 0.0 else 0.0
            elif code == 3:    # mrr
                v = rr[k - 1]
            elif code == 4:    # ndcg
                n_ideal = int(min(n, k))
                v = dcg[k - 1] / (ideal[n_ideal - 1] if n_ideal > 0 else 0.0)
            else:              # map
                v = ap[k - 1] / min(n, float(k))
            out[u, m] = v
    return 0
