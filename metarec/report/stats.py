"""Paired significance tests on per-user metrics (scipy.stats), Holm-corrected across the methods compared."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values (monotone, capped at 1)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, (m - rank) * p[idx])
        adjusted[idx] = min(1.0, running)
    return adjusted.tolist()


def paired_tests(per_user: pd.DataFrame, reference: str, metric: str, unit_cols=("seed", "user")) -> pd.DataFrame:
    """Compare every method with ``reference`` on ``metric``, pairing values by (seed, user).

    per_user: columns method, seed, user (or impression), metric columns. Returns one row per other method with
    mean difference, n pairs, raw and Holm-adjusted p-values for the paired t-test and the Wilcoxon signed-rank
    test."""
    unit_cols = [c for c in unit_cols if c in per_user.columns]
    if metric not in per_user.columns:
        return pd.DataFrame()
    wide = per_user.pivot_table(index=unit_cols, columns="method", values=metric, aggfunc="first")
    rows = []
    if reference not in wide.columns:
        return pd.DataFrame()
    for method in wide.columns:
        if method == reference:
            continue
        pair = wide[[method, reference]].dropna()
        diff = pair[method] - pair[reference]
        if len(pair) < 2 or np.allclose(diff, 0):
            t_p = w_p = 1.0
        else:
            t_p = float(stats.ttest_rel(pair[method], pair[reference]).pvalue)
            w_p = float(stats.wilcoxon(pair[method], pair[reference], zero_method="wilcox").pvalue) \
                if (diff != 0).sum() >= 1 else 1.0
            t_p = 1.0 if np.isnan(t_p) else t_p
        rows.append({"method": method, "reference": reference, "metric": metric, "n": len(pair),
                     "mean_diff": float(diff.mean()), "t_p": t_p, "wilcoxon_p": w_p})
    out = pd.DataFrame(rows)
    if not out.empty:
        out["t_p_holm"] = holm(out["t_p"].tolist())
        out["wilcoxon_p_holm"] = holm(out["wilcoxon_p"].tolist())
    return out
