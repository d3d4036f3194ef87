"""One grid cell, executed: ``execute_run`` is a top-level function so that the in-process, process-pool and Ray
executors all run exactly the same code (and import nothing of the runner that drives them).

A tuning trial's run also gets ``trial`` = {storage, study, trial_id, pruner, metric}: the worker re-opens the
study from its SQLite database and reports the method's validation metric to it after every validation, so
Optuna's pruner (which reads the other trials of the same study from the database) can stop it early.
"""
from __future__ import annotations

import contextlib
import json
import logging
import signal
import threading
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from metarec.bench.artifacts import Artifacts, build_seconds
from metarec.bench.grid import RunSpec
from metarec.bench.store import RunStore, write_run
from metarec.utils import code_identity, code_now_differs, machine, peak_memory_mb, reset_peak_memory, versions


def trial_reporter(trial: dict | None, method_valid_metric: str | None):
    """``(step, value) -> prune?`` for a trial's run, or None (no trial, or the method validates on another metric
    than the study optimises, so its curve cannot be compared with the study's)."""
    if not trial or not trial.get("pruner") or trial["pruner"] == "none":
        return None
    if str(method_valid_metric or "").lower() != trial["metric"]:
        return None
    from metarec.bench.tune import open_trial

    handle = open_trial(trial)

    def report(step: int, value: float) -> bool:
        handle.report(value, step)
        return bool(handle.should_prune())

    return report


