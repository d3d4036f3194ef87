"""The benchmark harness: grid specs, resumable runs, executors, the run store."""
from metarec.bench.grid import Grid, RunSpec, load_grid, parse_grid
from metarec.bench.runner import run_grid

__all__ = ["Grid", "RunSpec", "load_grid", "parse_grid", "run_grid"]
