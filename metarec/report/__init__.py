"""Reports: export a grid's results into ``results/<grid>/`` (tidy table + selected per-user values + meta), then
build tables and figures from that folder alone — so committed results regenerate the paper without any run."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from metarec.bench.store import RunStore, write_table
from metarec.report import plots, tables
from metarec.utils import atomic_write_json, atomic_write_text

RESULTS = Path("results")


def export(grid, tidy: pd.DataFrame, store: RunStore, out: Path) -> Path:
    """Copy the tidy table and the per-user test values of the selected runs (for significance tests)."""
    out.mkdir(parents=True, exist_ok=True)
    write_table(tidy, out)
    frames = []
    sel = tidy[tidy.selected & (tidy.stage == "test")].drop_duplicates("run")
    for _, r in sel.iterrows():
        pu = store.per_user(r.run, "test")
        if pu is None:
            continue
        frames.append(pu.assign(dataset=r.dataset, protocol=r.protocol, protocol_params=r.protocol_params,
                                method=r.method, seed=r.seed))
    if frames:
        pd.concat(frames, ignore_index=True).to_parquet(out / "per_user.parquet", index=False)
    atomic_write_json(out / "meta.json", {"grid": grid.name, "valid_metric": grid.valid_metric,
                                          "metrics": grid.metrics, "seeds": grid.seeds,
                                          "grid_file": str(grid.path) if grid.path else None})
    return out


def build(folder: Path) -> dict:
    """Tables (Markdown + LaTeX) and figures (PNG + PDF) from an exported results folder."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    tidy = pd.read_parquet(folder / "results.parquet")
    pu_path = folder / "per_user.parquet"
    per_user = pd.read_parquet(pu_path) if pu_path.is_file() else None
    metric = meta["valid_metric"]
    metrics = [m for m in meta["metrics"] if m in set(tidy.metric)] + \
        sorted(set(tidy.metric) - set(meta["metrics"]))
    md, tex, tests = [f"# Results: {meta['grid']}\n"], [], []
    notes = sorted({n for n in tidy.get("eval_mode", pd.Series(dtype=str)).unique() if n != "full"})
    if notes:
        md.append(f"Evaluation mode: {', '.join(notes)} (sampled-negative ranking, not full ranking).\n")
    groups = tidy[tidy.selected][["dataset", "protocol"]].drop_duplicates().sort_values(["dataset", "protocol"])
    for _, g in groups.iterrows():
        frame, info = tables.comparison(tidy, per_user, metrics, g.dataset, g.protocol)
        title = f"{g.dataset} / {g.protocol} (test)"
        md.append(tables.to_markdown(frame, title))
        stem = f"{g.dataset}_{g.protocol}".replace("-", "_")
        tex_text = tables.to_latex(frame, title, f"tab:{stem}")
        atomic_write_text(folder / "tables" / f"{stem}.tex", tex_text)
        tex.append(f"tables/{stem}.tex")
        tests += info["tests"]
    atomic_write_text(folder / "tables" / "results.md", "\n".join(md))
    if tests:
        atomic_write_text(folder / "tables" / "significance.csv", pd.concat(tests).to_csv(index=False))
    figures = plots.all_figures(tidy, metric, folder / "figures")
    return {"markdown": folder / "tables" / "results.md", "latex": tex, "figures": figures}
