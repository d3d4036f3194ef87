"""The grid runner: stable run keys, atomic run folders, resume, failures recorded and skipped over.

``metarec bench GRID`` = ``run_grid(load_grid(GRID))``. Each run is executed by ``metarec.bench.execute.execute_run``
on one of the executors; a grid with a ``tune:`` block also drives its studies (``metarec.bench.tune``): the runner
keeps the executor's slots full with the untuned runs, each study's next trial and, once a study's budget is spent,
its confirm runs.
"""
from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metarec.bench.executors import Job, get_executor
from metarec.bench.grid import Grid, RunSpec
from metarec.bench.store import (RunDonors, RunStore, adopt_committed_runs, read_parquet, run_key, select_configs,
                                  tidy_table, write_table)
from metarec.utils import home


@dataclass
class PlannedRun:
    spec: RunSpec
    key: str


class SplitKeys:
    """Builds (or loads) each split the grid needs once, in the driver, and keys runs by their split's content."""

    def __init__(self, root: Path):
        self.root, self.fingerprints = root, {}

    def __call__(self, spec: RunSpec) -> str:
        return run_key(self.identity(spec))

    def identity(self, spec: RunSpec) -> dict[str, Any]:
        from metarec.bench.experiment import get_split

        sk = (spec.dataset, repr(spec.preprocess), spec.protocol, repr(spec.protocol_params), spec.split_seed)
        if sk not in self.fingerprints:
            split = get_split(spec.dataset, spec.protocol, spec.protocol_params, spec.split_seed, spec.preprocess,
                              root=self.root)
            self.fingerprints[sk] = split.fingerprint
        return spec.identity(self.fingerprints[sk])


def plan(grid: Grid, root: Path, key_of: SplitKeys | None = None) -> list[PlannedRun]:
    """Every run known before tuning (untuned methods), keyed."""
    key_of = key_of or SplitKeys(root)
    return [PlannedRun(spec, key_of(spec)) for spec in grid.runs()]


def _keep_other_cells(table: Path, new, grid: Grid):
    """A grid run with ``--only``: the rows an earlier run wrote for cells outside this part stay in the table."""
    import pandas as pd

    if not table.is_file():
        return new
    old = read_parquet(table, "delete it and rerun the whole grid (without --only) to rewrite it")
    if old.empty:
        return new
    mine = {(d["name"], p["name"], m) for d, p, m in grid.cells()}
    keep = old[[c not in mine for c in zip(old.dataset, old.protocol, old.method)]]
    keep = keep.drop(columns=[c for c in keep.columns if c not in new.columns])
    return pd.concat([keep, new], ignore_index=True) if not new.empty else keep.reset_index(drop=True)


def _donors(grid: Grid, store: RunStore, root: Path, progress: bool) -> RunDonors:
    """The finished runs this grid may copy instead of training (``store.RunDonors``): its own, and those of the
    grids it reuses (``tune.reuse``), whose committed runs are first restored into their stores as their own
    ``metarec bench`` would."""
    sources = [(grid.name, store)]
    if grid.tune is not None and grid.tune.reuse:
        from metarec.bench.tune import reused_grids

        for other in reused_grids(grid):
            theirs = RunStore(other.name, root)
            theirs.prepare()
            adopt_committed_runs(theirs, Path("results") / other.name)
            sources.append((other.name, theirs))
    donors = RunDonors(sources)
    if progress and len(sources) > 1:
        print(f"runs: {len(donors)} finished runs of {', '.join(n for n, _ in sources)} may stand in for runs of "
              "this grid that trained the same thing", file=sys.stderr)
    return donors


def _describe(spec) -> str:
    """What a run is, for progress and failure lines: method, dataset/protocol, seed."""
    return f"{spec.method} on {spec.dataset}/{spec.protocol} seed {spec.seed}"


