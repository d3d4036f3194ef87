"""The one evaluator: every method, ours and RecBole's, is scored here, from its score matrix, on the same Split.

Full ranking (default), per batch of users::

    scores = method.score(users)                    # [B, n_items]
    scores[masked(stage) of those users] = -inf     # train (+ valid at test, + support): never recommended
                                                    # (new-item cold start: warm items too; Split.masked)
    top = topk_items(scores, Kmax)                  # exact top-K; ties -> lower item id first
    hits = is_target[top]                           # targets: the stage frame's distinct items of the user
    per-user metrics from (hits, n_targets)         # metarec.eval.metrics, RecBole's definitions
                                                    # ties="expected" (default): averaged over tie orders, exactly

As in RecBole's full-sort evaluation, a target that is also known (a repeat interaction) is masked like every
known item yet still counts in the user's number of targets; AUC only compares unmasked items. Users without
targets at the stage are not evaluated. Tie handling is the one deliberate difference from RecBole's trainer, whose
``torch.topk`` orders tied scores in an unspecified (kernel) order. By default (``ties="expected"``) every top-K
metric is its exact expectation over all orders of the tied items, so a constant scorer scores what a uniformly
random one does in expectation; ``ties="first"`` keeps the deterministic order (a tie goes to the lower item id,
which flatters tied scorers: ids follow the data's original ids, which correlate with popularity). Untied scores
give RecBole's values under both.

Sampled ranking (``mode='sampled'``, only on request) ranks each user's targets among ``num_negatives`` uniformly
drawn unknown non-target items per target (RecBole's ``uni100`` convention); its label ``sampled-<n>`` travels in
every output. The impressions protocol scores each impression's candidates (``method.score_pairs``) and reports
MIND's per-impression AUC / MRR / nDCG@K.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from metarec.data.schema import IMPRESSION, ITEM, LABEL, RATING, USER
from metarec.errors import ConfigError, DataError, TrainingError
from metarec.eval import metrics as M
from metarec.eval import registry
from metarec.eval.metrics import MetricSpec, parse_metrics

#: full ranking; or each target among ``num_negatives`` sampled non-target items per target, drawn uniformly
#: ("sampled", RecBole's uni100) or in proportion to train popularity ("sampled-pop", RecBole's pop100)
MODES = ("full", "sampled", "sampled-pop")
#: how tied scores are ordered: "expected" = every top-K metric is its expectation over all orders of the tied items
#: (McSherry & Najork 2008, exact), so a constant scorer scores what a random one scores in expectation; "first" =
#: the old deterministic order (a tie goes to the lower item id; RecBole-style stable lists)
TIES = ("expected", "first")
CATEGORY_COLUMNS = ("genres", "category")
REFERENCE_DIM = 64  # rank of the reference item vectors behind diversity@K on splits without categories

ScoreSource = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalResult:
    """Outcome of one evaluation.

    ``mode`` labels how items were ranked: 'full', 'sampled-<n>' or 'impressions'; it is part of every output
    (``str``, ``to_dict``, ``per_user.attrs['mode']``). ``per_user`` holds one row per evaluated unit (user, or
    impression with a ``user`` column) and one column per per-unit metric; NaN where a metric is undefined for a
    unit (e.g. AUC of a user with no negative), and ``means`` averages the non-NaN values of each column, so
    ``per_user[m].mean() == means[m]``. Aggregate-only metrics (gauc, coverage@K, gini@K, mae, rmse) are in
    ``means`` only.
    """

    stage: str
    mode: str
    means: dict[str, float]
    per_user: pd.DataFrame
    n_users: int
    timings: dict[str, float]
    unit: str = "user"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "mode": self.mode, "unit": self.unit, "n_units": self.n_users,
                "metrics": dict(self.means), "timings": dict(self.timings), "notes": list(self.notes)}

    def __str__(self) -> str:
        vals = "  ".join(f"{k}={v:.4f}" for k, v in self.means.items())
        return f"[{self.stage} | {self.mode} | {self.n_users} {self.unit}s] {vals}"


@dataclass
class _Batch:
    users: torch.Tensor       # [B] user ids
    known: torch.Tensor       # flat positions row * n_items + item (row within the batch) to mask
    target: torch.Tensor      # flat positions of the positives
    n_pos: torch.Tensor       # [B] number of distinct targets
    n_pos64: torch.Tensor     # the same as float64 (what the metrics divide by; converted once, not per evaluation)
    known_rows: tuple         # (indptr [B+1], items): the same as CSR over the batch's rows (the fused CPU path)
    target_rows: tuple


@dataclass
class _RankingStage:
    batches: list[_Batch]   # the stage's users with at least one target, batch_size at a time


@dataclass
class _ImpressionStage:
    rows_user: torch.Tensor   # candidate rows, sorted by user
    rows_item: torch.Tensor
    rows_imp: torch.Tensor
    rows_label: torch.Tensor
    slices: list[tuple[torch.Tensor, int, int]]  # (distinct users, row start, row end) per batch


class Evaluator:
    """Scores methods on ``split``.

    metrics: names such as 'ndcg@10', 'recall@20', 'auc', 'gauc', 'coverage@10', 'mae' (declared in
        ``metarec.eval.registry``); default: the registry's default set for the split's protocol kind.
    batch_size: users scored per ``method.score`` call (default: up to 1024, fewer for large catalogues).
    mode: 'full' (rank all unknown items) or 'sampled' (rank targets among ``num_negatives`` sampled items per
        target; deterministic for a given seed and batch size).
    """

    def __init__(self, split, metrics=None, batch_size: int | None = None, mode: str = "full",
                 num_negatives: int = 100, seed: int = 0, ties: str = "expected"):
        self.split = split
        if ties not in TIES:
            raise ConfigError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")
        self.ties = ties
        if batch_size is None:  # [batch, n_items] score blocks of at most 2^25 entries (128 MB of float32)
            batch_size = int(max(1, min(1024, 2 ** 25 // max(1, split.n_items))))
        if mode not in MODES:
            raise ConfigError(f"evaluation mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"evaluation batch_size must be a positive integer, got {batch_size!r}")
        if mode != "full" and (not isinstance(num_negatives, (int, np.integer)) or num_negatives < 1):
            raise ConfigError(f"num_negatives must be a positive integer, got {num_negatives!r}")
        self.mode, self.batch_size, self.num_negatives, self.seed = mode, int(batch_size), int(num_negatives), seed
        kind = "impressions" if split.is_impressions else "ranking"
        self.specs: list[MetricSpec] = parse_metrics(list(metrics) if metrics else registry.default_metrics(kind),
                                                     kind)
        self._check_protocol()
        self.kmax = 0 if split.is_impressions else max(
            (s.k for s in self.specs if s.definition.is_topk), default=0)
        if self.kmax > split.n_items:
            raise ConfigError(f"cut-off {self.kmax} exceeds the number of items ({split.n_items})")
        # what the hot path asks of each metric's definition, looked up once
        self._per_unit_names = {s.name for s in self.specs
                                if s.definition.per_unit and "ratings" not in s.definition.needs}
        self._plugin_names = {s.name for s in self.specs if s.definition.compute is not None}
        self._cache: dict[str, Any] = {}
        self._sigs = None
        self._basis: tuple[str, torch.Tensor] | None | str = "unset"
        self._basis_note: str | None = None
        self._info: torch.Tensor | None = None

    # ---- public --------------------------------------------------------------------------------------------------
    @property
    def mode_label(self) -> str:
        if self.split.is_impressions:
            return "impressions"
        if self.mode == "full":
            return "full"
        return f"sampled-{self.num_negatives}" if self.mode == "sampled" else f"sampled-pop-{self.num_negatives}"

    @property
    def metric_names(self) -> list[str]:
        return [s.name for s in self.specs]

    def evaluate(self, method, stage: str = "test") -> EvalResult:
        """Score ``method`` at ``stage`` ('valid' or 'test'). Cold start: the stage's support set is passed to
        ``method.adapt`` first."""
        t0 = time.perf_counter()
        timings = {"adapt_s": 0.0}
        with scoring_stage(method, stage):
            sup = self.split.support(stage)
            if sup is not None and hasattr(method, "adapt"):
                method.adapt(sup)
                timings["adapt_s"] = time.perf_counter() - t0
            rating_fn = getattr(method, "predict_rating", None)
            with torch.no_grad():
                if self.split.is_impressions:
                    res = self._evaluate_impressions(method.score_pairs, stage, timings, pairs=True)
                else:
                    res = self._evaluate_ranking(method.score, stage, timings, rating_fn=rating_fn, fresh=False)
        res.timings["total_s"] = time.perf_counter() - t0
        res.timings["metrics_s"] = res.timings["total_s"] - res.timings["score_s"] - res.timings["adapt_s"]
        return res

    def evaluate_scores(self, scores: ScoreSource, stage: str = "test", predict_rating=None) -> EvalResult:
        """Evaluate a precomputed score matrix [n_users, n_items] (or a callable users -> [B, n_items])."""
        t0 = time.perf_counter()
        timings = {"adapt_s": 0.0}
        if isinstance(scores, torch.Tensor):
            if scores.dim() != 2 or scores.shape[1] != self.split.n_items or scores.shape[0] < self.split.n_users:
                raise ValueError(f"score matrix must be [n_users={self.split.n_users}, n_items={self.split.n_items}],"
                                 f" got {tuple(scores.shape)}")
            fn, fresh = _MatrixRows(scores), True
        elif callable(scores):
            fn, fresh = scores, False
        else:
            raise TypeError("scores must be a tensor [n_users, n_items] or a callable users -> scores")
        with torch.no_grad():
            if self.split.is_impressions:
                res = self._evaluate_impressions(fn, stage, timings, pairs=False)
            else:
                res = self._evaluate_ranking(fn, stage, timings, rating_fn=predict_rating, fresh=fresh)
        res.timings["total_s"] = time.perf_counter() - t0
        res.timings["metrics_s"] = res.timings["total_s"] - res.timings["score_s"] - res.timings["adapt_s"]
        return res

    # ---- validation ----------------------------------------------------------------------------------------------
    def _check_protocol(self) -> None:
        # which metric is allowed under which protocol kind, with which cut-off: parse_metrics(kind) (the registry)
        if self.split.is_impressions and self.mode != "full":
            raise ConfigError("the impressions protocol ranks each impression's candidates; mode='sampled' "
                              "does not apply")

    # ---- stage preparation (cached; not in the hot path) ---------------------------------------------------------
    def _ranking_stage(self, stage: str) -> _RankingStage:
        key = f"rank:{stage}"
        if key in self._cache:
            return self._cache[key]
        split = self.split
        frame = split.frames[stage]
        n_u, n_i = split.n_users, split.n_items
        t_ptr, t_idx = _csr(frame[USER].to_numpy(), frame[ITEM].to_numpy(), n_u, n_i, f"{stage} frame")
        masked = split.masked(stage)
        k_ptr, k_idx = _csr(masked[USER].to_numpy(), masked[ITEM].to_numpy(), n_u, n_i, f"known({stage})")
        n_t = np.diff(t_ptr)
        users = np.nonzero(n_t > 0)[0]
        batches = []
        for lo in range(0, len(users), self.batch_size):
            ub = users[lo:lo + self.batch_size]
            known_rows, target_rows = _rows_csr(k_ptr, k_idx, ub), _rows_csr(t_ptr, t_idx, ub)
            batches.append(_Batch(users=torch.from_numpy(ub.astype(np.int64)), known=_flat(known_rows, n_i),
                                  target=_flat(target_rows, n_i), n_pos=torch.from_numpy(n_t[ub].astype(np.int64)),
                                  n_pos64=torch.from_numpy(n_t[ub].astype(np.float64)),
                                  known_rows=known_rows, target_rows=target_rows))
        st = self._cache[key] = _RankingStage(batches=batches)
        return st

    def _impression_stage(self, stage: str) -> _ImpressionStage:
        key = f"imp:{stage}"
        if key in self._cache:
            return self._cache[key]
        frame = self.split.frames[stage]
        missing = [c for c in (IMPRESSION, USER, ITEM, LABEL) if c not in frame.columns]
        if missing:
            raise DataError(f"impressions split: the {stage} frame lacks column(s) {', '.join(missing)}")
        order = np.argsort(frame[USER].to_numpy(), kind="stable")
        u = frame[USER].to_numpy()[order].astype(np.int64)
        uniq, first = np.unique(u, return_index=True)
        bounds = list(first) + [len(u)]
        slices = []
        for lo in range(0, len(uniq), self.batch_size):
            hi = min(lo + self.batch_size, len(uniq))
            slices.append((torch.from_numpy(uniq[lo:hi]), int(bounds[lo]), int(bounds[hi])))
        st = self._cache[key] = _ImpressionStage(
            rows_user=torch.from_numpy(u), rows_item=torch.from_numpy(frame[ITEM].to_numpy()[order].astype(np.int64)),
            rows_imp=torch.from_numpy(frame[IMPRESSION].to_numpy()[order].astype(np.int64)),
            rows_label=torch.from_numpy(frame[LABEL].to_numpy()[order].astype(np.float64)), slices=slices)
        return st

    def _diversity_basis(self, notes: list[str]) -> tuple[str, torch.Tensor] | None:
        if self._basis == "unset":
            self._basis, self._basis_note = diversity_basis(self.split)
        if self._basis_note:
            notes.append(self._basis_note)
        return self._basis

    def _signatures(self, cats: torch.Tensor):
        """(signature per item [n_items], Jaccard similarity of signatures [S, S], one-hot [n_items, S]): items with
        the same category set share a signature, so tie-aware diversity sums over signatures, not item pairs."""
        if self._sigs is None:
            sig, sim = M.category_signatures(cats)
            onehot = torch.zeros((len(sig), sim.shape[0]), dtype=torch.float64)
            onehot[torch.arange(len(sig)), sig] = 1.0
            self._sigs = (sig, sim, onehot)
        return self._sigs

    def _train_counts(self) -> torch.Tensor:
        if "train_counts" not in self._cache:
            self._cache["train_counts"] = torch.from_numpy(
                np.bincount(self.split.train[ITEM].to_numpy().astype(np.int64), minlength=self.split.n_items))
        return self._cache["train_counts"]

    def _self_information(self) -> torch.Tensor:
        if self._info is None:
            self._info = M.self_information(self._train_counts())
        return self._info

    # ---- full / sampled ranking ----------------------------------------------------------------------------------
    def _evaluate_ranking(self, score_fn, stage: str, timings: dict, rating_fn=None, fresh: bool = False
                          ) -> EvalResult:
        notes: list[str] = []
        ranked = any(s.k is not None for s in self.specs)   # a top-K metric (is_topk)
        want_auc = any(s.base in ("auc", "gauc") for s in self.specs)
        basis = self._diversity_basis(notes) if any(s.base == "diversity" for s in self.specs) else None
        active = [s for s in self.specs if not (s.base == "diversity" and basis is None)]
        info = self._self_information() if any(s.base == "novelty" for s in self.specs) else None
        n_items = self.split.n_items
        t_score = 0.0
        per_unit: dict[str, list[torch.Tensor]] = {s.name: [] for s in active if s.name in self._per_unit_names}
        counts = {s.k: torch.zeros(n_items, dtype=torch.int64 if self.ties == "first" else torch.float64)
                  for s in active if s.base in ("coverage", "gini")}
        plugins = [s for s in active if s.name in self._plugin_names]
        # tie-aware coverage: per item, sum over users of log P(not in the user's list); E[covered] = 1 - exp(.)
        log_miss = {k: torch.zeros(n_items, dtype=torch.float64) for k in counts}
        auc_w: list[torch.Tensor] = []
        users_done: list[np.ndarray] = []
        gen = torch.Generator().manual_seed(int(self.seed)) if self.mode != "full" else None
        st = self._ranking_stage(stage) if (ranked or want_auc) else None
        acc = [(s.base, s.k) for s in active if s.base in M.TOPK_FUNCTIONS]
        acc_names, acc_blocks = [f"{b}@{k}" for b, k in acc], []
        clock = [0.0]
        batches = st.batches if st is not None else []
        for b, s, target, valid, fused in self._masked(score_fn, batches, stage, fresh, want_auc, gen, clock,
                                                       fast_k=self._fused_k(want_auc)):
            dev = s.device if fused is None else torch.device("cpu")
            n_pos = b.n_pos.to(dev)
            tie, listed = None, None
            if fused is not None:   # every list strict and full: the plain hits are the expectation
                top, hits = fused
                n_pos = b.n_pos64
            elif self.kmax:
                if self.ties == "expected":   # one more position: does the tie at the cut-off go on past it?
                    top = _topk(s, min(self.kmax + 1, n_items), stage)
                    top_s = torch.gather(s, 1, top)
                    # no two equal scores in any list (the usual case for a trained model): the plain hits are the
                    # expectation, and the tie bookkeeping is skipped
                    tied = bool((top_s[:, 1:] == top_s[:, :-1]).any())
                    nxt = top_s[:, self.kmax] if top.shape[1] > self.kmax else None
                    top = top[:, :self.kmax]
                else:
                    top, tied = _topk(s, self.kmax, stage), False
                hits = torch.gather(target, 1, top).to(torch.float64)  # converted once for all metrics
                n_pos = b.n_pos64.to(dev)
                if tied:
                    tie = _CutoffRun(s, top, hits, target, nxt)
                # a user with fewer than K rankable items gets a shorter list: the masked (-inf) items that pad it
                # are never hits, and beyond accuracy they are not recommendations either. Such a list holds every
                # rankable item, so its novelty, diversity and coverage do not depend on any tie order.
                listed = torch.gather(s, 1, top) != float("-inf")   # -inf: masked padding; +inf is a score
                listed = None if bool(listed.all()) else listed
            elif torch.isnan(s).any():
                raise TrainingError(f"the method returned NaN scores at stage {stage!r}")
            if acc:   # the top-K accuracy metrics as one [B, len(acc)] block, columns in acc's order
                if tie is not None:
                    table = M.expected_topk_table(tie.runs, n_pos, acc)
                    acc_blocks.append(torch.stack([table[name] for name in acc_names], 1).cpu().numpy())
                else:
                    acc_blocks.append(M.topk_table_array(hits, n_pos, acc))
            for spec in plugins:   # a registered plugin metric: from the lists and the (expected) hits
                v = spec.definition.compute(top, tie.runs.soft if tie is not None else hits, n_pos, spec.k)
                per_unit[spec.name].append(torch.as_tensor(v, dtype=torch.float64).reshape(-1).cpu())
            for spec in active:
                if spec.base == "novelty":
                    if tie is None:
                        v = M.novelty(top, info.to(dev), spec.k, listed)
                    else:
                        v = M.run_means(tie.runs, info.to(dev)[top], tie.last_mean(info.to(dev)))[:, :spec.k].mean(1)
                        v = _short_lists_exact(v, listed, spec.k, lambda r: M.novelty(top[r], info.to(dev), spec.k,
                                                                                      listed[r]))
                    per_unit[spec.name].append(v.cpu())
                elif spec.base == "diversity":
                    kind, ref = basis[0], basis[1].to(dev)
                    plain = M.diversity if kind == "categories" else M.vector_diversity
                    if tie is None:
                        v = plain(top, ref, spec.k, listed)
                    elif kind == "categories":
                        sig, sim, onehot = (x.to(dev) for x in self._signatures(basis[1]))
                        v = M.expected_diversity(tie.runs, sig[top], sim, tie.last_counts(sig[top], onehot), spec.k)
                    else:
                        vec = ref[top]
                        v = M.expected_vector_diversity(tie.runs, vec, *tie.last_vector_sums(vec, ref), spec.k)
                    if tie is not None:
                        v = _short_lists_exact(v, listed, spec.k, lambda r: plain(top[r], ref, spec.k, listed[r]))
                    per_unit[spec.name].append(v.cpu())
            for k in counts:
                if tie is None:
                    counts[k] += M.rec_counts(top, n_items, k, listed).cpu()
                    if self.ties == "expected":   # listed for sure: P(not in the list) = 0
                        shown = top[:, :k] if listed is None else top[:, :k][listed[:, :k]]
                        log_miss[k].index_fill_(0, shown.reshape(-1).cpu(), float("-inf"))
                else:
                    c, lq = tie.inclusion_sums(k, n_items, listed)
                    counts[k] += c.cpu()
                    log_miss[k] += lq.cpu()
            if want_auc:  # in row chunks: the ranking needs a few [rows, n_items] int64 buffers
                step = max(1, _AUC_CHUNK // n_items)
                aw = [M.auc_per_user(s[lo:lo + step], target[lo:lo + step], valid[lo:lo + step])
                      for lo in range(0, s.shape[0], step)]
                a, w = torch.cat([x[0] for x in aw]), torch.cat([x[1] for x in aw])
                auc_w.append(torch.stack([a.cpu(), w.cpu()], 1))
                if "auc" in per_unit:
                    per_unit["auc"].append(a.cpu())
            users_done.append(b.users.numpy())
        users = np.concatenate(users_done) if users_done else np.zeros(0, dtype=np.int64)
        names = list(per_unit)
        table = self._per_user_table(names, per_unit, acc_names, acc_blocks, len(users))
        per_user = pd.DataFrame(table, columns=names, index=pd.Index(users, name=USER))  # one float64 block
        col_means = _nanmean_columns(table)
        cols = dict(zip(names, col_means))
        means: dict[str, float] = {}
        for spec in active:
            if spec.name in cols:
                means[spec.name] = cols[spec.name]
            elif spec.base == "gauc":
                aw = torch.cat(auc_w) if auc_w else torch.zeros((0, 2), dtype=torch.float64)
                means[spec.name] = M.gauc(aw[:, 0], aw[:, 1])
            elif spec.base == "coverage" and self.ties == "expected":
                means[spec.name] = float((1.0 - torch.exp(log_miss[spec.k])).sum()) / n_items
            elif spec.base == "coverage":
                means[spec.name] = M.coverage_from_counts(counts[spec.k])
            elif spec.base == "gini":
                means[spec.name] = M.gini_from_counts(counts[spec.k])
        if any(s.base in ("mae", "rmse") for s in active):
            t = time.perf_counter()
            rt = self._ratings(rating_fn, stage, notes)
            t_score += time.perf_counter() - t
            for s in active:
                if s.base in ("mae", "rmse") and rt is not None:
                    means[s.name] = (M.mae if s.base == "mae" else M.rmse)(*rt)
        means = {s.name: means[s.name] for s in active if s.name in means}  # requested order
        per_user.attrs["mode"] = self.mode_label
        per_user.attrs["stage"] = stage
        timings["score_s"] = t_score + clock[0]
        return EvalResult(stage=stage, mode=self.mode_label, means=means, per_user=per_user, n_users=len(users),
                          timings=timings, unit="user", notes=notes)

    def _fused_k(self, want_auc: bool) -> int:
        """The list length the fused CPU path selects (0: not used). Full ranking only, and not with AUC, which
        needs every masked score."""
        if self.mode != "full" or want_auc or not self.kmax:
            return 0
        return min(self.kmax + 1, self.split.n_items) if self.ties == "expected" else self.kmax

    def _masked(self, score_fn, batches, stage, fresh, want_valid, gen, clock, fast_k: int = 0):
        """Yield (batch, masked scores, target bool [B, n], valid bool [B, n] or None, None) per batch of users.

        ``fast_k`` > 0 (full ranking on the CPU): the fused kernel (``_topk_kernel.masked_topk_hits``) selects each
        row's top ``fast_k`` with the known items masked in a private row copy and looks its hits up, reading the
        scores where they are (a score matrix is not even copied); a batch whose lists are all strict (no equal
        scores among the ``fast_k``) and full yields (batch, None, None, None, (top [B, kmax], hits [B, kmax])).
        Any other batch (ties to take the expectation over, short lists, NaN) takes the general path."""
        n_items = self.split.n_items
        # a whole score matrix is read in place (its rows are only copied when the general path needs them)
        matrix = getattr(score_fn, "matrix", None)
        in_place = bool(fast_k and fresh and matrix is not None and matrix.is_contiguous())
        for b in batches:
            if in_place:
                out = self._fused(matrix, b.users.numpy(), b, fast_k)
                if out is not None:
                    yield b, None, None, None, out
                    continue
            t = time.perf_counter()
            s = _check_scores(score_fn(b.users), len(b.users), n_items, stage)
            clock[0] += time.perf_counter() - t
            if fast_k and not in_place:
                out = self._fused(s, np.arange(len(b.users), dtype=np.int64), b, fast_k)
                if out is not None:
                    yield b, None, None, None, out
                    continue
            if not fresh:
                s = s.clone()  # never write into a tensor the method may keep (e.g. an expanded popularity row)
            dev = s.device
            B = s.shape[0]
            kf, tf = (b.known, b.target) if dev.type == "cpu" else (b.known.to(dev), b.target.to(dev))
            target = torch.zeros((B, n_items), dtype=torch.bool, device=dev)
            target.view(-1)[tf] = True
            valid = None
            if self.mode != "full":
                known = torch.zeros((B, n_items), dtype=torch.bool, device=dev)
                known.view(-1)[kf] = True
                weights = self._train_counts().to(dev) if self.mode == "sampled-pop" else None
                valid = _sample_candidates(target, known, b.n_pos.to(dev), self.num_negatives, gen,
                                           weights) & ~known
                s.masked_fill_(~valid, float("-inf"))
            else:
                s = s.contiguous()
                s.view(-1).index_fill_(0, kf, float("-inf"))
                if want_valid:
                    valid = torch.ones((B, n_items), dtype=torch.bool, device=dev)
                    valid.view(-1)[kf] = False
            yield b, s, target, valid, None

    @staticmethod
    def _per_user_table(names, per_unit, acc_names, acc_blocks, n_users) -> np.ndarray:
        """[n_users, len(names)] float64: the per-user metric columns in ``names`` order, the accuracy metrics from
        their blocks (one per batch), the others from their per-batch tensors."""
        acc = (acc_blocks[0] if len(acc_blocks) == 1 else np.concatenate(acc_blocks)) if acc_blocks else None
        if acc is not None and names == acc_names:   # the usual case: only accuracy metrics per user, no copy
            return acc
        if not names or n_users == 0:
            return np.zeros((n_users, len(names)))
        where = {name: j for j, name in enumerate(acc_names)}
        return np.column_stack([acc[:, where[m]] if m in where else torch.cat(per_unit[m]).numpy() for m in names])

    def _fused(self, scores: torch.Tensor, rows: np.ndarray, b: _Batch, k: int):
        """(top [B, kmax], hits [B, kmax]) from the fused kernel for ``scores[rows]``, or None when the scores are not
        a float CPU tensor it can read or a row needs the general path."""
        from metarec.eval._topk_kernel import masked_topk_hits

        if scores.device.type != "cpu" or scores.dtype not in (torch.float32, torch.float64):
            return None
        top, hits, flags = masked_topk_hits(scores.detach().contiguous().numpy(), rows, b.known_rows, b.target_rows,
                                            k, M.TOPK_BLOCK)
        if flags.any():
            return None
        return torch.from_numpy(top[:, :self.kmax]), torch.from_numpy(hits[:, :self.kmax])

    def top_k(self, scores: ScoreSource, stage: str = "test", k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ranked lists the evaluator scores: (users [U], items [U, k]) for the stage's evaluated users, after
        masking (and, in sampled mode, candidate sampling with the same seed as ``evaluate``)."""
        if self.split.is_impressions:
            raise ConfigError("top_k lists are defined for ranking protocols, not impressions")
        if not 1 <= k <= self.split.n_items:
            raise ConfigError(f"k must be in 1..{self.split.n_items}, got {k}")
        if isinstance(scores, torch.Tensor):
            mat = scores
            fn, fresh = (lambda u: torch.index_select(mat, 0, u.to(mat.device))), True
        else:
            fn, fresh = scores, False
        gen = torch.Generator().manual_seed(int(self.seed)) if self.mode != "full" else None
        users, items = [], []
        with torch.no_grad():
            for b, s, _, _, _ in self._masked(fn, self._ranking_stage(stage).batches, stage, fresh, False, gen,
                                              [0.0]):
                users.append(b.users.numpy())
                items.append(_topk(s, k, stage).cpu().numpy())
        if not users:
            return np.zeros(0, dtype=np.int64), np.zeros((0, k), dtype=np.int64)
        return np.concatenate(users), np.concatenate(items)

    def _ratings(self, rating_fn, stage: str, notes: list[str]):
        frame = self.split.frames[stage]
        if RATING not in frame.columns:
            notes.append(f"mae/rmse skipped: the {stage} frame has no rating column")
            return None
        if rating_fn is None:
            notes.append("mae/rmse skipped: the method does not predict ratings (no predict_rating)")
            return None
        u = torch.from_numpy(frame[USER].to_numpy().astype(np.int64))
        i = torch.from_numpy(frame[ITEM].to_numpy().astype(np.int64))
        chunk = self.batch_size * 256
        preds = [torch.as_tensor(rating_fn(u[lo:lo + chunk], i[lo:lo + chunk])).reshape(-1).cpu()
                 for lo in range(0, len(u), chunk)]
        pred = torch.cat(preds) if preds else torch.zeros(0)
        if pred.numel() != len(u):
            raise ValueError(f"predict_rating returned {pred.numel()} values for {len(u)} pairs")
        return pred, torch.from_numpy(frame[RATING].to_numpy().astype(np.float64))

    # ---- impressions ---------------------------------------------------------------------------------------------
    def _evaluate_impressions(self, score_fn, stage: str, timings: dict, pairs: bool) -> EvalResult:
        st = self._impression_stage(stage)
        t_score = 0.0
        parts = []
        for users, lo, hi in st.slices:
            u, i = st.rows_user[lo:hi], st.rows_item[lo:hi]
            t = time.perf_counter()
            if pairs:
                sc = score_fn(u, i)
            else:
                full = score_fn(users)
                full = _check_scores(full, len(users), self.split.n_items, stage)
                row = torch.searchsorted(users.to(full.device), u.to(full.device))
                sc = full[row, i.to(full.device)]
            t_score += time.perf_counter() - t
            sc = torch.as_tensor(sc).reshape(-1).cpu()
            if sc.numel() != hi - lo:
                raise ValueError(f"score_pairs returned {sc.numel()} scores for {hi - lo} pairs")
            parts.append(sc)
        scores = torch.cat(parts).to(torch.float64) if parts else torch.zeros(0, dtype=torch.float64)
        if torch.isnan(scores).any():
            raise TrainingError(f"the method returned NaN scores at stage {stage!r}")
        ks = [s.k for s in self.specs if s.base == "ndcg"]
        gid, vals = M.impression_metrics(st.rows_imp, st.rows_label, scores, ndcg_ks=ks,
                                         want_auc=any(s.base == "auc" for s in self.specs),
                                         want_mrr=any(s.base == "mrr" for s in self.specs), ties=self.ties)
        imp_user = torch.zeros(len(gid), dtype=torch.int64)
        imp_user[torch.searchsorted(gid, st.rows_imp)] = st.rows_user
        cols = {USER: imp_user.numpy()}
        cols.update({s.name: vals[s.name].numpy() for s in self.specs})
        per = pd.DataFrame(cols, index=pd.Index(gid.numpy(), name=IMPRESSION))
        means = {s.name: _nanmean(cols[s.name]) for s in self.specs}
        notes = []
        if "auc" in vals:
            skipped = int(np.isnan(cols["auc"]).sum())
            if skipped:
                notes.append(f"auc: {skipped} impression(s) with a single label class skipped (as MIND)")
        per.attrs["mode"] = self.mode_label
        per.attrs["stage"] = stage
        timings["score_s"] = t_score
        return EvalResult(stage=stage, mode=self.mode_label, means=means, per_user=per, n_users=len(gid),
                          timings=timings, unit="impression", notes=notes)


