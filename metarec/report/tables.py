"""Comparison tables (Markdown and LaTeX booktabs): mean ± std over seeds of the selected configuration per
method, best per column in bold, a marker where a method differs from the reference at the seed level
(``metarec.report.stats``), and a Δ table with intervals, effect sizes and both kinds of p-value."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metarec.bench.store import lower_is_better
from metarec.report.stats import compare

T_MARK = "*"
LEGEND = (f"mean ± std over seeds (each seed its own split and training seed); best per column in bold; "
          f"{T_MARK}: differs from the reference (underlined: the grid's reference method, else the best baseline) "
          "by a paired t-test on the per-seed means, Holm-corrected across methods, p < 0.05")
LEGEND_ONE_SEED = ("one seed: no spread over splits and no significance can be shown (the values are one "
                   "split's); best per column in bold")


def summary(tidy: pd.DataFrame, stage: str = "test") -> pd.DataFrame:
    """Selected configurations only: mean, std and seed count per (dataset, protocol, method, metric)."""
    sel = tidy[(tidy.selected) & (tidy.stage == stage)]
    g = sel.groupby(["dataset", "protocol", "method", "family", "metric"], sort=True)["value"]
    out = g.agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else float("nan"), n="count")
    return out.reset_index()


def best_baseline(summ: pd.DataFrame, metric: str) -> str | None:
    base = summ[(summ.metric == metric) & (summ.family == "baseline")]
    if base.empty:
        return None
    return str(base.sort_values("mean", ascending=lower_is_better(metric), kind="stable").iloc[0]["method"])


@dataclass
class Table:
    rows: list[str]                            # methods
    columns: list[str]                         # metrics
    cells: dict[tuple[str, str], dict]         # (method, metric) -> mean, std, n, best, reference, t
    n_seeds: int = 0

    def cell(self, row: str, col: str) -> dict | None:
        return self.cells.get((row, col))


def comparison(tidy: pd.DataFrame, per_user: pd.DataFrame | None, metrics: list[str], dataset: str, protocol: str,
               alpha: float = 0.05, reference: str | None = None, primary: str | None = None) -> tuple[Table, dict]:
    """A table for one (dataset, protocol): rows methods, columns metrics; cells are dicts for rendering. The
    users-within-seed bootstrap (shown in the Δ table) runs for the ``primary`` metric only (default: all)."""
    summ = summary(tidy[(tidy.dataset == dataset) & (tidy.protocol == protocol)])
    metrics = [m for m in metrics if m in set(summ.metric)]
    methods = list(dict.fromkeys(summ.sort_values(["family", "method"]).method))
    cells: dict[tuple[str, str], dict] = {}
    info = {"reference": {}, "tests": []}
    pu = None
    if per_user is not None and not per_user.empty:
        pu = per_user[(per_user.dataset == dataset) & (per_user.protocol == protocol)]
    for metric in metrics:
        col = summ[summ.metric == metric].set_index("method")
        best = col["mean"].idxmin() if lower_is_better(metric) else col["mean"].idxmax()
        ref = reference if reference in set(col.index) else best_baseline(summ, metric)
        info["reference"][metric] = ref
        sig = {}
        if pu is not None and ref is not None:
            tests = compare(pu, ref, metric, alpha=alpha, user_ci=primary is None or metric == primary)
            if not tests.empty:
                info["tests"].append(tests.assign(dataset=dataset, protocol=protocol))
                sig = dict(zip(tests.method, tests.significant))
        for m in methods:
            if m not in col.index:
                continue
            r = col.loc[m]
            cells[(m, metric)] = {"mean": r["mean"], "std": r["std"], "n": int(r["n"]), "best": m == best,
                                  "reference": m == ref, "t": bool(sig.get(m, False))}
    n_seeds = int(summ.n.max()) if not summ.empty else 0
    return Table(rows=methods, columns=metrics, cells=cells, n_seeds=n_seeds), info


def _fmt(c, latex: bool) -> str:
    if not isinstance(c, dict):
        return "–" if not latex else "--"
    pm = " ± " if not latex else " $\\pm$ "
    core = f"{c['mean']:.4f}" + (f"{pm}{c['std']:.4f}" if c["n"] > 1 and np.isfinite(c["std"]) else "")
    marks = T_MARK if c["t"] else ""
    if latex:
        marks = marks.replace(T_MARK, "$^*$")
        if c["best"]:
            core = f"\\textbf{{{core}}}"
        if c["reference"]:
            core = f"\\underline{{{core}}}"
    else:
        if c["best"]:
            core = f"**{core}**"
        if c["reference"]:
            core = f"<u>{core}</u>"
    return core + marks


def legend(table: Table) -> str:
    return LEGEND if table.n_seeds > 1 else LEGEND_ONE_SEED


def delta_table(tests: pd.DataFrame, metric: str, title: str) -> str:
    """Markdown: each method against the reference on ``metric``: Δ and relative Δ with 95 % intervals, the
    seed-level p (Holm) and effect size d_z, and the user-level p combined over seeds (Holm)."""
    t = tests[tests.metric == metric] if not tests.empty else tests
    if t.empty:
        return ""
    ref = t.reference.iloc[0]
    lines = [f"#### {title}: {metric} against {ref}", "",
             "| method | Δ [95 % CI] | relative Δ [95 % CI] | p seeds (Holm) | d_z | p users (Holm) | seeds |",
             "|---|---|---|---|---|---|---|"]
    # largest Δ first; Δs equal to 1e-10 (two implementations of one baseline differ in the last bits of their
    # float sums) by name, so the order never depends on rounding noise or on the order of the comparisons
    order = t.assign(_delta=t.delta.round(10)).sort_values(["_delta", "method"], ascending=[False, True], kind="stable")
    for _, r in order.iterrows():
        seed_p = "–" if np.isnan(r.seed_p_holm) else f"{r.seed_p_holm:.2g}" + (T_MARK if r.significant else "")
        d_z = "–" if np.isnan(r.d_z) else f"{r.d_z:+.2f}"
        lines.append(f"| {r.method} | {r.delta:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] | "
                     f"{100 * r.rel_delta:+.1f} % [{100 * r.rel_ci_low:+.1f}, {100 * r.rel_ci_high:+.1f}] | {seed_p} | "
                     f"{d_z} | {r.user_p_holm:.2g} | {r.n_seeds} |")
    lines += ["", "_Δ = method − reference, mean over seeds of the per-seed mean differences; 95 % interval across "
                  "splits: Student t on the per-seed differences (one seed: bootstrap over users; docs/statistics.md); "
                  "p seeds: paired t-test on per-seed means; p users: per-seed paired t-tests over users combined "
                  "(Stouffer) — evidence on these splits only. Only p seeds marks the main table._", ""]
    return "\n".join(lines)


def to_markdown(table: Table, title: str) -> str:
    head = "| method | " + " | ".join(table.columns) + " |"
    sep = "|---|" + "---|" * len(table.columns)
    body = [f"| {m} | " + " | ".join(_fmt(table.cell(m, c), False) for c in table.columns) + " |" for m in table.rows]
    return f"### {title}\n\n" + "\n".join([head, sep, *body]) + f"\n\n_{legend(table)}_\n"


#: metric columns a LaTeX table shows: beyond ~5 "mean ± std" columns, fitting the page width shrinks the text below
#: legibility (the rendered paper showed it: multi-task and trade-off tables have 12-16 metrics)
LATEX_COLUMNS = 5


def to_latex(table: Table, title: str, label: str, max_columns: int = LATEX_COLUMNS) -> str:
    """The table for the paper: the first ``max_columns`` metrics (the grid's order, its primary metric first); the
    caption says when metrics are left out (the Markdown table, tables/results.md, has them all)."""
    esc = lambda s: str(s).replace("_", "\\_").replace("@", "@").replace("%", "\\%")  # noqa: E731
    n_all = len(table.columns)
    table = dataclasses.replace(table, columns=table.columns[:max_columns])
    cols = "l" + "r" * len(table.columns)
    text = esc(legend(table)).replace("±", "$\\pm$").replace(T_MARK, "$^*$").replace(" < ", " $<$ ")
    if n_all > len(table.columns):
        text = text.rstrip(".") + f". The first {len(table.columns)} of {n_all} metrics; every metric: the grid's " \
            "tables/results.md."
    lines = ["\\begin{table}[!htbp]", "\\centering", "\\small", f"\\caption{{{esc(title)}. {text}}}",
             f"\\label{{{label}}}", "\\resizebox{\\linewidth}{!}{%", f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
             "method & " + " & ".join(esc(c) for c in table.columns) + " \\\\", "\\midrule"]
    for m in table.rows:
        lines.append(esc(m) + " & " + " & ".join(_fmt(table.cell(m, c), True) for c in table.columns) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}}", "\\end{table}"]
    return "\n".join(lines) + "\n"
