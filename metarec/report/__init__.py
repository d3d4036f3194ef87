"""Reports: export a grid's results into ``results/<grid>/`` (tidy table + selected per-user values + meta), then
build tables and figures from that folder alone — so committed results regenerate the paper without any run."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from metarec.bench.store import TIDY_COLUMNS, RunStore, export_runs, read_json, read_parquet, write_table
from metarec.report import plots, tables, tuning
from metarec.utils import atomic_write_json, atomic_write_text

RESULTS = Path("results")
FAILURE_COLUMNS = ["dataset", "protocol", "method", "seed", "run", "reason"]


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
                                method=r.method, seed=r.seed, run=r.run))
    if frames:
        pd.concat(frames, ignore_index=True).to_parquet(out / "per_user.parquet", index=False)
    export_runs(store, list(sel.run), out)   # with per_user.parquet: a new machine's grid resumes from these
    trials = (read_parquet(store.root / "trials.parquet", "rerun `metarec bench` to rewrite it")
              if (store.root / "trials.parquet").is_file() else None)
    if trials is not None:  # a tuned grid: its trials table and the studies' database (resumable, inspectable)
        write_table(trials, out, stem="trials")
        db = store.root / "tuning.db"
        if db.is_file():
            _copy_sqlite(db, out / "tuning.db")
    code = code_versions(write_cards(sel, store, out, trials))
    failures = _failures(store)
    if not failures.empty or (out / "failures.csv").is_file():
        atomic_write_text(out / "failures.csv", failures.to_csv(index=False))
    atomic_write_json(out / "meta.json", {"grid": grid.name, "valid_metric": grid.valid_metric,
                                          "metrics": grid.metrics, "seeds": grid.seeds,
                                          "reference": grid.reference, "summaries": list(grid.summaries),
                                          "methods": list(grid.methods), "excluded": grid.excluded_cells(),
                                          "grid_file": str(grid.path) if grid.path else None,
                                          "code_versions": code})
    return out


def code_versions(results) -> dict[str, int]:
    """How many of the runs each code version trained: ``<revision[:12]> sources <sha256[:12]>`` (+ " uncommitted",
    + " changed while running") from the run's recorded code identity, or ``<revision[:12]> (unchecked)`` for a run
    recorded before that existed (HEAD at its end, which a long-lived worker may not have run)."""
    counts: dict[str, int] = {}
    for r in results:
        code = r.get("code")
        if code is None:
            label = f"{(r.get('git_revision') or 'unknown')[:12]} (unchecked)"
        else:
            label = f"{(code.get('revision') or 'unknown')[:12]} sources {code['source_sha256'][:12]}"
            label += " uncommitted" if code.get("uncommitted") else ""
            label += " changed while running" if code.get("changed_since_start") else ""
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items()))


def _code_line(result: dict) -> str:
    """The card's code line: the revision the run's process imported, and what would make it not that revision."""
    code = result.get("code")
    if code is None:   # runs from before session 10 recorded HEAD at run time, which a long-lived worker may not run
        return f"git `{result.get('git_revision') or 'unknown'}` (HEAD when the run ended, not checked against its code)"
    line = f"git `{code.get('revision') or 'unknown'}`, sources sha256 `{code['source_sha256'][:16]}`"
    if code.get("uncommitted"):
        line += " **with uncommitted changes**"
    if code.get("changed_since_start"):
        line += " **(the sources changed while its process ran: modules imported after that may differ)**"
    return line


def card(result: dict, trials: pd.DataFrame | None = None) -> str:
    """A run's reproducibility card (Markdown): what was split and how, what ran with which parameters and how they
    were chosen, on which code, libraries and machine, at what cost."""
    t = result.get("timings", {})
    m = result.get("machine", {})
    lines = [f"# Run {result.get('key', '?')}: {result['method']} on {result['dataset']} / {result['protocol']}, "
             f"seed {result['seed']}\n",
             "| | |", "|---|---|",
             f"| split | {result['protocol']} {json.dumps(result['protocol_params'], sort_keys=True)}, split seed "
             f"{result.get('split_seed', result['seed'])}, fingerprint `{result.get('split_fingerprint', '?')}` |",
             f"| parameters (resolved) | `{json.dumps(result.get('params', result['config_params']), sort_keys=True)}` |",
             f"| code | {_code_line(result)} |",
             f"| libraries | {', '.join(f'{k} {v}' for k, v in sorted(result.get('versions', {}).items()))} |",
             f"| machine | {m.get('cpu', 'not recorded')}, {m.get('cores', '?')} cores, {m.get('threads', '?')} "
             f"torch threads |",
             f"| cost | fit {t.get('fit_s', float('nan')):.1f} s, run wall {result.get('wall_s', float('nan')):.1f} s, "
             f"CPU {result.get('cpu_s', float('nan')):.1f} s, peak memory "
             + (f"{result['peak_rss_mb']:.0f} MiB ({result.get('peak_rss_scope', '?')})" if "peak_rss_mb" in result
                else "not recorded")
             + (f"; shared item-text artifacts it built: {result['artifact_build']['wall_s']:.1f} s wall, "
                f"{result['artifact_build']['cpu_s']:.1f} s CPU (not in the run's cost)"
                if (result.get("artifact_build") or {}).get("wall_s", 0) >= 0.05 else "") + " |",
             f"| test users | {result.get('test_users', '?')}; best epoch {result.get('best_epoch', '–')} of "
             f"{result.get('epochs_trained', '–')} |"]
    if result.get("reproduces"):   # an older run trained again and adopted because it matched bit for bit
        old = result["reproduces"]
        lines.append(f"| reproduced | trained again on {old.get('date', '?')} by the reproducibility audit, every "
                     f"metric and per-user value bit-identical to the run first recorded under git "
                     f"`{(old.get('git_revision') or '?')[:12]}` ({old.get('recorded', 'HEAD at its end')}); code, "
                     "machine and cost above are the retraining's |")
    if result.get("copied_from"):   # trained once, by another grid (or this one under a longer metric list)
        src = result["copied_from"]
        lines.append(f"| trained as | run `{src.get('run')}` of grid `{src.get('grid')}` (the same training; copied "
                     "with this grid's metrics) |")
    if trials is not None and not trials.empty:
        chosen = trials[trials.selected]
        lines.append(f"| tuning | study `{trials.study.iloc[0]}`: {len(trials)} trials "
                     f"({int((trials.state == 'PRUNED').sum())} pruned, {int((trials.state == 'FAIL').sum())} failed), "
                     f"{trials.cpu_s.fillna(trials.wall_s).sum():.0f} s of trial run time; selected trial "
                     + (f"{int(chosen.number.iloc[0])} (valid {chosen.metric.iloc[0]} {chosen.value.iloc[0]:.4f})"
                        if len(chosen) else "none") + " |")
    else:
        lines.append("| tuning | none: the grid ran this configuration as given |")
    test = result.get("metrics", {}).get("test", {})
    lines += ["", "Test metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items()
                                               if isinstance(v, (int, float))), ""]
    return "\n".join(lines)


def write_cards(selected: pd.DataFrame, store: RunStore, out: Path, trials: pd.DataFrame | None) -> list[dict]:
    """``cards/<run key>.md`` for every run a table shows (the selected test runs); ``trials``: the grid's trials
    table, or None for an untuned grid. Returns those runs' results (read once, also for :func:`code_versions`)."""
    folder = out / "cards"
    results = []
    for r in selected.itertuples():
        result = store.load_result(r.run)
        results.append(result)
        mine = None
        if trials is not None:
            mine = trials[(trials.dataset == r.dataset) & (trials.protocol == r.protocol)
                          & (trials.method == r.method)]
            if "protocol_params" in mine.columns and r.protocol_params in set(mine.protocol_params):
                mine = mine[mine.protocol_params == r.protocol_params]
        atomic_write_text(folder / f"{r.run}.md", card(result, mine))
    shown = set(selected.run)
    for stale in folder.glob("*.md") if folder.is_dir() else []:   # a run no table shows any more (deleted, rerun)
        if stale.stem not in shown:
            stale.unlink()
    return results


