"""What the tuning budget bought: per dataset x protocol, budget curves (best validation metric so far against
trials and against trial run time, one line per method) and a table of each method's selected parameters, trials
run / pruned / failed and total tuning time. Reads ``trials.parquet`` (written by a tuned grid) alone."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from metarec.report.plots import TEXT_WIDTH_IN, _save, legend_below, legend_height_in, paper_style, plt
from metarec.utils import atomic_write_text


def best_so_far(trials: pd.DataFrame) -> pd.DataFrame:
    """One study's trials in order, with ``best`` = the best completed value up to each trial (NaN before the
    first completed one) and ``elapsed_s`` = cumulative trial run time."""
    t = trials.sort_values("number").reset_index(drop=True)
    ok = t.value.where(t.state == "COMPLETE")
    minimise = (t.direction == "minimize").any()
    t["best"] = (ok.cummin() if minimise else ok.cummax()).ffill()  # cum* leave NaN where a trial failed
    t["elapsed_s"] = t.wall_s.fillna(0.0).cumsum()
    # CPU seconds where recorded (what budget_clock: cpu counts), else the trial's wall time
    cpu = t.cpu_s.fillna(t.wall_s) if "cpu_s" in t else t.wall_s
    t["elapsed_cpu_s"] = cpu.fillna(0.0).cumsum()
    return t


def selected_table(trials: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (ds, proto, method), t in trials.groupby(["dataset", "protocol", "method"], sort=True):
        sel = t[t.selected]
        searched = json.loads(sel.searched.iloc[0]) if len(sel) else {}
        rows.append({"dataset": ds, "protocol": proto, "method": method,
                     "selected": ", ".join(f"{k}={_short(v)}" for k, v in sorted(searched.items())) or "(none completed)",
                     "valid": float(sel.value.iloc[0]) if len(sel) else float("nan"),
                     "trials": len(t), "pruned": int((t.state == "PRUNED").sum()),
                     "failed": int((t.state == "FAIL").sum()), "tuning_s": float(t.wall_s.fillna(0).sum()),
                     # CPU seconds (budget_clock: cpu); a trial recorded before cpu_s existed counts its wall time
                     "tuning_cpu_s": float((t.cpu_s.fillna(t.wall_s) if "cpu_s" in t else t.wall_s).fillna(0).sum()),
                     # a study this grid ran itself has none (read back from a table: NaN/None, not the text "None")
                     "adopted_from": _adopted_from(t),
                     "space": t.space.iloc[0]})
    return pd.DataFrame(rows)


def _adopted_from(trials: pd.DataFrame) -> str:
    """The grid a study was adopted from (tune.reuse), or "" when the grid ran it itself."""
    if "adopted_from" not in trials:
        return ""
    v = trials.adopted_from.iloc[0]
    return v if isinstance(v, str) else ""


def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


@paper_style
def budget_curves(trials: pd.DataFrame, folder: Path) -> list[Path]:
    out = []
    for (ds, proto), g in trials.groupby(["dataset", "protocol"], sort=True):
        fig, axes = plt.subplots(1, 2, figsize=(TEXT_WIDTH_IN, 2.7 + legend_height_in(g.method.nunique())), sharey=True)
        # one colour and line style per method: a 10-colour cycle would give two methods of a large grid one colour
        colours, styles = plt.get_cmap("tab20").colors, ("-", "--", ":", "-.")
        for i, (method, t) in enumerate(g.groupby("method", sort=True)):
            c = best_so_far(t)
            look = {"color": colours[i % len(colours)], "linestyle": styles[(i // len(colours)) % len(styles)]}
            if c.best.notna().any():
                axes[0].step(c.number + 1, c.best, where="post", label=method, **look)
                axes[1].step(c.elapsed_cpu_s / 60, c.best, where="post", label=method, **look)
        metric = g.metric.iloc[0]
        axes[0].set_xlabel("trials")
        axes[0].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        axes[1].set_xlabel("cumulative trial CPU time (min;\nwall time for trials recorded before CPU time was)")
        axes[0].set_ylabel(f"best valid {metric} so far")
        for ax in axes:
            ax.grid(alpha=0.3)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.suptitle(f"{ds} / {proto}: what the tuning budget bought")
        legend_below(fig, handles, labels)
        out += _save(fig, folder, f"budget_{ds}_{proto}".replace("-", "_"))
    return out


def write(trials: pd.DataFrame, folder: Path) -> dict:
    """tables/tuning.md + figures/budget_*.{png,pdf}."""
    folder = Path(folder)
    table = selected_table(trials)
    lines = ["# Tuning: selected parameters and what the budget bought\n",
             f"Metric: validation {trials.metric.iloc[0]} ({trials.direction.iloc[0]}), the mean over the tuning "
             "seeds; the selected trial's parameters were re-run on every evaluation seed.\n"]
    for (ds, proto), g in table.groupby(["dataset", "protocol"], sort=True):
        lines.append(f"\n## {ds} / {proto}\n")
        lines.append("| method | selected | valid | trials | pruned | failed | trial run time | CPU time |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for _, r in g.iterrows():
            valid = "" if np.isnan(r.valid) else f"{r.valid:.4f}"
            method = f"{r.method} (study of {r.adopted_from})" if r.adopted_from else r.method
            lines.append(f"| {method} | {r.selected} | {valid} | {r.trials} | {r.pruned} | {r.failed} | "
                         f"{r.tuning_s / 60:.1f} min | {r.tuning_cpu_s / 60:.1f} min |")
        lines.append(f"\nTotal trial run time: {g.tuning_s.sum() / 3600:.2f} h ({g.tuning_cpu_s.sum() / 3600:.2f} h "
                     "of CPU).")
        if g.adopted_from.astype(bool).any():
            lines.append("A study marked 'study of <grid>' ran in that grid (the same study: tune.reuse) and was "
                         "adopted here, not run again.")
    lines.append("\n## Search spaces\n")
    for (method, space), _ in table.groupby(["method", "space"], sort=True):
        lines.append(f"- {method}: " + ", ".join(f"{k} {v}" for k, v in json.loads(space).items()))
    md = folder / "tables" / "tuning.md"
    atomic_write_text(md, "\n".join(lines) + "\n")
    return {"markdown": md, "figures": budget_curves(trials, folder / "figures")}
