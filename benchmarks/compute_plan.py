"""What the tuned grids have cost so far and what they still need, in CPU-hours, from their studies and runs.

    python benchmarks/compute_plan.py [benchmarks/multitask.yaml ...]     (default: every tuned grid in benchmarks/)

Per cell (dataset x protocol setting x tuned method): its study's trials so far and their CPU time (the run store's
``tuning.db``, else the committed ``results/<grid>/tuning.db``, else a reused grid's), and an estimate of what is
left: the rest of the study's budget (``budget_s`` minus the trial time spent, plus one trial, since a trial started
inside the budget runs to its end) and the confirm runs neither in the store nor committed under ``results/<grid>/``
yet, nor finished in a reused grid's (those are copied: evaluation seeds x confirmed settings, each costed as the
study's mean trial). A cell whose method has no finished trial anywhere on that dataset is costed '?' (measure it:
one trial, e.g. `metarec bench GRID --probe`, which runs only each study's first trial); beside it, '~' gives an
estimate that is not a measurement: the same method's mean trial under the same protocol on the nearest-sized dataset
any committed study measured, scaled by the ratio of the two datasets' interactions (their cards' counts; training
cost grows about linearly with them, epochs to convergence aside). A cell whose trial hit the
run cap (`metarec bench --run-cap S`: stopped after S seconds) is costed '>' with the cap as a lower bound for its
runs and listed at the end as not fitting. Untuned cells (pop, random, ...) cost seconds and are left out. CPU time
is counted in the reference machine's CPU seconds, as the budgets count it (``metarec.bench.tune.CPU_SPEED``); the
closing line converts what is left to this machine's CPU.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import metarec  # noqa: E402,F401
from metarec.bench import load_grid  # noqa: E402
from metarec.bench.tune import cpu_speed  # noqa: E402
from metarec.methods.space import space_size  # noqa: E402
from metarec.utils import home, machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def studies_of(names: list[str]) -> dict[str, list]:
    """study name -> its trials (optuna FrozenTrial), from the first database found per grid."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict[str, list] = {}
    for name in names:
        for db in (home() / "grids" / name / "tuning.db", ROOT / "results" / name / "tuning.db"):
            if db.is_file():
                url = f"sqlite:///{db.resolve()}"
                for s in optuna.get_all_study_summaries(url, include_best_trial=False):
                    trials = optuna.load_study(study_name=s.study_name, storage=url).get_trials(deepcopy=False)
                    if len(trials) > len(out.get(s.study_name, [])):
                        out[s.study_name] = trials
                break
    return out


def measured_elsewhere() -> dict[tuple[str, str], dict[str, list[float]]]:
    """(method, protocol) -> dataset -> trial CPU seconds (reference machine), over every committed study
    (``results/*/tuning.db``) and every study in this machine's store: what ``scaled_estimate`` scales from."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out: dict = defaultdict(lambda: defaultdict(list))
    dbs = sorted(ROOT.glob("results/*/tuning.db")) + sorted((home() / "grids").glob("*/tuning.db"))
    for db in dbs:
        url = f"sqlite:///{db.resolve()}"
        for summary in optuna.get_all_study_summaries(url, include_best_trial=False):
            dataset, protocol, method = summary.study_name.split("/")[:3]
            for t in optuna.load_study(study_name=summary.study_name, storage=url).get_trials(deepcopy=False):
                if t.state.name in ("COMPLETE", "PRUNED") and cpu(t) > 0:
                    out[(method, protocol)][dataset].append(cpu(t))
    return out


def interactions(dataset: str) -> int | None:
    """The dataset's interaction count from its card (``expected``), without loading it."""
    from metarec.data.registry import get_card
    from metarec.errors import UnknownNameError

    try:
        return get_card(dataset).expected.get("interactions")
    except UnknownNameError:   # a derived dataset (e.g. a combination) has no card: no estimate
        return None


def scaled_estimate(measured: dict, method: str, protocol: str, dataset: str) -> tuple[float, str] | None:
    """(estimated CPU seconds of one trial, the dataset it is scaled from): the same method and protocol on the
    measured dataset nearest in interactions, its mean trial times the ratio of interactions; None without one."""
    size = interactions(dataset)
    known = [(d, costs) for d, costs in measured.get((method, protocol), {}).items()
             if d != dataset and interactions(d)]
    if not size or not known:
        return None
    ref, costs = min(known, key=lambda dc: abs(math.log(interactions(dc[0]) / size)))
    return sum(costs) / len(costs) * size / interactions(ref), ref


def _last_start(trials: list) -> datetime:
    return max((t.datetime_start for t in trials if t.datetime_start is not None), default=datetime.min)


def cpu(t) -> float:
    """A trial's CPU seconds in the reference machine's (``tune.CPU_SPEED``), as its study's budget counts them."""
    return float(t.user_attrs.get("cpu_s", t.user_attrs.get("wall_s", 0.0)) or 0.0) \
        * cpu_speed(t.user_attrs.get("cpu_model"))


