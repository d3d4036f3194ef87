"""Executors: in-process sequential (default), a local process pool (``--jobs N``), and Ray (``--executor ray``,
optionally ``--address`` of a running cluster). All of them call ``execute_run`` on the same specs; runs are
deterministic given their seed and thread count, so every executor yields the same results table."""
from __future__ import annotations

import sys
import time
from typing import Callable, Iterator

from metarec.errors import UnknownNameError


def _bar(total: int, progress: bool, counts: dict):
    from tqdm import tqdm

    return tqdm(total=total, desc="grid", unit="run", disable=not progress or total == 0, file=sys.stderr,
                dynamic_ncols=True)


def _update(bar, outcome: dict, counts: dict) -> None:
    bar.update(1)
    done = counts.get("done", 0) + (outcome["status"] == "done")
    failed = counts.get("failed", 0) + (outcome["status"] == "failed")
    bar.set_postfix(done=done, failed=failed, left=bar.total - bar.n)
    if outcome["status"] == "failed":
        bar.write(f"run {outcome['key']} failed: {outcome['reason'][:200]}")


def sequential(todo, grid_name, root, *, jobs=1, address=None, progress=True, counts=None) -> Iterator[dict]:
    from metarec.bench.runner import execute_run

    with _bar(len(todo), progress, counts) as bar:
        for p in todo:
            outcome = execute_run(p.spec, p.key, grid_name, root)
            _update(bar, outcome, counts)
            yield outcome


def pool(todo, grid_name, root, *, jobs=2, address=None, progress=True, counts=None) -> Iterator[dict]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    from metarec.bench.runner import execute_run

    # spawn, not fork: a forked torch/OpenMP runtime can deadlock in the child
    with ProcessPoolExecutor(max_workers=max(1, jobs), mp_context=mp.get_context("spawn")) as ex, \
            _bar(len(todo), progress, counts) as bar:
        futures = {ex.submit(execute_run, p.spec, p.key, grid_name, root): p for p in todo}
        for fut in as_completed(futures):
            p = futures[fut]
            try:
                outcome = fut.result()
            except BrokenProcessPool as e:  # the worker died (killed, out of memory): record, go on
                outcome = _record_crash(p, grid_name, root, f"worker process died: {e}")
            _update(bar, outcome, counts)
            yield outcome


def ray_executor(todo, grid_name, root, *, jobs=2, address=None, progress=True, counts=None) -> Iterator[dict]:
    import os

    import ray

    from metarec.bench.runner import execute_run

    started = not ray.is_initialized()
    if started:
        kwargs = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                      logging_level="ERROR")
        if address:
            ray.init(address=address, **kwargs)
        else:
            # a local instance; workers must import the same metarec and see the same data roots
            env = {k: v for k, v in os.environ.items() if k.startswith(("METAREC_", "HF_", "TRANSFORMERS_"))}
            ray.init(num_cpus=max(1, jobs), runtime_env={"env_vars": env}, **kwargs)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(execute_run)
        pending = {remote.remote(p.spec, p.key, grid_name, root): p for p in todo}
        with _bar(len(todo), progress, counts) as bar:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                p = pending.pop(ready[0])
                try:
                    outcome = ray.get(ready[0])
                except Exception as e:  # a worker crash surfaces here
                    outcome = _record_crash(p, grid_name, root, f"ray worker failed: {type(e).__name__}: {e}")
                _update(bar, outcome, counts)
                yield outcome
    finally:
        if started:
            ray.shutdown()


def _record_crash(p, grid_name, root, reason: str) -> dict:
    from pathlib import Path

    from metarec.bench.store import RunStore

    RunStore(grid_name, Path(root)).record_failure(p.key, {"key": p.key, "reason": reason, "params": p.spec.params,
                                                          "time": time.time()})
    return {"key": p.key, "status": "failed", "reason": reason}


EXECUTORS: dict[str, Callable] = {"sequential": sequential, "pool": pool, "ray": ray_executor}


def get_executor(name: str) -> Callable:
    if name not in EXECUTORS:
        raise UnknownNameError("executor", name, EXECUTORS)
    return EXECUTORS[name]
