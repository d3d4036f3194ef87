"""A composition of grids: the paper's grid is the family grids and the tuned classical grid, run as they are and
reported as one leaderboard.

    name: paper
    grids: [../benchmarks/tuned-ml100k.yaml, ../benchmarks/meta_ml1m.yaml, ...]   # relative to this file
    deferred:                                  # members too large for this machine, each with its reason
      ../benchmarks/paper_rest.yaml: "~100 CPU-h: run it on a cluster (--executor ray --address ...)"
    exclude:                                   # registered methods no member runs, each with its reason
      "melu:*": the rating variant, tuned on MAE (benchmarks/meta_rating.yaml)

Why compose instead of one flat grid: the members differ where they must (MIND's models are tuned on AUC, the
cold-start grids sweep K with one study per method, each family its fixed parameters), and each member already
runs, resumes and shares studies and finished runs on its own (``tune.reuse``, ``store.RunDonors``). What the
composition adds is the check that they are comparable, and the one table:

- validation: every member loads and is tuned with the same budget (trials, budget_s, clock, pruner, start-up
  trials, parallel) on the same evaluation seeds; every registered method is run by a member or excluded with a
  reason (``uncovered``);
- ``metarec bench`` runs the members in order (each its own store, studies, resume); a ``deferred`` member is
  validated like the others but not run: its reason is printed, and it runs as it is where it fits
  (``metarec bench <member> --executor ray --address ...``, or with ``device: cuda`` in its params);
- ``metarec report`` puts the members' exported results folders (``results/<member>/``, written by their own
  ``metarec report``) together into ``results/<name>/``: the selected runs of every cell (dataset x protocol setting
  x method; a cell two members share is taken from the first that has it, ``sources.csv`` says which), their
  per-user values and reproducibility cards, then the report and the ``leaderboard`` summary on top. A deferred
  member's results join once its folder exists (after every member's: it never displaces one); until then the
  leaderboard names it with its reason. Splits are
  persisted by content, so the same dataset, protocol, parameters and seed are the same split in every member: rows
  of different members are paired by user like rows of one grid.
"""
from __future__ import annotations

import fnmatch
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from metarec.errors import ConfigError

TOP_KEYS = {"name", "grids", "deferred", "exclude", "summaries"}
#: the columns of a member's ``trials.csv`` its compute is counted from
TRIAL_COST_COLUMNS = ("study", "number", "cpu_s", "wall_s")
#: what must agree between members for their rows to share a table
BUDGET = ("trials", "budget_s", "clock", "pruner", "startup_trials", "parallel")


@dataclass
class Composite:
    name: str
    path: Path | None
    members: list  # list[Grid], in the order their rows take precedence
    exclude: dict[str, str] = field(default_factory=dict)
    summaries: tuple = ("leaderboard",)
    deferred: list = field(default_factory=list)   # [(Grid, why this machine does not run it)]

    @property
    def everyone(self) -> list:
        """Members, then deferred members: the order their rows take precedence in."""
        return list(self.members) + [g for g, _ in self.deferred]

    @property
    def seeds(self) -> list[int]:
        return self.members[0].seeds

    def methods(self) -> set[str]:
        return {m for g in self.everyone for m in g.methods}

    def excluded_cells(self) -> list[dict[str, str]]:
        """Cells a member's method ``exclude`` leaves out (``Grid.excluded_cells``, with their reasons) that no
        member runs."""
        run = {(d["name"], p["name"], json.dumps(p["params"], sort_keys=True), m)
               for g in self.everyone for d, p, m in g.cells()}
        out, seen = [], set()
        for g in self.everyone:
            for c in g.excluded_cells():
                key = (c["dataset"], c["protocol"], c["protocol_params"], c["method"])
                if key not in run and key not in seen:
                    seen.add(key)
                    out.append(c)
        return out

    def uncovered(self) -> list[str]:
        """Registered methods that no member runs and no ``exclude`` entry names."""
        from metarec.methods import list_methods

        run = self.methods()
        return [m for m in list_methods() if m not in run
                and not any(fnmatch.fnmatchcase(m, glob) for glob in self.exclude)]