def local_jobs(grid: Grid, executor: str, jobs: int, progress: bool = True) -> int:
    """The local pool's jobs, capped so that jobs x the grid's ``threads`` stays within this machine's cores: more
    threads than cores slows every run alike (one study's budget buys fewer trials) and shifts the timing columns,
    which measure a run against its neighbours' load (encoding throughput, inference latency)."""
    import os

    cores = os.cpu_count() or 1
    if executor != "pool" or jobs * grid.threads <= cores:
        return jobs
    capped = max(1, cores // grid.threads)
    if progress:
        print(f"jobs: {jobs} jobs x {grid.threads} threads (grid {grid.name}) exceed the {cores} cores here; running "
              f"{capped} at a time", file=sys.stderr)
    return capped


def run_grid(grid: Grid, *, executor: str = "sequential", jobs: int = 1, address: str | None = None,
             retry_failed: bool = False, root: Path | None = None, progress: bool = True, probe: bool = False,
             run_cap_s: float | None = None) -> dict[str, Any]:
    """Run (or resume) ``grid``. ``probe``: measure instead, running only the first trial of each tuned cell's
    study that has none (a real trial, kept: the study goes on from it later; no confirm runs, no untuned runs)
    so that ``benchmarks/compute_plan.py`` can cost every cell before the grid is run. ``run_cap_s``: stop any run
    after that many seconds of wall time and record it as failed (a trial that hits it ends its study's budget)."""
    from tqdm import tqdm

    root = Path(root or home())
    store = RunStore(grid.name, root)
    store.prepare()
    restored = adopt_committed_runs(store, Path("results") / grid.name)
    if restored and progress:
        print(f"runs: {restored} finished runs restored from results/{grid.name}/ (not run again)", file=sys.stderr)
    if grid.keep_artifacts:   # what an earlier machine built and committed (item-text embeddings, ...)
        from metarec.bench.artifacts import Artifacts, adopt_committed_artifacts

        adopted = adopt_committed_artifacts(Artifacts(root), Path("results") / grid.name)
        if adopted and progress:
            print(f"artifacts: {adopted} restored from results/{grid.name}/artifacts/ (not built again)",
                  file=sys.stderr)
    key_of = SplitKeys(root)
    planned = plan(grid, root, key_of)
    donors = _donors(grid, store, root, progress)
    tuner = None
    if grid.tune is not None and any(grid.is_tuned(m) for _, _, m in grid.cells()):
        from metarec.bench.tune import Tuner, adopt_committed_studies

        adopted = adopt_committed_studies(grid.name, store.root)
        if adopted and progress:
            print(f"tuning: continuing the studies committed in {adopted}", file=sys.stderr)
        tuner = Tuner(grid, store, key_of, probe=probe)
        if progress and grid.tune.clock == "cpu" and executor != "ray":
            from metarec.bench.tune import CPU_SPEED
            from metarec.utils import machine

            if machine()["cpu"] not in CPU_SPEED:   # a study split across machines would count unequal seconds
                print(f"tuning: this CPU ({machine()['cpu']}) has no measured speed (metarec.bench.tune.CPU_SPEED): "
                      "its CPU seconds count as the reference machine's; measure it with benchmarks/cpu_speed.py",
                      file=sys.stderr)
    counts = {"total": 0, "cached": 0, "copied": 0, "done": 0, "failed": 0, "skipped_failed": 0, "trials_failed": 0}
    seen: set[str] = set()
    ready: deque[Job] = deque()

    def admit(job: Job, front: bool = False) -> None:
        """Queue a job unless it is finished (or failed earlier): then its outcome is known at once."""
        if job.key in seen and job.tag is None:
            return
        new = job.key not in seen
        seen.add(job.key)
        counts["total"] += new
        if store.is_done(job.key):
            counts["cached"] += new
            follow(job, {"key": job.key, "status": "cached"})
        elif donors and donors.adopt(store, job.key, key_of.identity(job.spec)):
            counts["copied"] += new   # trained already (another grid, or this one under a longer metric list)
            follow(job, {"key": job.key, "status": "cached"})
        elif store.failure(job.key) is not None and not retry_failed:
            counts["skipped_failed"] += new
            follow(job, {"key": job.key, "status": "failed", "reason": store.failure(job.key)["reason"]})
        elif front:
            ready.appendleft(job)
        else:
            ready.append(job)

    def follow(job: Job, outcome: dict) -> None:
        if tuner is not None and job.tag is not None:
            for nxt in reversed(tuner.on_done(job, outcome)):
                admit(nxt, front=True)   # studies first: each one's next trial waits on this outcome

    for p in planned if not probe else []:
        admit(Job(p.spec, p.key))
    if tuner is not None:
        for job in reversed(tuner.start()):
            admit(job, front=True)
    jobs = local_jobs(grid, executor, jobs, progress)
    ex = get_executor(executor)(grid.name, str(root), jobs=jobs, address=address, run_cap_s=run_cap_s)
    # a live bar on a terminal; in a log (not a TTY) one line per finished run instead of carriage returns
    tty = progress and sys.stderr.isatty()
    bar = tqdm(desc="grid", unit="run", disable=not tty, file=sys.stderr, dynamic_ncols=True)
    started = time.monotonic()
    try:
        while ready or ex.pending():
            while ready and ex.pending() < ex.slots:
                ex.submit(ready.popleft())
            job, outcome = ex.next_done()
            status = outcome["status"] if outcome["status"] in ("done", "failed") else "cached"
            if status == "failed" and job.tag is not None and job.tag[0] == "trial":
                status = "trials_failed"   # a diverging trial is a tuning outcome (told FAIL), not a broken grid
            counts[status] += 1
            bar.update(1)
            bar.set_postfix(done=counts["done"], failed=counts["failed"], queued=len(ready))
            what = _describe(job.spec)
            if outcome["status"] == "failed":
                bar.write(f"run {outcome['key']} failed ({what}): {outcome['reason'][:200]}")
            elif progress and not tty:
                print(f"[grid {grid.name} {time.monotonic() - started:7.0f}s] {status:>13} {what} "
                      f"(done {counts['done']}, cached {counts['cached']}, failed {counts['failed']}, "
                      f"queued {len(ready)})", file=sys.stderr, flush=True)
            follow(job, outcome)
    finally:
        bar.close()
        ex.close()
    keys = [p.key for p in planned] + (tuner.confirm_keys if tuner else [])
    tidy = tidy_table(store, list(dict.fromkeys(keys)))
    if grid.only:
        tidy = _keep_other_cells(store.root / "results.parquet", tidy, grid)
    tidy = select_configs(tidy, grid.valid_metric)
    if not tidy.empty:
        write_table(tidy, store.root)
    trials = None
    if tuner is not None:
        trials = tuner.trials_table()
        if grid.only:
            trials = _keep_other_cells(store.root / "trials.parquet", trials, grid)
        write_table(trials, store.root, stem="trials")
    failures = [store.failure(k) for k in dict.fromkeys(keys) if store.failure(k)]
    notes = [f"{s.name}: {s.note}" for s in (tuner.studies if tuner else []) if s.note]
    if tuner is not None:   # students whose teacher study never selected (no completed trial) or does not run
        notes += tuner.unresolved + [f"{mname} on {d['name']}/{p['name']}: waits for its teacher's study {t}"
                                     for t, cells in tuner.pending.items() for d, p, mname in cells]
    return {"counts": counts, "tidy": tidy, "store": store, "failures": failures, "trials": trials, "notes": notes}
