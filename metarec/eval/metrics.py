"""Metric definitions: pure, vectorised torch functions, one value per evaluation unit (user or impression).

Top-K accuracy metrics take ``hits`` (bool ``[U, Kmax]``: is the item at rank r a positive?) and ``n_pos``
(``[U]``: the user's number of positives) and return a float64 ``[U]`` vector. Each is defined exactly as RecBole
1.2.1 (``recbole/evaluator/metrics.py``) defines it, so means agree with RecBole to rounding:

    hit@K        1 if any positive is in the top K
    mrr@K        1 / rank of the first positive in the top K (0 if none)
    precision@K  (#positives in top K) / K
    recall@K     (#positives in top K) / n_pos
    ndcg@K       DCG@K / IDCG, binary gains, discount 1/log2(rank+1), IDCG over min(n_pos, K) positives
    map@K        sum_{r<=K} hit_r * precision@r / min(n_pos, K)     (RecBole's normalisation)

AUC (per user) is over the user's unmasked items: positives against every other unmasked item, ties 0.5. GAUC is
RecBole's: per-user AUC weighted by the user's number of positives, users with no positive or no negative left out.

Impression metrics follow the MIND evaluation script (one value per impression): AUC (sklearn's roc_auc_score,
ties 0.5), MRR = sum(label / rank) / sum(label), nDCG@K = DCG@K / ideal DCG@K of the candidate labels.

Beyond accuracy (from the top-K lists): coverage@K = distinct recommended items / n_items; gini@K = Gini index of
the recommendation counts over all items (RecBole's GiniIndex); novelty@K = mean over the list of
-log2(train popularity share), an item unseen in train counting as seen once; diversity@K = mean pairwise Jaccard
distance of the items' category sets (two items both without categories are at distance 0).

Top-K lists come from ``topk_items``: exact, ties to the lower item id (a stable descending sort), faster than
``torch.topk`` on CPU. The evaluator's default (``ties="expected"``) does not trust that order: every top-K metric
is its expectation over all orders of the tied items (``tie_runs``, ``expected_topk_table``; McSherry & Najork
2008), computed exactly. That holds for hit/mrr/precision/recall/ndcg/map, novelty, diversity (through the items'
category signatures) and coverage (E[#items in some list], each user's ties ordered independently); gini@K is the
Gini index of the *expected* recommendation counts (the expectation of a Gini index has no closed form).

Names are ``base@K`` (``ndcg@10``) or ``base`` (``auc``, ``gauc``, ``mae``, ``rmse``); what each name means, its
direction and where it is allowed are declared once in ``metarec.eval.registry``; ``parse_metric`` validates.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import torch

from metarec.errors import ConfigError, UnknownNameError

F64 = torch.float64

# ---- names (everything about a metric's name comes from metarec.eval.registry) ---------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    name: str  # canonical: 'ndcg@10', 'auc'
    base: str  # 'ndcg'
    k: int | None

    @property
    def definition(self):
        from metarec.eval import registry

        return registry.get(self.base)

    @property
    def per_unit(self) -> bool:
        return self.definition.per_unit

    @property
    def is_topk(self) -> bool:
        return self.k is not None


def valid_metric_names(kind: str | None = None) -> list[str]:
    from metarec.eval import registry

    out = []
    for b in registry.requestable(kind):
        rules = set(registry.get(b).protocols.values()) if kind is None else {registry.get(b).protocols[kind]}
        out += ([f"{b}@K"] if "k" in rules else []) + ([b] if "none" in rules else [])
    return sorted(out)


def parse_metric(name: str, kind: str | None = None) -> MetricSpec:
    """Validate one metric name against the registry, under a protocol kind ('ranking', 'impressions') or any.
    Unknown base -> UnknownNameError; a cut-off the protocol does not allow, or a bad one -> ConfigError."""
    from metarec.eval import registry

    if not isinstance(name, str):
        raise ConfigError(f"metric names are strings like 'ndcg@10', got {name!r}")
    text = name.strip().lower()
    base, at, kpart = text.partition("@")   # a cut-off is whatever follows the first '@' (checked below)
    d = registry.get(base)
    if d is None or not d.protocols:
        raise UnknownNameError("metric", name, valid_metric_names(kind))
    if kind is not None and kind not in d.protocols:
        raise ConfigError(f"metric {name!r} is not defined for the {kind} protocols; valid: "
                          f"{', '.join(valid_metric_names(kind))}")
    rules = {d.protocols[kind]} if kind is not None else set(d.protocols.values())
    if not at:
        if "none" in rules:
            return MetricSpec(base, base, None)
        where = f" under the {kind} protocols" if kind else ""
        raise ConfigError(f"metric {name!r} needs a cut-off{where}, e.g. '{base}@10'")
    if "k" not in rules:
        raise ConfigError(f"metric {base!r} takes no cut-off (got {name!r}); write '{base}'")
    if not re.fullmatch(r"[0-9]+", kpart) or int(kpart) < 1:
        raise ConfigError(f"metric {name!r}: the cut-off K must be a positive integer, got {kpart!r}")
    k = int(kpart)
    if k < d.min_k:
        raise ConfigError(f"metric {name!r}: {base} needs K >= {d.min_k}")
    return MetricSpec(f"{base}@{k}", base, k)


def parse_metrics(names, kind: str | None = None) -> list[MetricSpec]:
    """Validate a list of names (a single string is one name); duplicates are dropped, order kept."""
    if isinstance(names, str):
        names = [names]
    if not names:
        raise ConfigError("no metrics requested")
    out, seen = [], set()
    for n in names:
        spec = parse_metric(n, kind)
        if spec.name not in seen:
            seen.add(spec.name)
            out.append(spec)
    return out


# ---- top-K selection ------------------------------------------------------------------------------------------------
TOPK_BLOCK = 32


def topk_items(scores: torch.Tensor, k: int, compiled: bool | None = None) -> torch.Tensor:
    """Indices [B, k] of each row's k highest scores, best first. Ties go to the lower item index (the first k of
    a stable descending sort), so the lists depend on the scores alone, not on a kernel's tie order.

    Exact, and faster than ``torch.topk``: block maxima give each row a threshold that at least k items reach, and
    only items in blocks reaching it are looked at (on CPU by a compiled loop, ``_topk_kernel``; on other devices by
    sorting the candidates in torch). ``compiled``: force one path (default: the compiled loop on CPU; the tests
    run the torch path on CPU too). Raises ValueError if a row holds NaN.
    """
    B, n = scores.shape
    if not 1 <= k <= n:
        raise ConfigError(f"cut-off {k} must be in 1..{n} (the number of items)")
    if B == 0:
        return torch.zeros((0, k), dtype=torch.long, device=scores.device)
    s = scores if scores.dtype in (torch.float32, torch.float64) else scores.float()
    s = s.contiguous()
    if compiled is None:
        compiled = s.device.type == "cpu"
    if compiled:
        a = s.numpy()
        if np.isnan(a).any():
            raise ValueError(f"scores contain NaN in {int(np.isnan(a).any(1).sum())} row(s)")
        from metarec.eval._topk_kernel import topk_by_blocks

        return torch.from_numpy(topk_by_blocks(a, k, TOPK_BLOCK))
    nb = n // TOPK_BLOCK
    if nb < 2 * k:  # small catalogues: sorting everything is cheap
        return _stable_sort_topk(s, k)
    bm = s[:, :nb * TOPK_BLOCK].view(B, nb, TOPK_BLOCK).amax(2)  # amax propagates NaN
    if nb * TOPK_BLOCK < n:
        bm = torch.cat([bm, s[:, nb * TOPK_BLOCK:].amax(1, keepdim=True)], 1)
    if torch.isnan(bm).any():
        raise ValueError(f"scores contain NaN in {int(torch.isnan(bm).any(1).sum())} row(s)")
    return _topk_candidates_torch(s, bm, k)


def _topk_candidates_torch(s: torch.Tensor, bm: torch.Tensor, k: int) -> torch.Tensor:
    # threshold: the k-th largest block maximum; k distinct blocks reach it, so >= k items are >= it
    B, n = s.shape
    th = torch.topk(bm, k, dim=1).values[:, -1:]
    mask = s >= th
    cnt = mask.sum(1)
    C = int(cnt.max())
    if C > n // 2:
        return _stable_sort_topk(s, k)
    rows, cols = mask.nonzero(as_tuple=True)
    pos = torch.arange(rows.numel(), device=s.device) - (torch.cumsum(cnt, 0) - cnt)[rows]
    vals = torch.full((B, C), float("-inf"), dtype=s.dtype, device=s.device)
    idx = torch.zeros((B, C), dtype=torch.long, device=s.device)
    vals[rows, pos] = s[rows, cols]
    idx[rows, pos] = cols
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices[:, :k]
    return torch.gather(idx, 1, order)


def _stable_sort_topk(s: torch.Tensor, k: int) -> torch.Tensor:
    if torch.isnan(s).any():
        raise ValueError(f"scores contain NaN in {int(torch.isnan(s).any(1).sum())} row(s)")
    return torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]


# ---- top-K accuracy (RecBole definitions) ---------------------------------------------------------------------------
def _head(hits: torch.Tensor, k: int) -> torch.Tensor:
    if k > hits.shape[1]:
        raise ConfigError(f"cut-off {k} exceeds the {hits.shape[1]} ranked positions available")
    return hits[:, :k].to(F64)


def _discounts(k: int, device=None) -> torch.Tensor:
    return 1.0 / torch.log2(torch.arange(2, k + 2, dtype=F64, device=device))


def hit(hits: torch.Tensor, n_pos: torch.Tensor, k: int) -> torch.Tensor:
    return (_head(hits, k).sum(1) > 0).to(F64)


def mrr(hits: torch.Tensor, n_pos: torch.Tensor, k: int) -> torch.Tensor:
    h = _head(hits, k)
    first = h.argmax(1)  # first maximum = first hit, if any
    rr = 1.0 / (first.to(F64) + 1.0)
    return torch.where(h.sum(1) > 0, rr, torch.zeros_like(rr))


def precision(hits: torch.Tensor, n_pos: torch.Tensor, k: int) -> torch.Tensor:
    return _head(hits, k).sum(1) / k


def recall(hits: torch.Tensor, n_pos: torch.Tensor, k: int) -> torch.Tensor:
    return _head(hits, k).sum(1) / n_pos.to(F64)


def ndcg(hits: torch.Tensor, n_pos: torch.Tensor, k: int) -> torch.Tensor:
    h = _head(hits, k)
    disc = _discounts(k, h.device)
    dcg = (h * disc).sum(1)
    ideal_table = torch.cumsum(disc, 0)
    n_ideal = torch.clamp(n_pos.long(), max=k)
    idcg = torch.where(n_ideal > 0, ideal_table[torch.clamp(n_ideal - 1, min=0)], torch.zeros_like(dcg))
    return dcg / idcg


def map_(hits: torch.Tensor, n_pos: torch.Tensor, k: int) -> torch.Tensor:
    h = _head(hits, k)
    prec_at = torch.cumsum(h, 1) / torch.arange(1, k + 1, dtype=F64, device=h.device)
    denom = torch.clamp(n_pos.to(F64), max=float(k))
    return (prec_at * h).sum(1) / denom


TOPK_FUNCTIONS = {"recall": recall, "ndcg": ndcg, "hit": hit, "mrr": mrr, "precision": precision, "map": map_}


#: the bases ``topk_table``'s compiled pass computes, by its code (``_topk_compiled.plain_topk_table``)
TABLE_CODES = {"recall": 0, "precision": 1, "hit": 2, "mrr": 3, "ndcg": 4, "map": 5}


def topk_table(hits: torch.Tensor, n_pos: torch.Tensor, wanted, compiled: bool | None = None
               ) -> dict[str, torch.Tensor]:
    """All requested (base, k) top-K accuracy metrics at once from 0/1 hits [U, K], sharing the cumulative sums:
    the evaluator's hot path (``expected_topk_table`` of lists without ties). Same definitions as the per-metric
    functions above (tests hold the two equal). On the CPU (``compiled`` None) one compiled pass over the users
    computes every metric: the torch version costs ~0.6 ms of small-tensor calls per ml-100k evaluation, a third of
    what is not the top-K selection itself; its sums run in the same order, so the values are the same."""
    K = hits.shape[1]
    for base, k in wanted:
        if k > K:
            raise ConfigError(f"cut-off {k} exceeds the {K} ranked positions available")
    if compiled is None:
        compiled = hits.device.type == "cpu"
    if not compiled:
        return expected_topk_table(TieRuns.from_hits(hits), n_pos, wanted)
    table = torch.from_numpy(topk_table_array(hits, n_pos, wanted))
    return {f"{b}@{k}": table[:, m] for m, (b, k) in enumerate(wanted)}


def topk_table_array(hits: torch.Tensor, n_pos: torch.Tensor, wanted) -> np.ndarray:
    """``topk_table`` on the CPU as one float64 array [U, len(wanted)], columns in ``wanted``'s order (the
    evaluator's per-user table takes it as it is). Cut-offs are the caller's to check."""
    from metarec.eval._topk_compiled import plain_topk_table

    codes, ks = _table_codes(tuple(wanted))
    out = np.empty((hits.shape[0], len(codes)), dtype=np.float64)
    plain_topk_table(np.ascontiguousarray(hits.to(F64).numpy()), np.ascontiguousarray(n_pos.to(F64).numpy()),
                     codes, ks, out)
    return out


@functools.lru_cache(maxsize=64)
def _table_codes(wanted: tuple) -> tuple[np.ndarray, np.ndarray]:
    """The compiled pass's metric codes and cut-offs for ``wanted`` (shared between calls: never written)."""
    codes = np.array([TABLE_CODES[b] for b, _ in wanted], dtype=np.int64)   # an unknown base: KeyError, as torch's
    ks = np.array([k for _, k in wanted], dtype=np.int64)
    return codes, ks


