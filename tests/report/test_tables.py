"""Report tables: the bold cell is the best one in the metric's own direction (higher for NDCG, lower for MAE,
also behind a task prefix), the reference is underlined, one-seed cells carry no spread."""
from __future__ import annotations

import pandas as pd

from metarec.report import tables


def tidy(values: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """{method: {metric: [value per seed]}} -> a tidy table of selected test rows."""
    rows = []
    for method, metrics in values.items():
        for metric, vals in metrics.items():
            for seed, v in enumerate(vals):
                rows.append({"run": f"{method}-{seed}", "dataset": "d", "protocol": "general", "protocol_params": "{}",
                             "method": method, "family": "baseline", "params": "{}", "seed": seed, "stage": "test",
                             "metric": metric, "value": v, "selected": True})
    return pd.DataFrame(rows)


def cell(md: str, method: str, column: int) -> str:
    row = next(line for line in md.splitlines() if line.startswith(f"| {method} "))
    return row.split("|")[column + 1].strip()


def test_bold_follows_each_metric_direction_and_one_seed_has_no_spread():
    t = tidy({"a": {"ndcg@10": [0.30, 0.32], "mae": [0.90, 0.92], "rating/user_mae": [0.70, 0.72]},
              "b": {"ndcg@10": [0.20, 0.22], "mae": [0.80, 0.82], "rating/user_mae": [0.60, 0.62]},
              "c": {"ndcg@10": [0.25, 0.27], "mae": [0.85, 0.87], "rating/user_mae": [0.90, 0.92]}})
    frame, info = tables.comparison(t, None, ["ndcg@10", "mae", "rating/user_mae"], "d", "general", reference="c")
    md = tables.to_markdown(frame, "d / general")
    assert cell(md, "a", 1).startswith("**0.3100")          # higher is better: a
    assert cell(md, "b", 2).startswith("**0.8100")          # lower is better: b, not the worst (a)
    assert cell(md, "b", 3).startswith("**0.6100")          # lower is better behind a task prefix too
    assert not any(cell(md, m, 2).startswith("**") for m in ("a", "c"))
    assert not any(cell(md, m, 1).startswith("**") for m in ("b", "c"))
    assert cell(md, "c", 1).startswith("<u>") and info["reference"]["ndcg@10"] == "c"
    assert "±" in cell(md, "a", 1)
    one = tables.comparison(t[t.seed == 0], None, ["ndcg@10"], "d", "general", reference="c")[0]
    assert "±" not in tables.to_markdown(one, "one seed")
    latex = tables.to_latex(frame, "d / general", "tab:x")
    assert "\\textbf{0.8100" in latex and "\\textbf{0.9100" not in latex
    assert "first" not in latex                           # three metrics: all shown
    narrow = tables.to_latex(frame, "d / general", "tab:x", max_columns=2)   # the paper's width limit, met
    assert "method & ndcg@10 & mae \\\\" in narrow and "user\\_mae" not in narrow
    assert "The first 2 of 3 metrics; every metric: the grid's tables/results.md." in narrow


def test_delta_rows_by_delta_and_equal_deltas_by_name():
    """Largest Δ first; two Δs equal up to float noise (two implementations of one baseline) in name order, whatever
    order the comparisons arrive in and whichever is larger in the last bits."""
    import numpy as np

    def row(method, delta):
        return {"metric": "ndcg@10", "reference": "ref", "method": method, "delta": delta, "ci_low": delta - 0.01,
                "ci_high": delta + 0.01, "rel_delta": delta, "rel_ci_low": delta, "rel_ci_high": delta,
                "seed_p_holm": np.nan, "significant": False, "d_z": np.nan, "user_p_holm": 0.5, "n_seeds": 1}

    tests = pd.DataFrame([row("zeta", -0.1), row("recbole:Pop", -0.13600000000000001), row("alpha", 0.2),
                          row("pop", -0.13599999999999998 - 1e-15)])
    md = tables.delta_table(tests, "ndcg@10", "t")
    order = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ") and "Δ" not in line]
    assert order == ["alpha", "zeta", "pop", "recbole:Pop"]
    assert order == [line.split("|")[1].strip() for line in tables.delta_table(tests.iloc[::-1], "ndcg@10", "t")
                     .splitlines() if line.startswith("| ") and "Δ" not in line]
