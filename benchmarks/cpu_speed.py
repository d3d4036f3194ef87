"""How fast this machine's CPU is against the reference machine's, measured on the suite's own tuning trials.

    python benchmarks/cpu_speed.py [GRID.yaml] [--trials STUDY_PREFIX:NUMBER ...] [--out DIR]

A study's budget counts CPU seconds (``budget_clock: cpu``). A grid that runs across several working days may run
on machines with different CPUs, and a trial costs more CPU seconds on a slower one: without a correction, a study
finished on a slow machine gets fewer trials than one of the same grid finished on a fast machine. The correction
(``metarec.bench.tune.CPU_SPEED``: one factor per CPU model, reference 1.0) is measured here: completed trials of a
committed study, recorded on the reference machine, are run again on this machine through the runner's own path
(same split, seed and parameters; no pruner), and the factor is reference CPU seconds / CPU seconds here, median
over the trials. Both sides count everything the trial's process spent (a reference trial, recorded before
item-text artifacts were set apart, counted them; none was built during these). The rerun must have trained what
the reference did: the same validation value, or the same number of validations (epochs) where the item vectors
were re-encoded here and differ in the last bits; a row that has neither is left out of the median. Writes
``results/cpu_speed/<cpu model>.json`` and prints a Markdown table. ``--root DIR`` keeps the reruns' store there
(finished reruns are read back, not rerun).

Defaults: two trials of ``benchmarks/distill_text.yaml``'s amazon-scientific sequential studies (the id-only
SASRec-style backbone and the same backbone over mpnet-6 item vectors), recorded on the Intel Xeon machine every
study before 2026-12-03 ran on.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import metarec  # noqa: E402,F401
from metarec.bench import load_grid  # noqa: E402
from metarec.utils import atomic_write_json, home, machine  # noqa: E402

DEFAULT_TRIALS = ("amazon-scientific/sequential/distill:teacher/:1", "amazon-scientific/sequential/distill:text-mpnet-6/:2")


def committed_trial(db: Path, prefix: str, number: int) -> dict:
    """The study name, parameters, value and recorded CPU seconds of a completed trial in a committed tuning.db."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db.resolve()}"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith(prefix)]
    if len(names) != 1:
        raise SystemExit(f"{db}: {len(names)} studies named {prefix}...: name one")
    trials = [t for t in optuna.load_study(study_name=names[0], storage=storage).get_trials(deepcopy=False)
              if t.number == number and t.state.name == "COMPLETE"]
    if not trials:
        raise SystemExit(f"{db}: {names[0]} has no completed trial {number}")
    t = trials[0]
    # trials before cpu_model was recorded ran on the reference machine
    return {"study": names[0], "number": number, "params": dict(t.params), "value": t.value,
            "validations": len(t.intermediate_values), "cpu_s": t.user_attrs["cpu_s"],
            "cpu_model": t.user_attrs.get("cpu_model", "Intel(R) Xeon(R) Processor")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("grid", nargs="?", default="benchmarks/distill_text.yaml")
    ap.add_argument("--trials", nargs="+", default=list(DEFAULT_TRIALS), metavar="STUDY_PREFIX:NUMBER")
    ap.add_argument("--out", default="results/cpu_speed")
    ap.add_argument("--root", help="store for the reruns (default: a new temporary folder)")
    args = ap.parse_args()

    from metarec.bench.execute import execute_run
    from metarec.bench.store import RunStore
    from metarec.bench.tune import study_name

    grid = load_grid(Path(args.grid))
    db = Path("results") / grid.name / "tuning.db"
    here = machine()["cpu"]
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="cpu_speed-"))
    root.mkdir(parents=True, exist_ok=True)
    for shared in ("artifacts", "splits"):     # the store's splits and artifacts, never rebuilt or timed here
        if not (root / shared).exists():
            os.symlink((home() / shared).resolve(), root / shared)
    rows = []
    for ref in args.trials:
        prefix, number = ref.rsplit(":", 1)
        t = committed_trial(db, prefix, int(number))
        dataset, protocol, method = t["study"].split("/")[:3]
        d = next(x for x in grid.datasets if x["name"] == dataset)
        p = next(x for x in d["protocols"] if x["name"] == protocol)
        m = grid.methods[method]
        if study_name(grid, d, p, method, m) != t["study"]:
            raise SystemExit(f"{t['study']}: the grid's study for this cell is now {study_name(grid, d, p, method, m)}"
                             " (its space or fixed parameters changed): the trial cannot be rerun as it was")
        spec = grid.spec(d, p, method, {**m["fixed"], **t["params"]}, grid.tune.seeds[0])
        key = re.sub(r"[^a-z0-9]+", "-", f"{method}-{number}".lower())
        execute_run(spec, key, "cpu_speed", str(root))
        res = RunStore("cpu_speed", root).load_result(key)
        value = res["metrics"]["valid"].get(grid.tune.metric)
        cpu_s = res["cpu_s"] + (res.get("artifact_build") or {}).get("cpu_s", 0.0)
        validations = len(res.get("valid_curve") or [])
        rows.append({"study": t["study"], "trial": int(number), "reference_cpu": t["cpu_model"],
                     "reference_cpu_s": t["cpu_s"], "cpu_s": cpu_s, "speed": t["cpu_s"] / cpu_s,
                     "value": value, "reference_value": t["value"], "same_value": abs(value - t["value"]) < 1e-9,
                     "validations": validations, "reference_validations": t["validations"],
                     "same_training": abs(value - t["value"]) < 1e-9 or validations == t["validations"]})
        print(json.dumps(rows[-1]), flush=True)
    ok = [r["speed"] for r in rows if r["same_training"]]
    out = {"cpu": here, "threads": grid.threads, "speed": statistics.median(ok) if ok else None, "trials": rows}
    path = Path(args.out) / (re.sub(r"[^A-Za-z0-9]+", "_", here).strip("_") + ".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, out)
    print(f"\n{here}: speed {out['speed']} (reference CPU seconds per CPU second here), {path}\n")
    print("| study | trial | reference CPU s | CPU s here | speed | validation value (here / reference) | "
          "validations (here / reference) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['study']} | {r['trial']} | {r['reference_cpu_s']:.1f} | {r['cpu_s']:.1f} | {r['speed']:.3f} | "
              f"{r['value']:.6f} / {r['reference_value']:.6f} | {r['validations']} / {r['reference_validations']} |")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
