"""`metarec bench` in a subprocess, killed with SIGKILL once some runs have finished (the resume tests' set-up)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml


def bench_then_kill(grid: dict, folder: Path, after: int, timeout_s: float = 300) -> tuple[Path, dict, Path, dict]:
    """Start the grid, SIGKILL it as soon as ``after`` runs are finished. Returns (grid file, env, runs folder,
    {finished run key: result.json mtime})."""
    grid_file = folder / f"{grid['name']}.yaml"
    grid_file.write_text(yaml.safe_dump(grid))
    env = {**os.environ, "METAREC_HOME": str(folder / "home")}
    runs = folder / "home" / "grids" / grid["name"] / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "metarec.cli", "bench", str(grid_file)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    while time.time() < deadline and len(list(runs.glob("*/result.json"))) < after:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return grid_file, env, runs, {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/result.json")}


def bench(grid_file: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "metarec.cli", "bench", str(grid_file)], env=env,
                          capture_output=True, text=True, timeout=600)