def _results_of(name: str) -> dict[str, dict]:
    """run key -> result of every finished run of the grid: in its store, and committed under ``results/<name>/``
    (``store.COMMITTED_RUNS``), which ``metarec bench`` restores on a machine whose store lacks them instead of
    rerunning them, so they are done here too."""
    from metarec.bench.store import COMMITTED_RUNS, read_committed_runs

    out: dict[str, dict] = {}
    for runs_file, _ in COMMITTED_RUNS:
        path = ROOT / "results" / name / runs_file
        if path.is_file():
            out.update((entry["key"], entry["result"]) for entry in read_committed_runs(path))
    for p in (home() / "grids" / name / "runs").glob("*/result.json"):
        out[p.parent.name] = json.loads(p.read_text())
    return out


def finished_runs(name: str, fixed: dict[str, dict]) -> dict:
    """(dataset, protocol, protocol params, method) -> number of finished non-trial runs of the grid (``_results_of``)
    whose parameters include the method's fixed ones in ``fixed`` (a run from before a fixed parameter changed is
    not one of the cell's confirm runs)."""
    counts: dict = defaultdict(int)
    for r in _results_of(name).values():
        params = r.get("config_params", {})
        want = fixed.get(r["method"], {})
        if not r.get("trial") and all(params.get(k) == v for k, v in want.items()):
            counts[(r["dataset"], r["protocol"], json.dumps(r["protocol_params"], sort_keys=True), r["method"])] += 1
    return counts