def _failures(store: RunStore) -> pd.DataFrame:
    """The grid's runs that failed and have not succeeded since (a success removes the record)."""
    rows = []
    for path in sorted(store.failed.glob("*.json")) if store.failed.is_dir() else []:
        f = store.failure(path.stem) or {}
        spec = f.get("spec") or {}
        rows.append({"dataset": spec.get("dataset", "?"), "protocol": spec.get("protocol", "?"),
                     "method": spec.get("method", "?"), "seed": spec.get("seed", "?"), "run": path.stem,
                     "reason": str(f.get("reason", "")).splitlines()[0][:200] if f.get("reason") else ""})
    return pd.DataFrame(rows, columns=FAILURE_COLUMNS)


def _selected_params(tidy: pd.DataFrame, dataset: str, protocol: str) -> str:
    """Markdown lines: the hyper-parameters each method's row was run with (the selected configuration)."""
    sel = tidy[tidy.selected & (tidy.dataset == dataset) & (tidy.protocol == protocol)]
    lines = []
    for method, params in sel.drop_duplicates("method")[["method", "params"]].itertuples(index=False):
        p = json.loads(params) if params else {}
        shown = ", ".join(f"{k}={v}" for k, v in sorted(p.items()) if k != "progress_bar") or "defaults"
        lines.append(f"- {method}: {shown}")
    return "Selected hyper-parameters (chosen on validation; the rest at their defaults):\n\n" + "\n".join(lines) + "\n"