# ---- tie-aware top-K (McSherry & Najork 2008) ---------------------------------------------------------------------
@dataclass
class TieRuns:
    """What the top-K metrics need from one batch of ranked lists, as expectations over every random order of tied
    scores (McSherry & Najork, "Computing information retrieval performance measures efficiently in the presence of
    tied scores", ECIR 2008), exact, not sampled.

    Positions ``r = 1..K`` of the stable top-K list fall into *runs* of equal score. A run wholly inside the list
    holds exactly the items listed there; the run at the cut-off may go on past K: ``n`` counts all its unmasked
    items, ``p`` its positives. Under a uniformly random order within each run, the item at any position of a run
    is a positive with probability p/n, independently of the other runs. Per position (all float64 ``[B, K]``):

    - ``soft``: E[hit_r] = p/n (precision, recall and DCG are linear in the hits);
    - ``none``: P(no positive in positions 1..r), a product over the runs (a run wholly inside the list with a
      positive makes it 0): E[hit@k] = 1 - none_k, and P(first positive at r) = none_{r-1} - none_r (MRR);
    - ``hit_cum``: E[hit_r * hits in 1..r] = (p/n)(1 + positives of the earlier runs) + j p(p-1)/(n(n-1)) at
      offset j of its run (AP's precision-at-hit terms);
    - ``run_start``, ``run_n``: each position's run (first position, 0-based; full size), for list metrics.

    With no ties every run has one item and these reduce to the plain hits (``from_hits``).
    """

    soft: torch.Tensor
    none: torch.Tensor
    hit_cum: torch.Tensor
    run_start: torch.Tensor | None = None
    run_n: torch.Tensor | None = None
    run_id: torch.Tensor | None = None

    @classmethod
    def from_hits(cls, hits: torch.Tensor) -> "TieRuns":
        """Lists without ties: every position is its own run."""
        h = hits.to(F64)
        B, K = h.shape
        pos = torch.arange(K, device=h.device).expand(B, K)
        return cls(soft=h, none=torch.cumprod(1.0 - h, 1), hit_cum=h * torch.cumsum(h, 1), run_start=pos,
                   run_n=torch.ones_like(h), run_id=pos)


