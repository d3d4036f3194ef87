"""Comparisons against a reference method: seed-level tests with intervals, user-level tests combined over seeds.

Evaluation seeds vary the split and the training seed, so the unit of replication is the **seed**: users within one
split are not independent replications of the experiment (the same split, the same trained model). For each
method m and the reference r on one metric, with per-user values paired by (seed, user):

- ``delta``: the mean over seeds of the per-seed mean differences Δ_s (users evaluated by both, per seed), and
  ``rel_delta`` = delta / (mean over seeds of the reference's per-seed means);
- ``ci_low``/``ci_high``: the 95 % interval of the expected difference across splits: delta ± t_{S-1, 0.975} ·
  sd(Δ_s)/√S. This is where a hierarchical bootstrap leads when done right: resampling users inside resampled
  seeds counts the users' noise twice (it is already in the spread of Δ_s), so Davison & Hinkley (1997, §3.8)
  resample the top stage only; that bootstrap's variance is (S-1)/S of the unbiased one, and with five seeds its
  percentile interval undercovers, so the exact Student form is used (``tests/report/test_stats.py`` measures the
  coverage of each). ``rel_ci_*`` divide by the reference mean. It excludes 0 exactly when the seed-level test
  gives p < 0.05 (before Holm). With one seed it is the users-only interval below;
- ``ci_users_low``/``ci_users_high``: a percentile bootstrap over users stratified by seed (the splits held
  fixed): how sure we are of the difference *on these splits*;
- ``seed_p``: paired t-test on the per-seed means (``scipy.stats.ttest_rel``), S - 1 degrees of freedom; ``d_z``:
  its effect size, mean(Δ_s) / sd(Δ_s);
- ``user_p``: within each seed a paired t-test over users, the per-seed one-sided p-values combined with
  Stouffer's method (``scipy.stats.combine_pvalues``), reported two-sided: evidence that the methods differ *on
  these splits*, not across splits; ``user_d``: the mean per-seed user-level effect size;
- Holm across the methods compared with the same reference on the same metric (``*_holm``).

Only ``seed_p_holm < alpha`` with at least two seeds marks a difference in the tables; a one-seed grid gets no
marker and says so.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special, stats

CONFIDENCE = 0.95
BOOTSTRAP = 1000


def mean_interval(values) -> tuple[float, float]:
    """Mean over seeds and the half-width of its 95 % Student interval (NaN with fewer than two seeds)."""
    v = pd.Series(values, dtype=float).dropna()
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), float("nan")
    return float(v.mean()), float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values (monotone, capped at 1). NaN stays NaN and does not count."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(len(p), np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    running = 0.0
    for rank, idx in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, (m - rank) * p[idx])
        adjusted[idx] = min(1.0, running)
    return adjusted.tolist()


def _unit(per_user: pd.DataFrame) -> str:
    return "impression" if "impression" in per_user.columns and per_user["impression"].notna().any() else "user"


def _wide(per_user: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One column per method, one row per (seed, unit): the pairing every comparison on ``metric`` reads."""
    keys = ["seed", _unit(per_user)]
    frame = per_user[keys + ["method", metric]].drop_duplicates(keys + ["method"])
    return frame.set_index(keys + ["method"])[metric].unstack("method").sort_index()


def _paired_diffs(wide: pd.DataFrame, method: str, reference: str) -> list[np.ndarray]:
    """Per seed (in seed order): [n, 2] values of (method, reference) for the units both were evaluated on."""
    both = wide[[method, reference]].dropna()
    vals = both.to_numpy(np.float64)
    seeds = both.index.get_level_values("seed").to_numpy()
    cuts = np.flatnonzero(np.diff(seeds)) + 1
    return [p for p in np.split(vals, cuts) if len(p)]


def user_bootstrap(pairs: list[np.ndarray], n_boot: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the mean over seeds of the per-seed mean difference, resampling users within each
    seed (stratified by seed; the splits are held fixed). ``pairs``: per seed [n_users, 2] (method, reference)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n_boot)
    for p in pairs:
        n = len(p)
        idx = rng.integers(0, n, size=(n_boot, n))   # each replicate: n users drawn with replacement
        out += (p[:, 0] - p[:, 1])[idx].sum(1) / n
    return out / len(pairs)