def _failed_lines(failures: pd.DataFrame, dataset: str, protocol: str) -> str:
    f = failures[(failures.dataset == dataset) & (failures.protocol == protocol)] if not failures.empty else failures
    if f.empty:
        return ""
    return ("**Failed runs, missing from the table above** (`metarec bench --retry-failed` reruns them):\n\n" +
            "\n".join(f"- {r.method} seed {r.seed}: {r.reason}" for r in f.itertuples()) + "\n")


def build(folder: Path, figures: bool = True) -> dict:
    """Tables (Markdown + LaTeX) and figures (PNG + PDF) from an exported results folder (``figures=False``: the
    tables and the summaries' tables only, when only the numbers are wanted: figure files cost ~0.5 s each)."""
    folder = Path(folder)
    recover = "regenerate the folder with `metarec report GRID` (or restore it from git)"
    meta = read_json(folder / "meta.json", recover)
    tidy = read_parquet(folder / "results.parquet", recover, TIDY_COLUMNS + ("selected",))
    pu_path = folder / "per_user.parquet"
    per_user = read_parquet(pu_path, recover) if pu_path.is_file() else None
    failures = pd.read_csv(folder / "failures.csv") if (folder / "failures.csv").is_file() \
        else pd.DataFrame(columns=FAILURE_COLUMNS)
    metric = meta["valid_metric"]
    metrics = [m for m in meta["metrics"] if m in set(tidy.metric)] + \
        sorted(set(tidy.metric) - set(meta["metrics"]))
    md, tex, tests = [f"# Results: {meta['grid']}\n"], [], []
    code = meta.get("code_versions") or {}
    if code:   # a reader can tell a table trained by one code version from one that mixes several
        md.append(f"Code: the {sum(code.values())} runs in these tables were trained by {len(code)} code version(s): "
                  + "; ".join(f"{label} ({n})" for label, n in code.items())
                  + " (revision and sources digest of the code each run's process imported; \"unchecked\": recorded "
                    "before runs recorded it, audit with benchmarks/reproduce_runs.py).\n")
    notes = sorted({n for n in tidy.get("eval_mode", pd.Series(dtype=str)).unique() if n != "full"})
    if notes:
        md.append(f"Evaluation mode: {', '.join(notes)} (sampled-negative ranking, not full ranking).\n")
    groups = tidy[tidy.selected][["dataset", "protocol"]].drop_duplicates().sort_values(["dataset", "protocol"])
    for _, g in _param_groups(tidy, groups):
        # one table per protocol setting when a grid varies protocol parameters (e.g. the K-shot sweep of
        # cold_start): values of different settings are never averaged together or paired with each other
        sub_tidy, sub_pu = tidy, per_user
        if g.setting:
            sub_tidy = tidy[tidy.protocol_params == g.protocol_params]
            if per_user is not None and "protocol_params" in per_user.columns:
                sub_pu = per_user[per_user.protocol_params == g.protocol_params]
        frame, info = tables.comparison(sub_tidy, sub_pu, metrics, g.dataset, g.protocol,
                                        reference=meta.get("reference"), primary=metric)
        title = f"{g.dataset} / {g.protocol}{' ' + g.setting if g.setting else ''} (test)"
        md.append(tables.to_markdown(frame, title))
        if info["tests"]:   # the primary metric against the reference: Δ, intervals, effect size, both tests
            md.append(tables.delta_table(pd.concat(info["tests"]), metric, title))
        md.append(_selected_params(sub_tidy, g.dataset, g.protocol))
        failed = _failed_lines(failures, g.dataset, g.protocol)
        if failed:
            md.append(failed)
        stem = f"{g.dataset}_{g.protocol}{'_' + g.setting if g.setting else ''}".replace("-", "_").replace("=", "")
        if g.setting:
            info["tests"] = [t.assign(protocol_params=g.protocol_params) for t in info["tests"]]
        # the grid in the label: two grids of one paper have tables of the same dataset and protocol
        tex_text = tables.to_latex(frame, title, f"tab:{meta['grid']}:{stem}")
        atomic_write_text(folder / "tables" / f"{stem}.tex", tex_text)
        tex.append(f"tables/{stem}.tex")
        tests += info["tests"]
    shown = set(map(tuple, groups[["dataset", "protocol"]].to_numpy()))
    for (ds, proto), _ in failures.groupby(["dataset", "protocol"]) if not failures.empty else []:
        if (ds, proto) not in shown:   # a cell where every run failed has no table to sit under
            md.append(f"## {ds} / {proto}: no finished run\n\n" + _failed_lines(failures, ds, proto))
    atomic_write_text(folder / "tables" / "results.md", "\n".join(md))
    if tests:
        atomic_write_text(folder / "tables" / "significance.csv", pd.concat(tests).to_csv(index=False))
    with plots.figure_files(figures):   # figures=False: drawn but not written
        figs = plots.all_figures(tidy, metric, folder / "figures") if figures else {}
        if meta.get("summaries"):
            from metarec.report.summaries import SummaryContext, run_summaries

            ctx = SummaryContext(folder, tidy, per_user, meta)
            if "kshot" in meta["summaries"]:   # the summary draws the K-shot curve of every metric: not twice
                figs.pop("kshot", None)
            for name, files in run_summaries(meta["summaries"], ctx).items():
                figs[f"summary {name}"] = [f for f in files if f.suffix in (".png", ".pdf")] or \
                    f"tables: {', '.join(str(f.relative_to(folder)) for f in files)}"
        if (folder / "trials.parquet").is_file():
            tuned = tuning.write(read_parquet(folder / "trials.parquet", recover), folder)
            figs["budget"] = tuned["figures"]
    return {"markdown": folder / "tables" / "results.md", "latex": tex, "figures": figs}