def is_composite(raw: Any) -> bool:
    return isinstance(raw, dict) and "grids" in raw


def parse_composite(raw: dict, source: str = "<grid>", path: Path | None = None) -> Composite:
    from metarec.bench.grid import load_grid
    from metarec.methods import list_methods

    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)} of a composition of grids; valid: "
                          f"{', '.join(sorted(TOP_KEYS))}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: name: a composition needs a name (its results folder)")
    refs = raw["grids"]
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise ConfigError(f"{source}: grids: a non-empty list of grid files (relative to this file)")
    here = path.parent if path is not None else Path(".")

    def load(ref: str, where: str):
        member = Path(ref) if Path(ref).is_absolute() else here / ref
        try:
            return load_grid(member)
        except ConfigError as e:
            raise ConfigError(f"{source}: {where} ({ref}): {e}") from None

    members = [load(ref, f"grids[{i}]") for i, ref in enumerate(refs)]
    raw_deferred = raw.get("deferred") or {}
    if not isinstance(raw_deferred, dict):
        raise ConfigError(f"{source}: deferred: a mapping from grid file to the reason this machine does not run it")
    deferred = []
    for ref, reason in raw_deferred.items():
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{source}: deferred.{ref}: give the reason it is not run here (and its cost)")
        deferred.append((load(str(ref), f"deferred.{ref}"), reason.strip()))
    checked = [(f"grids[{i}]", g) for i, g in enumerate(members)] + \
        [(f"deferred.{ref}", g) for ref, (g, _) in zip(raw_deferred, deferred)]
    names = [g.name for _, g in checked]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: grids: a grid named twice ({', '.join(names)})")
    first = members[0]
    for where, g in checked:   # a deferred member is held to the same budget and seeds: it joins the same tables
        if g.tune is None:
            raise ConfigError(f"{source}: {where} ({g.name}): not tuned (no tune: block); every method of the "
                              "composition must have had the same tuning budget")
        diff = [f"{k} {getattr(g.tune, k)!r} (grids[0] {first.name}: {getattr(first.tune, k)!r})" for k in BUDGET
                if getattr(g.tune, k) != getattr(first.tune, k)]
        if diff:
            raise ConfigError(f"{source}: {where} ({g.name}): another tuning budget: {', '.join(diff)}")
        if g.seeds != first.seeds:
            raise ConfigError(f"{source}: {where} ({g.name}): evaluation seeds {g.seeds}, grids[0] "
                              f"{first.name}: {first.seeds}; a table pairs seeds, so they must be the same")
    exclude = raw.get("exclude") or {}
    if not isinstance(exclude, dict):
        raise ConfigError(f"{source}: exclude: a mapping from method name (or glob) to the reason it is left out")
    registered = list_methods()
    for glob, reason in exclude.items():
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"{source}: exclude.{glob}: give the reason the method is left out")
        if not any(fnmatch.fnmatchcase(m, str(glob)) for m in registered):
            raise ConfigError(f"{source}: exclude.{glob}: matches no registered method")
    summaries = raw.get("summaries", ["leaderboard"])
    if not isinstance(summaries, list):
        raise ConfigError(f"{source}: summaries: a list of summary names")
    comp = Composite(name=name, path=path, members=members,
                     exclude={str(k): v for k, v in exclude.items()}, summaries=tuple(summaries), deferred=deferred)
    missing = comp.uncovered()
    if missing:
        raise ConfigError(f"{source}: registered method(s) no member grid runs: {', '.join(missing)}; add them to a "
                          "member grid or to exclude: with the reason")
    return comp


