"""The grid runner: stable run keys, atomic run folders, resume, failures recorded and skipped over.

``metarec bench GRID`` = ``run_grid(load_grid(GRID))``. Each run is executed by ``execute_run`` — a top-level
function, so that the in-process, process-pool and Ray executors all run exactly the same code.
"""
from __future__ import annotations

import logging
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarec.bench.grid import Grid, RunSpec
from metarec.bench.store import RunStore, run_key, select_configs, tidy_table, write_run, write_table
from metarec.utils import git_revision, home, versions


@dataclass
class PlannedRun:
    spec: RunSpec
    key: str


def plan(grid: Grid, root: Path) -> list[PlannedRun]:
    """Build (or load) every split the grid needs, once, in this process; key every run by its split's content."""
    from metarec.experiment import get_split

    fingerprints: dict[tuple, str] = {}
    planned = []
    for spec in grid.runs():
        sk = (spec.dataset, repr(spec.preprocess), spec.protocol, repr(spec.protocol_params), spec.split_seed)
        if sk not in fingerprints:
            split = get_split(spec.dataset, spec.protocol, spec.protocol_params, spec.split_seed, spec.preprocess,
                              root=root)
            fingerprints[sk] = split.fingerprint
        planned.append(PlannedRun(spec, run_key(spec.identity(fingerprints[sk]))))
    return planned


def execute_run(spec: RunSpec, key: str, grid_name: str, root: str) -> dict[str, Any]:
    """Run one grid cell and commit its folder; never raises for a failing method (the failure is recorded)."""
    import torch

    import metarec  # noqa: F401  (shims, in a fresh worker process)
    from metarec.experiment import get_split, run_one
    from metarec.methods import get_method

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
    t0 = time.time()
    try:
        split = get_split(spec.dataset, spec.protocol, spec.protocol_params, spec.split_seed, spec.preprocess,
                          root=Path(root))
        logging.getLogger("metarec").warning("run %s: %s %s on %s/%s seed %d", key, spec.method, spec.params,
                                             spec.dataset, spec.protocol, spec.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_one(split, spec.method, dict(spec.params), seed=spec.seed, metrics=list(spec.metrics),
                          workdir=tmp / "work", eval_mode=spec.eval_mode)
    except (Exception, MemoryError) as e:  # record and go on: one bad configuration must not stop a grid
        reason = f"{type(e).__name__}: {e}"
        logging.getLogger("metarec").error("run %s failed: %s", key, reason)
        store.record_failure(key, {"key": key, "reason": reason, "traceback": traceback.format_exc(),
                                   "spec": spec.identity("?"), "params": spec.params})
        return {"key": key, "status": "failed", "reason": reason}
    finally:
        root_logger.removeHandler(handler)
        handler.close()
    per_user = res.pop("per_user")
    result = {**res, "key": key, "config_params": spec.params, "family": getattr(get_method(spec.method), "family", ""),
              "split_seed": spec.split_seed, "preprocess": spec.preprocess, "versions": versions(),
              "git_revision": git_revision(), "wall_s": time.time() - t0}
    config = {**spec.identity(res["split_fingerprint"]), "resolved_params": res["params"], "threads": spec.threads}
    write_run(tmp, config, result, per_user)
    store.commit(key, tmp)
    return {"key": key, "status": "done"}


def run_grid(grid: Grid, *, executor: str = "sequential", jobs: int = 1, address: str | None = None,
             retry_failed: bool = False, root: Path | None = None, progress: bool = True) -> dict[str, Any]:
    from metarec.bench.executors import get_executor

    root = Path(root or home())
    store = RunStore(grid.name, root)
    store.prepare()
    planned = plan(grid, root)
    seen, unique = set(), []
    for p in planned:
        if p.key not in seen:
            seen.add(p.key)
            unique.append(p)
    todo = [p for p in unique if not store.is_done(p.key) and (retry_failed or store.failure(p.key) is None)]
    skipped_failed = sum(1 for p in unique if not store.is_done(p.key) and store.failure(p.key) is not None
                         and not retry_failed)
    counts = {"total": len(unique), "cached": len(unique) - len(todo) - skipped_failed, "done": 0, "failed": 0,
              "skipped_failed": skipped_failed}
    run = get_executor(executor)
    for outcome in run(todo, grid.name, str(root), jobs=jobs, address=address, progress=progress, counts=counts):
        counts[outcome["status"] if outcome["status"] in ("done", "failed") else "cached"] += 1
    tidy = select_configs(tidy_table(store, [p.key for p in unique]), grid.valid_metric)
    if not tidy.empty:
        write_table(tidy, store.root)
    failures = [store.failure(p.key) for p in unique if store.failure(p.key)]
    return {"counts": counts, "tidy": tidy, "store": store, "failures": failures}