def save_studies(store: RunStore, out: Path) -> list[str]:
    """Copy a grid's live tuning database into ``out`` (``tuning.db``) with ``trials_so_far.csv`` (every trial of
    every study: state, value, parameters, run time), and its finished confirm and untuned runs
    (``runs_so_far.jsonl.gz`` + ``per_user_so_far.parquet``); returns one summary line per study. ``metarec bench``
    on a machine without the run store adopts both (``bench.tune.adopt_committed_studies``,
    ``bench.store.adopt_committed_runs``)."""
    import optuna

    from metarec.errors import ConfigError

    db = store.root / "tuning.db"
    if not db.is_file():
        raise ConfigError(f"no tuning studies in {store.root}: is it a tuned grid, and has `metarec bench` run it?")
    out.mkdir(parents=True, exist_ok=True)
    _copy_sqlite(db, out / "tuning.db")
    # the finished runs that are not trials (confirm runs, untuned cells): a new machine restores them instead of
    # recomputing them (``bench.store.adopt_committed_runs``); trials live on in the studies
    finished = [p.parent.name for p in store.runs.glob("*/result.json")]
    table_runs = [k for k in finished if not store.load_result(k).get("trial")]
    export_runs(store, table_runs, out, name="runs_so_far.jsonl.gz", per_user_name="per_user_so_far.parquet")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(out / 'tuning.db').resolve()}"
    rows, lines = [], []
    for summary in sorted(optuna.get_all_study_summaries(storage), key=lambda s: s.study_name):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        for t in trials:
            rows.append({"study": summary.study_name, "number": t.number, "state": t.state.name,
                         "value": t.value, "params": json.dumps(t.params, sort_keys=True, default=str),
                         "wall_s": t.user_attrs.get("wall_s"), "cpu_s": t.user_attrs.get("cpu_s")})
        states = pd.Series([t.state.name for t in trials], dtype=object).value_counts().to_dict()
        done = any(t.state.name == "COMPLETE" for t in trials)
        lines.append(f"{summary.study_name}: {len(trials)} trials {states}"
                     + (f", best {study.best_value:.4f} (trial {study.best_trial.number})" if done else ""))
    pd.DataFrame(rows, columns=["study", "number", "state", "value", "params", "wall_s", "cpu_s"]).to_csv(
        out / "trials_so_far.csv", index=False)
    return lines