def tie_runs(top_scores: torch.Tensor, top_hits: torch.Tensor, n_last: torch.Tensor, p_last: torch.Tensor
             ) -> TieRuns:
    """``TieRuns`` of stable top-K lists: ``top_scores``/``top_hits`` [B, K] (scores and 0/1 positives in list
    order), ``n_last``/``p_last`` [B]: the number of unmasked items and of positives whose score equals the K-th
    score (the run at the cut-off, counted over the whole catalogue)."""
    B, K = top_scores.shape
    dev = top_scores.device
    h = top_hits.to(F64)
    pos = torch.arange(K, device=dev)
    new = torch.ones((B, K), dtype=torch.bool, device=dev)
    new[:, 1:] = top_scores[:, 1:] != top_scores[:, :-1]
    start = torch.cummax(torch.where(new, pos, torch.zeros_like(pos)), 1).values   # first position of the run
    run_id = torch.cumsum(new.long(), 1) - 1
    n_in = torch.zeros((B, K), dtype=F64, device=dev).scatter_add_(1, run_id, torch.ones_like(h))
    p_in = torch.zeros((B, K), dtype=F64, device=dev).scatter_add_(1, run_id, h)
    n = torch.gather(n_in, 1, run_id)
    p = torch.gather(p_in, 1, run_id)
    last = run_id == run_id[:, -1:]              # the run at the cut-off: counted over the whole row
    n = torch.where(last, n_last.to(F64)[:, None].expand(B, K), n)
    p = torch.where(last, p_last.to(F64)[:, None].expand(B, K), p)
    j = (pos[None, :] - start).to(F64)
    soft = p / n
    none = torch.cumprod(((n - p - j) / (n - j)).clamp(min=0.0), 1)
    cum_excl = torch.cumsum(h, 1) - h            # positives before each position in the stable list
    before = torch.gather(cum_excl, 1, start)    # ... before its run: the earlier runs' positives (order-free)
    pair = torch.where(n > 1, p * (p - 1) / (n * (n - 1)).clamp(min=1.0), torch.zeros_like(n))
    hit_cum = soft * (1.0 + before) + j * pair
    return TieRuns(soft=soft, none=none, hit_cum=hit_cum, run_start=start, run_n=n, run_id=run_id)