def plan(path: Path) -> tuple[float, float, int]:
    grid = load_grid(path)
    if grid.tune is None:
        return 0.0, 0.0, 0
    from metarec.bench.tune import reused_grids, study_name, tuning_protocol

    names = [grid.name] + [g.name for g in reused_grids(grid)]
    studies = studies_of(names)
    # a finished run of a reused grid is copied, not trained (runner.RunDonors: same training, at least these
    # metrics; the lists are set up to match), so it counts as done here
    fixed = {m: dict(spec.get("fixed", {})) for m, spec in grid.methods.items()}
    done = finished_runs(grid.name, fixed)
    for other in names[1:]:
        for cell, n in finished_runs(other, fixed).items():
            done[cell] = max(done[cell], n)
    t = grid.tune
    spent_total = left_total = estimated_total = 0.0
    unknown = 0
    measured = None   # read once, when a cell needs it
    estimates: dict[str, float] = defaultdict(float)   # dataset -> estimated CPU-h of its unmeasured cells
    cells = defaultdict(list)   # (dataset, method, tuning setting) -> confirmed settings
    too_long: list[str] = []
    exclusions: dict[str, dict[str, str]] = {}   # method -> {dataset/protocol: reason}: the YAML that leaves them out
    all_cells = grid.cells()
    for d, proto, m in all_cells:
        if grid.is_tuned(m):
            share = t.share and set(t.share) <= set(proto["params"])
            key_params = {**proto["params"], **(t.share if share else {})}
            cells[(d["name"], proto["name"], json.dumps(key_params, sort_keys=True), m)].append(proto)
    n_settings = defaultdict(set)
    for ds, pname, params, _ in cells:
        n_settings[(ds, pname)].add(params)
    shown = path.relative_to(ROOT) if path.is_absolute() and path.is_relative_to(ROOT) else path
    print(f"\n## {grid.name} ({shown})\n")
    print("| dataset / protocol | method | trials | trial CPU min | left: study | left: confirm runs | est. left CPU min |")
    print("|---|---|---|---|---|---|---|")
    for (ds, pname, params, m), protos in cells.items():
        if grid.methods[m].get("teacher"):
            # a student's study name also hashes what its teacher's study selected: found by its readable prefix;
            # of several (an earlier teacher, a probe's provisional one), the one with the latest trial
            prefix = f"{ds}/{pname}/{m}/"
            trials = max((tr for n, tr in studies.items() if n.startswith(prefix)), key=_last_start, default=[])
        else:   # the study the tuner would open (a changed fixed parameter or space is a new, empty study)
            d = next(x for x in grid.datasets if x["name"] == ds)
            on = tuning_protocol(grid, d, protos[0], m, all_cells)
            trials = studies.get(study_name(grid, d, on, m, grid.methods[m]), [])
        costs = [cpu(x) for x in trials if x.state.name in ("COMPLETE", "PRUNED") and cpu(x) > 0]
        capped = [cpu(x) for x in trials if x.state.name == "FAIL" and "RunCapExceeded" in x.user_attrs.get("reason", "")]
        if capped and not costs:   # no run of this cell ever finished under the cap: its cost is a lower bound
            costs, over = capped, True
        else:
            over = False
        if not costs:   # the same method's trials on this dataset in any setting
            costs = [cpu(x) for n, tr in studies.items() if n.startswith(f"{ds}/") and n.split("/")[2] == m
                     for x in tr if cpu(x) > 0]
        spent = sum(cpu(x) for x in trials)
        n_trials = len(trials)
        mean = sum(costs) / len(costs) if costs else None
        tried = {json.dumps(x.params, sort_keys=True, default=str) for x in trials}
        ended = (t.trials is not None and n_trials >= t.trials) or (t.budget_s is not None and spent >= t.budget_s) \
            or len(tried) >= space_size(grid.methods[m]["space"])   # a finite space tried in full (Tuner.budget_left)
        study_left = 0.0 if ended else (None if mean is None else max(0.0, (t.budget_s or 0) - spent) + mean)
        n_confirm = sum(max(0, len(grid.seeds) - done.get((ds, pname, json.dumps(p["params"], sort_keys=True), m), 0))
                        for p in protos)
        confirm_left = None if mean is None else n_confirm * mean
        left = None if study_left is None or confirm_left is None else study_left + confirm_left
        spent_total += spent
        guess = ""
        if left is None:
            unknown += 1
            measured = measured_elsewhere() if measured is None else measured
            scaled = scaled_estimate(measured, m, pname, ds)
            if scaled is not None:   # the study's budget (or its trials, if fewer fit) and the confirm runs
                trial, ref = scaled
                cell = min((t.trials or 1) * trial, (t.budget_s or math.inf) + trial) + n_confirm * trial
                estimated_total += cell
                estimates[ds] += cell / 3600
                guess = f" (~{cell / 60:.0f}: {trial / 60:.0f} min a trial, scaled from {ref})"
        else:
            left_total += left
        fmt = (lambda v: "?" if v is None else f"{'>' if over else ''}{v / 60:.0f}")
        if over:
            too_long.append(f"{ds} / {pname} / {m}: one run > {mean / 60:.0f} CPU-min; its {n_confirm} confirm runs "
                            f"> {n_confirm * mean / 3600:.1f} CPU-h")
            when = max((x.datetime_start for x in trials if x.datetime_start), default=None)
            cpus = sorted({x.user_attrs.get("cpu_model", "?") for x in trials})
            room = (f"its study's {t.budget_s / 60:.0f} CPU-min budget holds at most {int(t.budget_s // mean) + 1} "
                    "such trials and " if t.budget_s else "")
            exclusions.setdefault(m, {})[f"{ds}/{pname}"] = (
                f"does not fit on 2 CPU cores: one trial was stopped by the run cap after {mean / 60:.1f} reference "
                f"CPU-min; {room}its {n_confirm} confirm runs need > {n_confirm * mean / 3600:.1f} CPU-h (measured "
                f"{when:%Y-%m-%d} on {', '.join(cpus)})")
        varying = {k: v for k, v in json.loads(params).items()
                   if len({json.dumps(json.loads(q).get(k)) for q in n_settings[(ds, pname)]}) > 1}
        label = pname + "".join(f" {k}={v}" for k, v in varying.items())
        print(f"| {ds} / {label} | {m} | {n_trials} | {spent / 60:.0f} | {fmt(study_left)} | {n_confirm} runs, "
              f"{fmt(confirm_left)} | {fmt(left)}{guess} |")
    if too_long:
        print("\nCells over the run cap (not run to the end on this machine; lower bounds):\n")
        print("\n".join(f"- {line}" for line in too_long))
        print("\nTo leave them out with their reasons (merge into the grid's methods; each runs as it is on a larger "
              "machine once removed):\n\n```yaml\n" + yaml.safe_dump({"methods": {m: {"exclude": e} for m, e in
                                                                              exclusions.items()}},
                                                                 sort_keys=False, width=1000) + "```")
    print(f"\nTuning CPU spent: {spent_total / 3600:.1f} h; estimated CPU left: {left_total / 3600:.1f} h"
          + (f" + {unknown} cell(s) not yet measured (at least their budgets: {unknown * (t.budget_s or 0) / 3600:.1f} h,"
             " plus their confirm runs)" if unknown else ""))
    if estimates:
        print(f"Not measured, scaled from other datasets (~): {estimated_total / 3600:.1f} CPU-h ("
              + ", ".join(f"{ds} {h:.1f}" for ds, h in estimates.items()) + ")")
    return spent_total, left_total, unknown


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grids", nargs="*", type=Path)
    args = ap.parse_args()
    grids = args.grids or sorted((ROOT / "benchmarks").glob("*.yaml"))
    total_spent = total_left = 0.0
    total_unknown = 0
    for path in grids:
        s, left, u = plan(path)
        total_spent, total_left, total_unknown = total_spent + s, total_left + left, total_unknown + u
    print(f"\n**All grids: tuning CPU spent {total_spent / 3600:.1f} h; estimated CPU left {total_left / 3600:.1f} h"
          + (f" + {total_unknown} cell(s) not yet measured" if total_unknown else "") + "** (studies shared between "
          "grids through tune.reuse are counted in each; an unmeasured cell needs at least its study budget plus its "
          "confirm runs)")
    here = machine()["cpu"]
    print(f"\nIn reference-machine CPU hours; on this machine ({here}, speed {cpu_speed(here):g} of the reference) "
          f"what is left is {total_left / cpu_speed(here) / 3600:.1f} CPU-h.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