def save_artifacts(grid, out: Path, root: Path | None = None) -> list[Path]:
    """Commit the run-store artifacts the grid keeps (``keep_artifacts:``; e.g. item-text embeddings, an hour of
    encoding each machine would otherwise repeat) for its datasets into ``out/artifacts/``; ``metarec bench`` on a
    new machine adopts them (``bench.artifacts.adopt_committed_artifacts``). ``root``: the run store's home (default
    ``metarec.utils.home()``, as ``metarec bench``). Returns the folders written."""
    from metarec.bench.artifacts import Artifacts, export_artifacts

    if not grid.keep_artifacts:
        return []
    return export_artifacts(Artifacts(root), grid.keep_artifacts, {d["name"] for d in grid.datasets}, out)


def _copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a live SQLite database (its backup API), written under a temporary name first."""
    import os
    import sqlite3

    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    a, b = sqlite3.connect(src), sqlite3.connect(tmp)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    os.replace(tmp, dst)


def _param_groups(tidy: pd.DataFrame, groups: pd.DataFrame):
    """(dataset, protocol) groups, split by protocol_params where the selected runs have several settings; each
    row gains ``setting`` (e.g. 'k_shot=5', '' when there is one setting) and ``protocol_params``."""
    from metarec.report.macros import varying_keys

    sel = tidy[tidy.selected]
    for i, g in groups.iterrows():
        params = sorted(sel[(sel.dataset == g.dataset) & (sel.protocol == g.protocol)].protocol_params.unique())
        if len(params) < 2:
            yield i, _with(g, "", params[0] if params else "")
            continue
        decoded = [json.loads(p) for p in params]
        varying = varying_keys(decoded)
        for p, d in sorted(zip(params, decoded), key=lambda x: [str(x[1].get(k)).zfill(8) for k in varying]):
            yield i, _with(g, "_".join(f"{k}={d.get(k)}" for k in varying), p)


def _with(row: pd.Series, setting: str, protocol_params: str) -> pd.Series:
    row = row.copy()
    row["setting"], row["protocol_params"] = setting, protocol_params
    return row