def inclusion(runs: TieRuns, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities that an item is among the first ``k`` of the list, over random tie orders: (per list position
    [B, K], for items of the runs inside the list; for every item of the run at the cut-off [B]). A run wholly in the
    first k positions: 1; the run straddling position k with m of its n items above the cut: m/n; later runs: 0."""
    start, n = runs.run_start.to(F64), runs.run_n
    p = ((k - start).clamp(min=0.0) / n).clamp(max=1.0)
    return p, p[:, -1]


def run_means(runs: TieRuns, values: torch.Tensor, last_mean: torch.Tensor) -> torch.Tensor:
    """Per position, the mean of ``values`` [B, K] (an item property at each list position) over its run's items:
    the expected value at that position over tie orders. The run at the cut-off averages over all its items,
    inside the list or not (``last_mean`` [B], computed by the caller over the whole row)."""
    B, K = values.shape
    v = values.to(F64)
    sums = torch.zeros((B, K), dtype=F64, device=v.device).scatter_add_(1, runs.run_id, v)
    cnt = torch.zeros((B, K), dtype=F64, device=v.device).scatter_add_(1, runs.run_id, torch.ones_like(v))
    mean = torch.gather(sums / cnt.clamp(min=1.0), 1, runs.run_id)
    last = runs.run_id == runs.run_id[:, -1:]
    return torch.where(last, last_mean.to(F64)[:, None].expand(B, K), mean)


def _straddle(runs: TieRuns, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For the first ``k`` positions of tie-aware lists: ``whole`` [B, K] (positions whose run lies wholly in the
    first k), ``strad`` [B, K] (positions of the run that straddles k, on either side of it) and ``m`` [B] (how many
    of that run's items fall in the first k; 0 where no run straddles)."""
    B, K = runs.soft.shape
    p, _ = inclusion(runs, k)
    head = torch.arange(K, device=p.device)[None, :] < k
    whole = (p >= 1.0) & head
    strad = (p < 1.0) & (p > 0.0)
    m = torch.where(strad.any(1), (k - torch.where(strad, runs.run_start, K).amin(1)).to(F64),
                    torch.zeros(B, dtype=F64, device=p.device))
    return whole, strad, m


def _expected_pairs(pair_d, cross, within, n_g, m_g, k: int) -> torch.Tensor:
    """Intra-list diversity from the pair-similarity sums of D (positions surely in the first k) and G (the straddling
    run, m_g of its n_g items above the cut): E[sum] = D pairs + (m/n) D x G + m(m-1)/(n(n-1)) G pairs."""
    pg = torch.where(n_g > 0, m_g / n_g.clamp(min=1.0), torch.zeros_like(n_g))
    pgg = torch.where(n_g > 1, m_g * (m_g - 1) / (n_g * (n_g - 1)).clamp(min=1.0), torch.zeros_like(n_g))
    return 1.0 - (pair_d + pg * cross + pgg * within) / (k * (k - 1) / 2.0)


def expected_diversity(runs: TieRuns, sig: torch.Tensor, sim: torch.Tensor, last_counts: torch.Tensor, k: int
                       ) -> torch.Tensor:
    """E[intra-list diversity of the first ``k``] over tie orders, exactly, by item categories. Items are
    represented by their category signature (``sig`` [B, K]: the signature of the item at each position; ``sim``
    [S, S]: Jaccard similarity of signatures, 1 on the diagonal; ``last_counts`` [B, S]: signature counts of the run
    at the cut-off over the whole row); the pair sums combine as in ``_expected_pairs``."""
    B, K = sig.shape
    S = sim.shape[0]
    dev = sig.device
    whole, strad, m_g = _straddle(runs, k)
    S_pos = sim[sig]                                               # [B, K, S]: similarity of each position to signatures
    onehot_d = torch.zeros((B, S), dtype=F64, device=dev).scatter_add_(1, sig, whole.to(F64))
    pair_d = ((S_pos * onehot_d[:, None, :]).sum(2) * whole).sum(1)   # ordered pairs incl. self, within D
    pair_d = (pair_d - whole.sum(1).to(F64)) / 2.0                    # unordered, distinct
    # signature counts of the straddling run: the list positions of an inner run, or the whole run at the cut-off
    cnt_g = torch.zeros((B, S), dtype=F64, device=dev).scatter_add_(1, sig, strad.to(F64))
    cnt_g = torch.where(strad[:, -1:], last_counts.to(F64), cnt_g)
    n_g = cnt_g.sum(1)
    cross = ((S_pos * cnt_g[:, None, :]).sum(2) * whole).sum(1)       # sum over D x G
    within = (((cnt_g @ sim) * cnt_g).sum(1) - n_g) / 2.0             # distinct unordered pairs of G
    return _expected_pairs(pair_d, cross, within, n_g, m_g, k)


def expected_vector_diversity(runs: TieRuns, vec: torch.Tensor, last_sum: torch.Tensor, last_n: torch.Tensor,
                              last_sq: torch.Tensor, k: int) -> torch.Tensor:
    """E[intra-list diversity of the first ``k``] over tie orders, exactly, by item vectors (similarity = inner
    product of unit or zero vectors). ``vec`` [B, K, d]: the vector of the item at each position; ``last_sum`` [B, d],
    ``last_n`` [B], ``last_sq`` [B]: the sum of vectors, number of items and sum of squared norms of the run at the
    cut-off over the whole row. Pair sums come from vector sums: sum over pairs of a set = (|sum|^2 - sum |v|^2) / 2."""
    whole, strad, m_g = _straddle(runs, k)
    sq = (vec * vec).sum(2)
    w, g = whole.to(F64), strad.to(F64)
    sum_d = (vec * w[:, :, None]).sum(1)
    pair_d = ((sum_d * sum_d).sum(1) - (sq * w).sum(1)) / 2.0
    at_last = strad[:, -1]          # the straddling run is the run at the cut-off: counted over the whole row
    sum_g = torch.where(at_last[:, None], last_sum.to(F64), (vec * g[:, :, None]).sum(1))
    sq_g = torch.where(at_last, last_sq.to(F64), (sq * g).sum(1))
    n_g = torch.where(at_last, last_n.to(F64), g.sum(1))
    cross = (sum_d * sum_g).sum(1)
    within = ((sum_g * sum_g).sum(1) - sq_g) / 2.0
    return _expected_pairs(pair_d, cross, within, n_g, m_g, k)


def expected_topk_table(runs: TieRuns, n_pos: torch.Tensor, wanted) -> dict[str, torch.Tensor]:
    """The top-K accuracy metrics (RecBole's definitions) as expectations over tie orders; with ``TieRuns.from_hits``
    exactly ``topk_table``'s values."""
    soft = runs.soft
    K = soft.shape[1]
    npos = n_pos.to(F64)
    ranks = torch.arange(1, K + 1, dtype=F64, device=soft.device)
    bases = {b for b, _ in wanted}
    cum = torch.cumsum(soft, 1)
    out: dict[str, torch.Tensor] = {}
    if "ndcg" in bases:
        disc = 1.0 / torch.log2(ranks + 1.0)
        dcg = torch.cumsum(soft * disc, 1)
        ideal = torch.cumsum(disc, 0)
    if "mrr" in bases:
        prev = torch.cat([torch.ones_like(runs.none[:, :1]), runs.none[:, :-1]], 1)
        rr = torch.cumsum((prev - runs.none) / ranks, 1)
    if "map" in bases:
        ap = torch.cumsum(runs.hit_cum / ranks, 1)
    for base, k in wanted:
        if k > K:
            raise ConfigError(f"cut-off {k} exceeds the {K} ranked positions available")
        if base == "recall":
            v = cum[:, k - 1] / npos
        elif base == "precision":
            v = cum[:, k - 1] / k
        elif base == "hit":
            v = 1.0 - runs.none[:, k - 1]
        elif base == "mrr":
            v = rr[:, k - 1]
        elif base == "ndcg":
            n_ideal = torch.clamp(npos, max=float(k)).long()
            idcg = torch.where(n_ideal > 0, ideal[torch.clamp(n_ideal - 1, min=0)], torch.zeros_like(npos))
            v = dcg[:, k - 1] / idcg
        elif base == "map":
            v = ap[:, k - 1] / torch.clamp(npos, max=float(k))
        else:
            raise KeyError(base)
        out[f"{base}@{k}"] = v
    return out


# ---- AUC / GAUC over a full ranking ---------------------------------------------------------------------------------
def auc_per_user(scores: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row AUC of ``scores`` [U, n]: ``positive`` items against every other ``valid`` item, ties 0.5.

    ``valid`` (bool [U, n], default all) marks the items that take part (not masked); masked items are ignored
    whatever their score. Returns (auc [U] float64, NaN where a row has no valid positive or no valid negative;
    n_pos [U] = number of valid positives, the GAUC weight).
    """
    U, n = scores.shape
    if valid is None:
        valid = torch.ones_like(positive, dtype=torch.bool)
    positive = positive & valid
    # order each row by (valid first, then score descending); stable sorts keep this deterministic
    o1 = torch.sort(scores, dim=1, descending=True, stable=True).indices
    v1 = torch.gather(valid, 1, o1)
    o2 = torch.sort((~v1).to(torch.int8), dim=1, stable=True).indices
    order = torch.gather(o1, 1, o2)
    s = torch.gather(scores, 1, order)
    v = torch.gather(valid, 1, order)
    p = torch.gather(positive, 1, order)
    # runs of equal (valid, score) within a row -> average descending rank of each run
    new = torch.ones_like(v)
    new[:, 1:] = (s[:, 1:] != s[:, :-1]) | (v[:, 1:] != v[:, :-1])
    flat_new = new.reshape(-1)
    starts = torch.nonzero(flat_new).squeeze(1)
    ends = torch.cat([starts[1:], torch.tensor([U * n], device=starts.device)]) - 1
    run_id = torch.cumsum(flat_new.long(), 0) - 1
    row_off = (torch.arange(U, device=scores.device) * n).repeat_interleave(n)
    avg_rank = ((starts + ends).to(F64) / 2.0)[run_id] - row_off.to(F64) + 1.0  # 1-based, descending
    avg_rank = avg_rank.reshape(U, n)
    pos_rank_sum = torch.where(p, avg_rank, torch.zeros_like(avg_rank)).sum(1)
    n_valid = v.sum(1).to(F64)
    n_pos = p.sum(1).to(F64)
    n_neg = n_valid - n_pos
    # RecBole's GAUC formula (descending ranks): ((n+1)P - P(P+1)/2 - sum r) / (P N)
    pairs = (n_valid + 1.0) * n_pos - n_pos * (n_pos + 1.0) / 2.0 - pos_rank_sum
    auc = pairs / (n_pos * n_neg)
    auc = torch.where((n_pos > 0) & (n_neg > 0), auc, torch.full_like(auc, float("nan")))
    return auc, n_pos


def gauc(auc: torch.Tensor, n_pos: torch.Tensor) -> float:
    """RecBole's GAUC: per-user AUC weighted by the number of positives; users without AUC (NaN) left out."""
    keep = ~torch.isnan(auc)
    w = n_pos.to(F64)[keep]
    if w.sum() == 0:
        return float("nan")
    return float((auc.to(F64)[keep] * w).sum() / w.sum())


# ---- ratings --------------------------------------------------------------------------------------------------------
def mae(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float((pred.to(F64) - true.to(F64)).abs().mean())


def rmse(pred: torch.Tensor, true: torch.Tensor) -> float:
    return float(torch.sqrt(((pred.to(F64) - true.to(F64)) ** 2).mean()))


# ---- beyond accuracy ------------------------------------------------------------------------------------------------
def rec_counts(top_items: torch.Tensor, n_items: int, k: int, listed: torch.Tensor | None = None) -> torch.Tensor:
    """How often each item appears in the top-K lists: int64 [n_items] (sum these over batches). ``listed`` [U, >=k]
    bool: False at padding positions (a user with fewer than K rankable items), which are not recommendations."""
    if listed is None:
        return torch.bincount(top_items[:, :k].reshape(-1), minlength=n_items)
    return torch.bincount(top_items[:, :k][listed[:, :k]], minlength=n_items)


def coverage_from_counts(counts: torch.Tensor) -> float:
    return float((counts > 0).sum()) / counts.numel()


def gini_from_counts(counts: torch.Tensor) -> float:
    """Gini index of recommendation counts over all items (zeros included), as RecBole's GiniIndex."""
    x = torch.sort(counts.to(F64)).values
    n = x.numel()
    total = x.sum()
    if total == 0:
        return float("nan")
    i = torch.arange(1, n + 1, dtype=F64, device=x.device)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def self_information(train_counts: torch.Tensor) -> torch.Tensor:
    """-log2(popularity share) per item; an item never seen in train counts as seen once (finite novelty)."""
    c = torch.clamp(train_counts.to(F64), min=1.0)
    total = train_counts.to(F64).sum().clamp(min=1.0)
    return -torch.log2(c / total)


def novelty(top_items: torch.Tensor, info: torch.Tensor, k: int, listed: torch.Tensor | None = None
            ) -> torch.Tensor:
    """Per-user mean self-information (``self_information(train_counts)``) of the top-K items. With ``listed``
    (see ``rec_counts``) the mean runs over the listed items only (NaN for a user with none)."""
    v = info[top_items[:, :k]].to(F64)
    if listed is None:
        return v.mean(1)
    w = listed[:, :k].to(F64)
    return (v * w).sum(1) / w.sum(1)   # 0/0 = NaN: nothing rankable, novelty undefined


def category_signatures(categories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(signature per item [n_items], Jaccard similarity of the signatures [S, S]): items with the same category
    set share a signature; two empty sets count as identical (similarity 1), as ``diversity`` treats them."""
    uniq, sig = torch.unique(categories.to(torch.int8), dim=0, return_inverse=True)
    u = uniq.to(F64)
    inter = u @ u.T
    size = u.sum(1)
    union = size[:, None] + size[None, :] - inter
    return sig, torch.where(union > 0, inter / union.clamp(min=1e-300), torch.ones_like(inter))


def _pair_mean(dist: torch.Tensor, listed: torch.Tensor | None, k: int) -> torch.Tensor:
    """Mean over the pairs i < j of the first k positions of ``dist`` [U, k, k]; with ``listed``, over the pairs of
    listed items only (NaN for a user with fewer than two)."""
    iu = torch.triu_indices(k, k, offset=1, device=dist.device)
    d = dist[:, iu[0], iu[1]]
    if listed is None:
        return d.mean(1)
    w = (listed[:, :k, None] & listed[:, None, :k])[:, iu[0], iu[1]].to(F64)
    return (d * w).sum(1) / w.sum(1)


def diversity(top_items: torch.Tensor, categories: torch.Tensor, k: int, listed: torch.Tensor | None = None
              ) -> torch.Tensor:
    """Per-user intra-list diversity: mean pairwise Jaccard distance of the top-K items' category sets.

    ``categories`` is a bool/0-1 matrix [n_items, n_categories]; ``listed``: see ``rec_counts``.
    """
    c = categories.to(F64)[top_items[:, :k]]  # [U, k, G]
    inter = torch.bmm(c, c.transpose(1, 2))
    size = c.sum(2)
    union = size[:, :, None] + size[:, None, :] - inter
    sim = torch.where(union > 0, inter / union.clamp(min=1e-300), torch.ones_like(inter))
    return _pair_mean(1.0 - sim, listed, k)


def vector_diversity(top_items: torch.Tensor, vectors: torch.Tensor, k: int, listed: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """Per-user intra-list diversity by item vectors: mean pairwise cosine distance of the top-K items (``vectors``
    [n_items, d] unit rows, or zero rows for items without a vector, whose similarity to any item is 0);
    ``listed``: see ``rec_counts``."""
    v = vectors.to(F64)[top_items[:, :k]]      # [U, k, d]
    if listed is not None:
        return _pair_mean(1.0 - torch.bmm(v, v.transpose(1, 2)), listed, k)
    total = v.sum(1)                            # all pairs at once: (|sum|^2 - sum |v|^2) / 2
    pairs = ((total * total).sum(1) - (v * v).sum((1, 2))) / 2.0
    return 1.0 - pairs / (k * (k - 1) / 2.0)


def reference_item_vectors(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, dim: int = 64
                           ) -> torch.Tensor | None:
    """The fixed reference model behind vector diversity: item factors of a rank-``dim`` truncated SVD of the binary
    training matrix (scaled by the singular values, then normalised to unit length), so two items are similar when
    the same users interacted with them. Deterministic for a given split (ARPACK from a fixed start vector; a
    component's sign does not change inner products) and the same for every method scored on it. Items without
    training interactions get a zero vector. None if the matrix is too small for a rank-1 factorisation."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import svds

    r = min(int(dim), min(n_users, n_items) - 1)
    if r < 1 or len(users) == 0:
        return None
    codes = np.unique(users.astype(np.int64) * n_items + items.astype(np.int64))
    x = csr_matrix((np.ones(len(codes)), (codes // n_items, codes % n_items)), shape=(n_users, n_items))
    v0 = np.full(min(n_users, n_items), 1.0 / np.sqrt(min(n_users, n_items)))
    _, sv, vt = svds(x, k=r, v0=v0, solver="arpack")
    vec = vt.T * sv[None, :]
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    return torch.from_numpy(np.where(norm > 1e-12, vec / np.maximum(norm, 1e-300), 0.0))


# ---- impressions (MIND) ---------------------------------------------------------------------------------------------
def impression_metrics(groups: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor,
                       ndcg_ks=(5, 10), want_auc: bool = True, want_mrr: bool = True, ties: str = "expected"
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-impression metrics for candidate rows (``groups`` = impression id, ``labels`` 0/1, ``scores``).

    Returns (impression ids [G] sorted, {'auc', 'mrr', 'ndcg@K'...: float64 [G]}). Undefined values are NaN: AUC of
    an impression with a single label class (MIND skips those), MRR/nDCG of an impression without a click. AUC counts
    ties 0.5. MRR and nDCG (MIND's: sums over the clicked candidates of 1/rank and of the rank's discount) are, with
    ``ties="expected"``, their expectation over every order of tied candidates: a clicked candidate in a run of m
    tied candidates from position a on is at each of a..a+m-1 with probability 1/m, and both metrics are linear in
    the clicked candidates' terms, so the expectation is exact. ``ties="first"``: tied candidates in row order.
    """
    if ties not in ("expected", "first"):
        raise ConfigError(f"ties must be 'expected' or 'first', got {ties!r}")
    groups = groups.long()
    lab = labels.to(F64)
    # rank: by impression, then score descending; stable sorts make ties follow row order
    o = torch.sort(scores, descending=True, stable=True).indices
    o = o[torch.sort(groups[o], stable=True).indices]
    g, y, s = groups[o], lab[o], scores[o]
    gid, inv, counts = torch.unique_consecutive(g, return_inverse=True, return_counts=True)
    G, n = gid.numel(), g.numel()
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=g.device) - start[inv] + 1  # 1-based within impression
    npos = torch.zeros(G, dtype=F64, device=g.device).index_add_(0, inv, y)
    out: dict[str, torch.Tensor] = {}
    nan = torch.full((G,), float("nan"), dtype=F64, device=g.device)
    # runs of equal score within an impression: first row, last row, and each row's run
    new = torch.ones(n, dtype=torch.bool, device=g.device)
    new[1:] = (g[1:] != g[:-1]) | (s[1:] != s[:-1])
    starts = torch.nonzero(new).squeeze(1)
    ends = torch.cat([starts[1:], torch.tensor([n], device=g.device)]) - 1
    run = torch.cumsum(new.long(), 0) - 1
    if ties == "expected":   # each row's run: first position a (1-based) and size m
        first, size = starts[run] - start[inv] + 1, (ends - starts + 1)[run]
    else:                    # row order: every row its own run
        first, size = rank, torch.ones_like(rank)
    longest = int(counts.max()) if G else 0

    def expected(term: torch.Tensor) -> torch.Tensor:
        """Per row, the mean of ``term`` [longest] (indexed by rank - 1) over the positions of its run."""
        cum = torch.cat([torch.zeros(1, dtype=F64, device=g.device), torch.cumsum(term, 0)])
        return (cum[first + size - 1] - cum[first - 1]) / size.to(F64)

    positions = torch.arange(1, longest + 1, dtype=F64, device=g.device)
    if want_mrr:
        rr = torch.zeros(G, dtype=F64, device=g.device).index_add_(0, inv, y * expected(1.0 / positions))
        out["mrr"] = torch.where(npos > 0, rr / npos.clamp(min=1e-300), nan)
    for k in ndcg_ks:
        disc = torch.where(positions <= k, 1.0 / torch.log2(positions + 1.0), torch.zeros_like(positions))
        dcg = torch.zeros(G, dtype=F64, device=g.device).index_add_(0, inv, y * expected(disc))
        table = torch.cumsum(_discounts(k, g.device), 0)
        n_ideal = torch.clamp(npos.long(), max=k)
        idcg = table[torch.clamp(n_ideal - 1, min=0)]
        out[f"ndcg@{k}"] = torch.where(npos > 0, dcg / idcg, nan)
    if want_auc:
        desc_rank = ((starts + ends).to(F64) / 2.0)[run] - start[inv].to(F64) + 1.0
        r_sum = torch.zeros(G, dtype=F64, device=g.device).index_add_(0, inv, y * desc_rank)
        nn = counts.to(F64)
        nneg = nn - npos
        auc = ((nn + 1.0) * npos - npos * (npos + 1.0) / 2.0 - r_sum) / (npos * nneg)
        out["auc"] = torch.where((npos > 0) & (nneg > 0), auc, nan)
    return gid, out