def track_tensorboard(folder: Path, spec: RunSpec, result: dict) -> None:
    """The run in TensorBoard: its validation curve (step = epoch), its parameters and final metrics (HParams tab),
    in one folder per run key so ``tensorboard --logdir <store>/tensorboard`` compares every run of the grid."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as w:
        for epoch, value, seconds in result.get("valid_curve") or []:
            w.add_scalar("valid/curve", value, epoch)
            w.add_scalar("valid/curve_by_second", value, int(seconds))
        params = {k: (v if isinstance(v, (int, float, str, bool)) else json.dumps(v))
                  for k, v in {"method": spec.method, "dataset": spec.dataset, "protocol": spec.protocol,
                               "seed": spec.seed, **result["params"]}.items() if v is not None}
        finals = {f"{stage}/{m}": float(v) for stage, ms in result["metrics"].items() for m, v in ms.items()
                  if isinstance(v, (int, float))}
        w.add_hparams(params, finals, run_name=".")


class RunCapExceeded(Exception):
    """A run went past ``metarec bench --run-cap``: stopped and recorded as failed (its cost is kept)."""


@contextlib.contextmanager
def run_cap(seconds: float | None):
    """Raise :class:`RunCapExceeded` in this (main) thread once ``seconds`` of wall time have passed. A run is not
    resumable mid-training, so on a machine that lives a few hours a run longer than that never finishes: the cap
    turns it into a recorded measurement ("longer than S s") instead of lost hours. Outside the main thread (where
    signals cannot be delivered) it does nothing but say so."""
    if not seconds:
        yield
        return
    if threading.current_thread() is not threading.main_thread():
        logging.getLogger("metarec").warning("run cap of %s s ignored: not in the main thread", seconds)
        yield
        return

    def stop(signum, frame):
        raise RunCapExceeded(f"over the run cap of {seconds:g} s of wall time (metarec bench --run-cap): stopped")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _cost(t0: float, c0: float, a0: dict[str, float]) -> dict[str, Any]:
    """A run's wall and CPU seconds since (t0, c0), less what it spent getting shared item-text artifacts since ``a0``
    (``artifacts.build_seconds``), which is reported beside them."""
    built = {k: v - a0[k] for k, v in build_seconds().items()}
    return {"wall_s": time.time() - t0 - built["wall_s"], "cpu_s": time.process_time() - c0 - built["cpu_s"],
            "artifact_build": built}


def execute_run(spec: RunSpec, key: str, grid_name: str, root: str, trial: dict | None = None,
                run_cap_s: float | None = None) -> dict[str, Any]:
    """Run one grid cell and commit its folder; never raises for a failing method (the failure is recorded, with
    what it cost). ``run_cap_s``: stop the run after that many seconds of wall time (a failure)."""
    import torch

    import metarec  # noqa: F401  (shims, in a fresh worker process)
    from metarec.bench.experiment import get_split, run_one
    from metarec.methods import build_method, get_method

    store = RunStore(grid_name, Path(root))
    if store.is_done(key):
        return {"key": key, "status": "cached"}
    torch.set_num_threads(spec.threads)
    tmp = store.temp_folder(key)
    handler = logging.FileHandler(tmp / "log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    logging.captureWarnings(True)
    t0, c0, a0 = time.time(), time.process_time(), build_seconds()
    window = reset_peak_memory()
    try:
        split = get_split(spec.dataset, spec.protocol, spec.protocol_params, spec.split_seed, spec.preprocess,
                          root=Path(root))
        logging.getLogger("metarec").warning("run %s: %s %s on %s/%s seed %d%s", key, spec.method, spec.params,
                                             spec.dataset, spec.protocol, spec.seed,
                                             f" (trial {trial['number']} of {trial['study']})" if trial else "")
        with warnings.catch_warnings(), run_cap(run_cap_s):
            warnings.simplefilter("ignore")
            valid_metric = build_method(spec.method, dict(spec.params)).params.get("valid_metric")
            reporter = trial_reporter(trial, valid_metric)
            res = run_one(split, spec.method, dict(spec.params), seed=spec.seed, metrics=list(spec.metrics),
                          workdir=tmp / "work", eval_mode=spec.eval_mode, reporter=reporter,
                          inference_repeats=spec.inference_repeats, artifacts=Artifacts(Path(root)),
                          ties=spec.ties, also_eval=spec.also_eval)
    except (Exception, MemoryError) as e:  # record and go on: one bad configuration must not stop a grid
        reason = f"{type(e).__name__}: {e}"
        logging.getLogger("metarec").error("run %s failed: %s", key, reason)
        cost = _cost(t0, c0, a0)   # what the failure cost
        store.record_failure(key, {"key": key, "reason": reason, "traceback": traceback.format_exc(),
                                   "spec": spec.identity("?"), "params": spec.params, **cost})
        return {"key": key, "status": "failed", "reason": reason, **cost, "cpu": machine()["cpu"]}
    finally:
        root_logger.removeHandler(handler)
        handler.close()
    per_user = res.pop("per_user")
    code = code_identity()
    result = {**res, "key": key, "config_params": spec.params, "family": getattr(get_method(spec.method), "family", ""),
              "split_seed": spec.split_seed, "preprocess": spec.preprocess, "versions": versions(),
              # the code this process imported (not HEAD now: a worker keeps its modules while the checkout moves)
              "git_revision": code["revision"],
              "code": {**code, "changed_since_start": code_now_differs()},
              # wall and CPU seconds of this process (all its threads): what the run cost, whatever else the machine
              # did; shared item-text artifacts it had to build (``artifacts.UNCHARGED``) apart, in ``artifact_build``
              **_cost(t0, c0, a0),
              # the reproducibility card's machine lines: CPU model, cores, torch threads; peak resident memory
              # of the process during the run (scope "process" where the platform cannot reset the peak)
              "machine": {**machine(), "threads": spec.threads}, **peak_memory_mb(window)}
    if trial:
        result["trial"] = {k: trial[k] for k in ("study", "number")}
    config = {**spec.identity(res["split_fingerprint"]), "resolved_params": res["params"], "threads": spec.threads}
    if spec.tracking == "tensorboard":
        track_tensorboard(Path(root) / "tensorboard" / key, spec, result)
    write_run(tmp, config, result, per_user)
    store.commit(key, tmp)
    return {"key": key, "status": "done"}
