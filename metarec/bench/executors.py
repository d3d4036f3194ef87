"""Executors: in-process sequential (default), a local process pool (``--jobs N``), and Ray (``--executor ray``,
optionally ``--address`` of a running cluster). All of them call ``execute_run`` on the same specs; runs are
deterministic given their seed and thread count, so every executor yields the same results table.

An executor is a small job queue: ``submit(job)`` and ``next_done() -> (job, outcome)``. The runner keeps at most
``slots`` jobs in flight, which lets a tuning study ask for its next trial as soon as the last one is told.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from metarec.bench.execute import execute_run
from metarec.bench.grid import RunSpec
from metarec.errors import UnknownNameError


@dataclass
class Job:
    spec: RunSpec
    key: str
    trial: dict | None = None   # a tuning trial's study handle (see metarec.bench.execute)
    tag: Any = None             # the runner's bookkeeping, never sent to a worker


class Sequential:
    """Runs each job in this process when its outcome is asked for."""

    slots = 1

    def __init__(self, grid_name: str, root: str, jobs: int = 1, address: str | None = None,
                 run_cap_s: float | None = None):
        self.grid_name, self.root, self.run_cap_s = grid_name, root, run_cap_s
        self.queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self.queue.append(job)

    def pending(self) -> int:
        return len(self.queue)

    def next_done(self) -> tuple[Job, dict]:
        job = self.queue.popleft()
        return job, execute_run(job.spec, job.key, self.grid_name, self.root, job.trial, self.run_cap_s)

    def close(self) -> None:
        self.queue.clear()


class Pool(Sequential):
    """A local process pool (spawned workers: a forked torch/OpenMP runtime can deadlock in the child)."""

    def __init__(self, grid_name: str, root: str, jobs: int = 2, address: str | None = None,
                 run_cap_s: float | None = None):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        super().__init__(grid_name, root, run_cap_s=run_cap_s)
        self.slots = max(1, jobs)
        self.ex = ProcessPoolExecutor(max_workers=self.slots, mp_context=mp.get_context("spawn"))
        self.futures: dict = {}

    def submit(self, job: Job) -> None:
        self.futures[self.ex.submit(execute_run, job.spec, job.key, self.grid_name, self.root, job.trial,
                                    self.run_cap_s)] = job

    def pending(self) -> int:
        return len(self.futures)

    def next_done(self) -> tuple[Job, dict]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(list(self.futures), return_when=FIRST_COMPLETED)
        fut = min(done, key=lambda f: self.futures[f].key)  # several done at once: a stable order
        job = self.futures.pop(fut)
        try:
            return job, fut.result()
        except BrokenProcessPool as e:  # the worker died (killed, out of memory): record, go on
            return job, record_crash(job, self.grid_name, self.root, f"worker process died: {e}")

    def close(self) -> None:
        self.ex.shutdown(wait=True, cancel_futures=True)
        self.futures.clear()


class Ray(Sequential):
    """Ray tasks on a local instance, or on a running cluster (``address``)."""

    def __init__(self, grid_name: str, root: str, jobs: int = 2, address: str | None = None,
                 run_cap_s: float | None = None):
        import os

        import ray

        super().__init__(grid_name, root, run_cap_s=run_cap_s)
        self.slots = max(1, jobs)
        self.started = not ray.is_initialized()
        if self.started:
            kwargs = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                          logging_level="ERROR")
            if address:
                ray.init(address=address, **kwargs)
            else:
                # a local instance; workers must import the same metarec and see the same data roots
                env = {k: v for k, v in os.environ.items() if k.startswith(("METAREC_", "HF_", "TRANSFORMERS_"))}
                # Ray 2.6's node agent checks every 0.4 s that its parent, the raylet, lives (psutil's parent())
                # and takes the raylet down with it after five misses in a row. A CI run on a loaded machine lost
                # a healthy local node that way (2026-12-04: "parent_gone: True" five times in
                # dashboard_agent.log while the raylet was running; the cause of the misses is not established).
                # A local node lives as long as this process and is shut down with it: check once a minute.
                os.environ.setdefault("RAY_DASHBOARD_AGENT_CHECK_PARENT_INTERVAL_S", "60")
                ray.init(num_cpus=self.slots, runtime_env={"env_vars": env}, **kwargs)
        self.remote = ray.remote(num_cpus=1, max_retries=0)(execute_run)
        self.refs: dict = {}

    def submit(self, job: Job) -> None:
        self.refs[self.remote.remote(job.spec, job.key, self.grid_name, self.root, job.trial, self.run_cap_s)] = job

    def pending(self) -> int:
        return len(self.refs)

    def next_done(self) -> tuple[Job, dict]:
        import ray

        ready, _ = ray.wait(list(self.refs), num_returns=1)
        job = self.refs.pop(ready[0])
        try:
            return job, ray.get(ready[0])
        except Exception as e:  # a worker crash surfaces here
            return job, record_crash(job, self.grid_name, self.root, f"ray worker failed: {type(e).__name__}: {e}")

    def close(self) -> None:
        import ray

        self.refs.clear()
        if self.started:
            ray.shutdown()


def record_crash(job: Job, grid_name: str, root: str, reason: str) -> dict:
    from pathlib import Path

    from metarec.bench.store import RunStore

    RunStore(grid_name, Path(root)).record_failure(job.key, {"key": job.key, "reason": reason,
                                                            "spec": {k: getattr(job.spec, k) for k in (
                                                                "method", "dataset", "protocol", "seed")},
                                                            "params": job.spec.params, "time": time.time()})
    return {"key": job.key, "status": "failed", "reason": reason}


EXECUTORS: dict[str, type[Sequential]] = {"sequential": Sequential, "pool": Pool, "ray": Ray}


def get_executor(name: str) -> type[Sequential]:
    if name not in EXECUTORS:
        raise UnknownNameError("executor", name, EXECUTORS)
    return EXECUTORS[name]