def _committed_runs(path: Path) -> dict[str, dict]:
    """run key -> its split's fingerprint and its cost (``cpu_s``, ``wall_s``, the ``cpu`` model it ran on), from
    a results folder's committed runs (``store.export_runs``)."""
    import gzip

    from metarec.errors import DataError

    out = {}
    try:
        with gzip.open(path, "rt") as f:
            for line in f:
                if line.strip():
                    entry = json.loads(line)
                    result = entry.get("result") or {}
                    out[entry["key"]] = {"fingerprint": (entry.get("config") or {}).get("split_fingerprint"),
                                         "cpu_s": result.get("cpu_s"), "wall_s": result.get("wall_s"),
                                         "cpu": (result.get("machine") or {}).get("cpu")}
    except (OSError, EOFError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"damaged ({type(e).__name__}: {e}): rerun `metarec report` to rewrite it", path) from None
    return out


def _seconds(value) -> float:
    return float(value) if isinstance(value, (int, float)) and value == value else 0.0


def compute_spent(runs: dict[str, dict], trials: pd.DataFrame) -> dict[str, Any]:
    """What the composition cost: every finished run of the exported members (confirm runs, and a grid's
    configurations where it searches a grid instead of tuning) and every tuning trial (each study's ``trials.csv``
    rows), each counted once however many members share it (runs by key, trials by study and number). CPU time is
    the process's, all threads, as measured on the machine that ran it (``cpus``: runs per CPU model); a run
    recorded without it counts its wall time (``runs_wall_only``)."""
    cpu = sum(_seconds(r["cpu_s"]) if r["cpu_s"] is not None else _seconds(r["wall_s"]) for r in runs.values())
    wall = sum(_seconds(r["wall_s"]) for r in runs.values())
    cpus: dict[str, int] = {}
    for r in runs.values():
        cpus[r["cpu"] or "unknown"] = cpus.get(r["cpu"] or "unknown", 0) + 1
    trials = trials.drop_duplicates(["study", "number"])   # always has TRIAL_COST_COLUMNS (compose_results)
    trial_cpu = float(pd.to_numeric(trials["cpu_s"], errors="coerce").fillna(0).sum())
    trial_wall = float(pd.to_numeric(trials["wall_s"], errors="coerce").fillna(0).sum())
    return {"runs": len(runs), "run_cpu_h": cpu / 3600, "run_wall_h": wall / 3600,
            "runs_wall_only": sum(r["cpu_s"] is None for r in runs.values()),
            "trials": len(trials), "studies": int(trials.study.nunique()),
            "trial_cpu_h": trial_cpu / 3600, "trial_wall_h": trial_wall / 3600,
            "cpu_h": (cpu + trial_cpu) / 3600, "cpus": dict(sorted(cpus.items()))}