def _users_z(pairs: list[np.ndarray]) -> tuple[list[float], list[float]]:
    """Per seed: the z-score of its one-sided paired t-test over users (Stouffer's input) and its effect size.

    The t statistic and tails are computed with scipy.special's ufuncs (``stdtr``: Student CDF, ``ndtri``: normal
    quantile) rather than ``stats.ttest_1samp`` / ``stats.t`` / ``stats.norm``: the same formulas, checked against
    them to 1e-9 in tests/report/test_stats.py, without their per-call overhead (~1 ms each, thousands of calls in
    one report). The z comes from the nearer tail, so it stays finite and exact for tiny p."""
    z, user_d = [], []
    for p in pairs:
        d = p[:, 0] - p[:, 1]
        if len(d) < 2 or np.ptp(d) == 0:   # no spread: no evidence either way from this seed's users
            z.append(0.0 if d.mean() == 0 else float(np.sign(d.mean())) * 8.0)
            user_d.append(float("nan"))
            continue
        n, mean, sd = len(d), d.mean(), d.std(ddof=1)
        t_s = mean / (sd / np.sqrt(n))
        lower = special.stdtr(n - 1, -abs(t_s))       # P(T <= -|t|): the nearer tail's one-sided p
        z.append(float(-special.ndtri(lower)) * (1.0 if t_s >= 0 else -1.0))
        user_d.append(float(mean / sd))
    return z, user_d


def compare(per_user: pd.DataFrame, reference: str, metric: str, *, n_boot: int = BOOTSTRAP, seed: int = 0,
            alpha: float = 0.05, user_ci: bool = True) -> pd.DataFrame:
    """Every other method against ``reference`` on ``metric`` (columns: see the module docstring).

    per_user: columns method, seed, user (or impression) and the metric. ``user_ci=False`` skips the users-within-
    seed bootstrap where it is not shown (``ci_users_*`` NaN; a one-seed comparison always computes it: it is then
    the only interval)."""
    if metric not in per_user.columns or reference not in set(per_user.method):
        return pd.DataFrame()
    rows = []
    wide = _wide(per_user, metric)
    for method in sorted(set(wide.columns) - {reference}):
        pairs = _paired_diffs(wide, method, reference)
        pairs = [p for p in pairs if len(p)]
        if not pairs:
            continue
        S = len(pairs)
        dm = np.array([(p[:, 0] - p[:, 1]).mean() for p in pairs])
        rm = np.array([p[:, 1].mean() for p in pairs])
        delta, ref_mean = float(dm.mean()), float(rm.mean())
        rel = delta / ref_mean if ref_mean != 0 else float("nan")
        lo_u = hi_u = float("nan")
        if user_ci or S == 1:
            boot = user_bootstrap(pairs, n_boot=n_boot, seed=seed)
            lo_u, hi_u = np.percentile(boot, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
        if S > 1:   # across splits: Student interval on the per-seed differences
            half = stats.t.ppf(0.5 + CONFIDENCE / 2, S - 1) * dm.std(ddof=1) / np.sqrt(S)
            lo, hi = delta - half, delta + half
        else:       # one split: only the users' sampling can be shown
            lo, hi = lo_u, hi_u
        if S > 1 and np.ptp(dm) > 0:
            seed_t, seed_p = (float(x) for x in stats.ttest_rel(dm + rm, rm))
            d_z = float(dm.mean() / dm.std(ddof=1))
        elif S > 1:   # identical per-seed differences: no spread to test against
            seed_t, seed_p, d_z = float("nan"), (1.0 if delta == 0 else 0.0), float("nan")
        else:
            seed_t = seed_p = d_z = float("nan")
        z, user_d = _users_z(pairs)
        user_p = float(2 * stats.norm.sf(abs(sum(z)) / np.sqrt(len(z))))
        rows.append({"method": method, "reference": reference, "metric": metric, "n_seeds": S,
                     "n_users": int(sum(len(p) for p in pairs)), "mean": float(ref_mean + delta),
                     "reference_mean": ref_mean, "delta": delta, "rel_delta": rel,
                     "ci_low": float(lo), "ci_high": float(hi),
                     "rel_ci_low": float(lo / ref_mean) if ref_mean else float("nan"),
                     "rel_ci_high": float(hi / ref_mean) if ref_mean else float("nan"),
                     "ci_users_low": float(lo_u), "ci_users_high": float(hi_u),
                     "seed_t": seed_t, "seed_p": seed_p, "d_z": d_z, "user_p": user_p,
                     "user_d": float(np.nanmean(user_d)) if not np.all(np.isnan(user_d)) else float("nan")})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["seed_p_holm"] = holm(out["seed_p"].tolist())
    out["user_p_holm"] = holm(out["user_p"].tolist())
    out["significant"] = (out.n_seeds >= 2) & (out.seed_p_holm < alpha)
    return out
