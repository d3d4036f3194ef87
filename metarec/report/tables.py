"""Comparison tables (Markdown and LaTeX booktabs): mean ± std over seeds of the selected configuration per
method, best per column in bold, significance markers against the best baseline."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metarec.bench.store import lower_is_better
from metarec.report.stats import paired_tests

T_MARK, W_MARK = "*", "†"
LEGEND = (f"mean ± std over seeds; best per column in bold; {T_MARK} / {W_MARK}: differs from the reference "
          "(underlined: the grid's reference method, else the best baseline) by a paired t-test / Wilcoxon "
          "signed-rank test on per-user values, Holm-corrected, p < 0.05")


def summary(tidy: pd.DataFrame, stage: str = "test") -> pd.DataFrame:
    """Selected configurations only: mean, std and seed count per (dataset, protocol, method, metric)."""
    sel = tidy[(tidy.selected) & (tidy.stage == stage)]
    g = sel.groupby(["dataset", "protocol", "method", "family", "metric"], sort=True)["value"]
    out = g.agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, n="count")
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
    cells: dict[tuple[str, str], dict]         # (method, metric) -> mean, std, n, best, reference, t, w

    def cell(self, row: str, col: str) -> dict | None:
        return self.cells.get((row, col))


def comparison(tidy: pd.DataFrame, per_user: pd.DataFrame | None, metrics: list[str], dataset: str, protocol: str,
               alpha: float = 0.05, reference: str | None = None) -> tuple[Table, dict]:
    """A table for one (dataset, protocol): rows methods, columns metrics; cells are dicts for rendering."""
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
            tests = paired_tests(pu, ref, metric)
            if not tests.empty:
                info["tests"].append(tests.assign(dataset=dataset, protocol=protocol))
                for _, t in tests.iterrows():
                    sig[t.method] = (t.t_p_holm < alpha, t.wilcoxon_p_holm < alpha)
        for m in methods:
            if m not in col.index:
                continue
            r = col.loc[m]
            cells[(m, metric)] = {"mean": r["mean"], "std": r["std"], "n": int(r["n"]), "best": m == best,
                                  "reference": m == ref, "t": sig.get(m, (False, False))[0],
                                  "w": sig.get(m, (False, False))[1]}
    return Table(rows=methods, columns=metrics, cells=cells), info


def _fmt(c, latex: bool) -> str:
    if not isinstance(c, dict):
        return "–" if not latex else "--"
    core = f"{c['mean']:.4f} ± {c['std']:.4f}" if not latex else f"{c['mean']:.4f} $\\pm$ {c['std']:.4f}"
    marks = (T_MARK if c["t"] else "") + (W_MARK if c["w"] else "")
    if latex:
        marks = marks.replace(W_MARK, "$^\\dagger$").replace(T_MARK, "$^*$")
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


def to_markdown(table: Table, title: str) -> str:
    head = "| method | " + " | ".join(table.columns) + " |"
    sep = "|---|" + "---|" * len(table.columns)
    body = [f"| {m} | " + " | ".join(_fmt(table.cell(m, c), False) for c in table.columns) + " |" for m in table.rows]
    return f"### {title}\n\n" + "\n".join([head, sep, *body]) + f"\n\n_{LEGEND}_\n"


def to_latex(table: Table, title: str, label: str) -> str:
    esc = lambda s: str(s).replace("_", "\\_").replace("@", "@").replace("%", "\\%")  # noqa: E731
    cols = "l" + "r" * len(table.columns)
    legend = esc(LEGEND).replace("±", "$\\pm$").replace(W_MARK, "$^\\dagger$").replace(T_MARK, "$^*$")
    lines = ["\\begin{table}[t]", "\\centering", "\\small", f"\\caption{{{esc(title)}. {legend}}}",
             f"\\label{{{label}}}", "\\resizebox{\\linewidth}{!}{%", f"\\begin{{tabular}}{{{cols}}}", "\\toprule",
             "method & " + " & ".join(esc(c) for c in table.columns) + " \\\\", "\\midrule"]
    for m in table.rows:
        lines.append(esc(m) + " & " + " & ".join(_fmt(table.cell(m, c), True) for c in table.columns) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}}", "\\end{table}"]
    return "\n".join(lines) + "\n"