def compose_results(comp: Composite, results: Path, out: Path) -> dict[str, Any]:
    """``out`` = the members' exported folders (``results/<member>/``) as one results folder (see the module doc).
    Members without an exported folder (or one exported before runs were, whose splits are unknown) are listed in
    the returned ``missing`` and in meta.json; rows of the same dataset, protocol setting and seed must come from one
    split (by fingerprint), else one ConfigError naming the cell and both members. Nothing is trained here."""
    from metarec.bench.store import RUNS_FILE, TIDY_COLUMNS, read_parquet, write_table
    from metarec.utils import atomic_write_json, atomic_write_text

    cell = ["dataset", "protocol", "protocol_params", "method"]
    tidy_parts, pu_parts, sources, missing = [], [], [], []
    taken: set[tuple] = set()
    out.mkdir(parents=True, exist_ok=True)
    (out / "cards").mkdir(exist_ok=True)
    fingerprints: dict[tuple, tuple[str, str]] = {}   # (dataset, protocol, params, seed) -> (fingerprint, grid)
    spent_runs: dict[str, dict] = {}                    # every member's finished runs and trials: compute_spent
    spent_trials: list[pd.DataFrame] = []
    for g in comp.everyone:
        folder = results / g.name
        if not (folder / "meta.json").is_file() or not (folder / RUNS_FILE).is_file():
            missing.append(g.name)   # not reported, or reported before runs were exported (splits unknown)
            continue
        recover = f"rerun `metarec report {g.path}` to rewrite it"
        committed = _committed_runs(folder / RUNS_FILE)
        spent_runs.update(committed)
        if (folder / "trials.csv").is_file():
            spent_trials.append(pd.read_csv(folder / "trials.csv", usecols=lambda c: c in TRIAL_COST_COLUMNS)
                                .reindex(columns=list(TRIAL_COST_COLUMNS)))
        split_of = {k: v["fingerprint"] for k, v in committed.items() if v["fingerprint"]}
        tidy = read_parquet(folder / "results.parquet", recover, TIDY_COLUMNS + ("selected",))
        sel = tidy[tidy.selected]
        mine = sel[cell].drop_duplicates()
        keep = [tuple(r) not in taken for r in mine.to_numpy()]
        cells = mine[keep]
        taken |= set(map(tuple, cells.to_numpy()))
        rows = sel.merge(cells, on=cell)
        if rows.empty:
            continue
        for r in rows.drop_duplicates("run").itertuples(index=False):
            where = (r.dataset, r.protocol, r.protocol_params, int(r.seed))
            fp = split_of.get(r.run)
            if fp is None:
                raise ConfigError(f"{folder / RUNS_FILE}: run {r.run} ({r.method}) is not in it: {recover}")
            seen = fingerprints.setdefault(where, (fp, g.name))
            if seen[0] != fp:   # same protocol and seed, another split (e.g. another protocol version)
                raise ConfigError(f"{comp.name}: {r.dataset}/{r.protocol} {r.protocol_params} seed {r.seed}: "
                                  f"{g.name}'s runs were trained on split {fp[:12]}, {seen[1]}'s on {seen[0][:12]}; "
                                  "rows on different splits cannot share a table: rerun the older grid")
        tidy_parts.append(rows)
        for c in cells.itertuples(index=False):
            sources.append({**c._asdict(), "grid": g.name})
        runs = set(rows.run)
        pu_path = folder / "per_user.parquet"
        if pu_path.is_file():
            pu = read_parquet(pu_path, recover, ("run",))
            pu_parts.append(pu[pu.run.isin(runs)])
        for run in runs:
            card = folder / "cards" / f"{run}.md"
            if card.is_file():
                shutil.copyfile(card, out / "cards" / card.name)
    if not tidy_parts:
        raise ConfigError(f"{comp.name}: no member has exported results under {results}/ (run `metarec report` on "
                          f"the member grids first: {', '.join(g.name for g in comp.members)})")
    tidy = pd.concat(tidy_parts, ignore_index=True)
    write_table(tidy, out)
    if pu_parts:
        pu = pd.concat(pu_parts, ignore_index=True)
        tmp = out / ".per_user.parquet.tmp"
        pu.to_parquet(tmp, index=False)
        tmp.replace(out / "per_user.parquet")
    atomic_write_text(out / "sources.csv", pd.DataFrame(sources, columns=cell + ["grid"]).to_csv(index=False))
    metrics = list(dict.fromkeys(m for g in comp.members for m in g.metrics if m in set(tidy.metric)))
    atomic_write_json(out / "meta.json", {
        "grid": comp.name, "valid_metric": comp.members[0].valid_metric, "metrics": metrics, "seeds": comp.seeds,
        "reference": None, "summaries": list(comp.summaries), "methods": sorted(set(tidy.method)),
        "grid_file": str(comp.path) if comp.path else None, "members": [g.name for g in comp.everyone],
        "members_missing": missing, "deferred": {g.name: reason for g, reason in comp.deferred},
        "excluded": comp.excluded_cells(), "excluded_methods": dict(comp.exclude),
        "compute": compute_spent(spent_runs, pd.concat(spent_trials, ignore_index=True) if spent_trials
                                 else pd.DataFrame(columns=list(TRIAL_COST_COLUMNS)))})
    return {"folder": out, "missing": missing, "cells": len(sources)}