# ---- helpers --------------------------------------------------------------------------------------------------------
_AUC_CHUNK = 2 ** 22  # entries per AUC ranking chunk


class _MatrixRows:
    """A score matrix as the evaluator's score function: rows as a copy (safe to mask), and the matrix itself for
    the fused CPU path, which only reads it."""

    def __init__(self, mat: torch.Tensor):
        self.matrix = mat if mat.device.type == "cpu" else None
        self._mat = mat

    def __call__(self, users: torch.Tensor) -> torch.Tensor:
        return torch.index_select(self._mat, 0, users.to(self._mat.device))


def _short_lists_exact(values: torch.Tensor, listed: torch.Tensor | None, k: int, exact) -> torch.Tensor:
    """``values`` with the rows whose top-k is padded (fewer than k rankable items) replaced by ``exact(rows)``:
    such a list holds all the user's rankable items, so its value is the plain one over the listed items."""
    if listed is None:
        return values
    short = ~listed[:, :k].all(1)
    if bool(short.any()):
        values = values.clone()
        values[short] = exact(short).to(values.dtype)
    return values


class _CutoffRun:
    """One batch's tie structure for tie-aware metrics: ``M.TieRuns`` of the stable top-K lists, plus the run at the
    cut-off over the whole row (all unmasked items whose score equals the K-th). A cut-off score of -inf means the
    user has fewer than K scored items: the listed -inf items are padding, never hits (their run is the listed
    positions only). Rows whose (K+1)-th score differs from the K-th have no tie past the list: only the others are
    counted over the whole row."""

    def __init__(self, s: torch.Tensor, top: torch.Tensor, hits: torch.Tensor, target: torch.Tensor,
                 next_score: torch.Tensor | None):
        top_s = torch.gather(s, 1, top)
        tk = top_s[:, -1]
        # a cut-off at -inf is the masked padding of a short list (no run to extend); +inf is a score like any other
        finite = tk != float("-inf")
        listed = (top_s == tk[:, None]).sum(1)
        # only rows whose (K+1)-th score equals the K-th have tied items outside the list: count those over the row
        ext = finite & (next_score == tk) if next_score is not None else torch.zeros_like(finite)
        self.rows = torch.nonzero(ext).squeeze(1)
        self.eq = s[self.rows] == tk[self.rows, None]                  # [R, n_items]: the whole run at the cut-off
        self.n_last, p_last = listed.clone(), torch.zeros_like(listed)
        if self.rows.numel():
            self.n_last[self.rows] = self.eq.sum(1)
            p_last[self.rows] = (self.eq & target[self.rows]).sum(1)
        inner = finite & ~ext                                          # the run's items are the listed ones
        p_last = torch.where(inner, (hits * (top_s == tk[:, None])).sum(1).to(p_last.dtype), p_last)
        self.top, self.extends = top, ext
        if self.rows.numel() or bool((top_s[:, 1:] == top_s[:, :-1]).any()):
            self.runs = M.tie_runs(top_s, hits, self.n_last, p_last)
        else:   # no tie anywhere in this batch's lists (the usual case for a trained model): the plain hits
            self.runs = M.TieRuns.from_hits(hits)
        self.last = self.runs.run_id == self.runs.run_id[:, -1:]

    def last_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean of an item property over the run at the cut-off, per row."""
        out = (values[self.top].to(torch.float64) * self.last).sum(1) / self.last.sum(1).clamp(min=1)
        if self.rows.numel():
            out[self.rows] = (self.eq.to(torch.float64) @ values.to(torch.float64)) / self.n_last[self.rows]
        return out

    def last_counts(self, sig_top: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
        """Signature counts [B, S] of the run at the cut-off."""
        B = sig_top.shape[0]
        out = torch.zeros((B, onehot.shape[1]), dtype=torch.float64, device=sig_top.device)
        out.scatter_add_(1, sig_top, self.last.to(torch.float64))
        if self.rows.numel():
            out[self.rows] = self.eq.to(torch.float64) @ onehot
        return out

    def last_vector_sums(self, vec_top: torch.Tensor, vectors: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sum of item vectors [B, d], number of items [B] and sum of squared norms [B] of the run at the cut-off."""
        last = self.last.to(torch.float64)
        sq = (vec_top * vec_top).sum(2)
        total, n, sq_sum = (vec_top * last[:, :, None]).sum(1), last.sum(1), (sq * last).sum(1)
        if self.rows.numel():
            eq = self.eq.to(torch.float64)
            total[self.rows] = eq @ vectors
            n[self.rows] = eq.sum(1)
            sq_sum[self.rows] = eq @ (vectors * vectors).sum(1)
        return total, n, sq_sum

    def inclusion_sums(self, k: int, n_items: int, listed: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per item: expected count in the batch's top-k lists, and sum over the batch's users of
        log P(not in the list). ``listed``: False at padding positions (never recommended)."""
        p_pos, p_last = M.inclusion(self.runs, k)
        inner = ~(self.last & self.extends[:, None])      # positions whose item set is the listed one
        if listed is not None:
            inner = inner & listed
        p = torch.where(inner, p_pos, torch.zeros_like(p_pos))
        flat = self.top.reshape(-1)
        counts = torch.zeros(n_items, dtype=torch.float64, device=p.device).index_add_(0, flat, p.reshape(-1))
        miss = torch.zeros(n_items, dtype=torch.float64, device=p.device).index_add_(0, flat,
                                                                                     torch.log1p(-p.reshape(-1)))
        rows, cols = torch.nonzero(self.eq, as_tuple=True)
        if rows.numel():
            pr = p_last[self.rows[rows]]
            counts.index_add_(0, cols, pr)
            miss.index_add_(0, cols, torch.log1p(-pr))
        return counts, miss


@contextmanager
def scoring_stage(method, stage: str):
    """Tell ``method`` which stage it is being scored for (``set_stage``, when it has one) and restore its previous
    stage afterwards, so scoring outside an evaluation is unaffected."""
    setter = getattr(method, "set_stage", None)
    if setter is None:
        yield
        return
    previous = getattr(method, "stage", None)
    setter(stage)
    try:
        yield
    finally:
        setter(previous)


def diversity_basis(split) -> tuple[tuple[str, torch.Tensor] | None, str | None]:
    """What intra-list diversity compares on ``split`` (the evaluator's diversity@K and the MMR re-ranker alike):
    ("categories", bool [n_items, G]) where the items have at least two distinct category sets, else ("vectors",
    [n_items, d]) from ``M.reference_item_vectors`` (a fixed reference model fitted on the split's training
    interactions), or None when neither exists. Second: a note saying which basis and why (None for categories)."""
    feats = split.item_features
    col = next((c for c in CATEGORY_COLUMNS if feats is not None and c in feats.columns), None)
    why = "the split has no item categories (item_features column 'genres' or 'category')"
    if col is not None and len(feats) != split.n_items:
        why = f"item_features has {len(feats)} rows for {split.n_items} items"
    elif col is not None:
        cats = _category_matrix(feats[col])
        if len(torch.unique(cats.to(torch.int8), dim=0)) >= 2:
            return ("categories", cats), None
        why = f"every item has the same categories in column {col!r}"
    tr = split.train
    vec = M.reference_item_vectors(tr[USER].to_numpy(), tr[ITEM].to_numpy(), split.n_users, split.n_items,
                                   REFERENCE_DIM)
    if vec is None:
        return None, f"diversity@K skipped: {why}, and too few interactions for reference item vectors"
    return ("vectors", vec), (f"diversity@K by item vectors (cosine; rank-{vec.shape[1]} SVD of the training "
                              f"interactions): {why}")


def _nanmean_columns(table: np.ndarray) -> list[float]:
    if len(table) and not np.isnan(table).any():
        return [float(v) for v in table.mean(0)]
    return [_nanmean(table[:, j]) for j in range(table.shape[1])]


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    keep = ~np.isnan(x)
    return float(x[keep].mean()) if keep.any() else float("nan")


def _csr(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, what: str):
    """Distinct (user, item) pairs as CSR (indptr [n_users+1], item indices sorted within each user)."""
    users = users.astype(np.int64, copy=False)
    items = items.astype(np.int64, copy=False)
    if len(users) and (users.min() < 0 or users.max() >= n_users or items.min() < 0 or items.max() >= n_items):
        raise DataError(f"{what}: user/item ids out of range 0..{n_users - 1} / 0..{n_items - 1}")
    codes = np.unique(users * n_items + items)
    u, i = codes // n_items, codes % n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(u, minlength=n_users), out=indptr[1:])
    return indptr, i


def _rows_csr(indptr: np.ndarray, indices: np.ndarray, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CSR entries of ``users`` as a CSR over their positions in ``users`` (indptr [len(users)+1], items)."""
    starts = indptr[users]
    lens = indptr[users + 1] - starts
    ptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(lens, out=ptr[1:])
    offs = np.arange(int(ptr[-1]), dtype=np.int64) - np.repeat(ptr[:-1], lens)
    return ptr, indices[np.repeat(starts, lens) + offs].astype(np.int64)


def _flat(rows_csr: tuple[np.ndarray, np.ndarray], n_items: int) -> torch.Tensor:
    """Flat positions (row within batch * n_items + item) of a CSR over the batch's rows."""
    ptr, cols = rows_csr
    rows = np.repeat(np.arange(len(ptr) - 1, dtype=np.int64), np.diff(ptr))
    return torch.from_numpy(rows * n_items + cols)


def _check_scores(s, B: int, n_items: int, stage: str) -> torch.Tensor:
    try:
        s = torch.as_tensor(s)
    except (TypeError, ValueError, RuntimeError) as e:
        raise TrainingError(f"score() at stage {stage!r} returned {type(s).__name__}, not a tensor or array "
                            f"of scores ({e})") from None
    if s.shape != (B, n_items):
        raise TrainingError(f"score() at stage {stage!r} returned shape {tuple(s.shape)}; it must be "
                            f"[users asked, n_items] = [{B}, {n_items}]")
    if s.dtype == torch.bool or s.is_complex():
        raise TrainingError(f"score() at stage {stage!r} returned {s.dtype} scores; return real numbers")
    if not s.is_floating_point():
        s = s.float()
    return s  # NaN is caught by the top-K selection (or explicitly when no top-K metric is asked)


def _topk(s: torch.Tensor, k: int, stage: str) -> torch.Tensor:
    try:
        return M.topk_items(s, k)
    except ValueError as e:
        raise TrainingError(f"the method returned NaN scores at stage {stage!r} ({e})") from None


def _sample_candidates(target: torch.Tensor, known: torch.Tensor, n_pos: torch.Tensor, num_neg: int,
                       gen: torch.Generator, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Targets + ``num_neg`` draws per target (with replacement) from the user's free items (not known, not
    target): uniform, or in proportion to ``weights`` (train popularity; an item never in train is never drawn).

    Inverse-CDF sampling over the flattened batch: one cumulative sum of the free items' weights, each draw a
    uniform number placed in its row's range, one ``searchsorted`` for all draws; so the cost follows the number of
    draws (sum of n_pos * num_neg), not the batch's largest user times its size."""
    B, n = target.shape
    free = ~(known | target)
    w = free.to(torch.float64)
    if weights is not None:
        w = w * weights.to(torch.float64)[None, :]
    cand = target.clone()
    want = (n_pos * num_neg).to(torch.long)
    cum = torch.cumsum(w.reshape(-1), 0)                       # global running mass over the flattened batch
    row_end = cum.view(B, n)[:, -1]
    row_start = row_end - w.sum(1)
    ok = (want > 0) & (row_end - row_start > 0)
    want = torch.where(ok, want, torch.zeros_like(want))
    total = int(want.sum())
    if total == 0:
        return cand
    rows = torch.repeat_interleave(torch.arange(B, device=target.device), want)
    u = torch.rand(total, generator=gen, dtype=torch.float64).to(target.device)
    point = row_start[rows] + u * (row_end - row_start)[rows]
    flat = torch.searchsorted(cum, point, right=True).clamp(max=B * n - 1)
    # a point on a row's last boundary can land one past it: keep every draw inside its own row
    flat = torch.minimum(torch.maximum(flat, rows * n), rows * n + n - 1)
    hit = free.reshape(-1)[flat]                               # rounding at a zero-weight boundary: drop, never add
    cand.view(-1)[flat[hit]] = True
    return cand


def _category_matrix(col: pd.Series) -> torch.Tensor:
    """Category sets ('|'-joined strings, lists, single strings or missing) -> bool [n_items, n_categories]."""
    def to_list(v):
        if isinstance(v, (list, tuple, np.ndarray)):
            return [str(x) for x in v if str(x)]
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return []
        return [p for p in str(v).split("|") if p]

    lists = [to_list(v) for v in col.to_numpy()]
    vocab = {c: j for j, c in enumerate(sorted({c for lst in lists for c in lst}))}
    mat = torch.zeros((len(lists), max(1, len(vocab))), dtype=torch.bool)
    lens = np.array([len(lst) for lst in lists], dtype=np.int64)
    if lens.sum():
        rows = torch.from_numpy(np.repeat(np.arange(len(lists), dtype=np.int64), lens))
        cols = torch.tensor([vocab[c] for lst in lists for c in lst], dtype=torch.int64)
        mat[rows, cols] = True
    return mat
