"""benchmarks/compute_plan.py: what a grid costs, from its studies' trials (a probe's first trials included), and
which cells do not fit (a trial stopped by the run cap)."""
from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import yaml

from metarec.bench import parse_grid, run_grid
from tests.bench.test_tune import TUNED

REPO = Path(__file__).resolve().parents[2]


def _compute_plan():
    spec = importlib.util.spec_from_file_location("compute_plan", REPO / "benchmarks" / "compute_plan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_probed_cell_is_costed_and_a_capped_one_is_listed_as_not_fitting(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METAREC_HOME", str(tmp_path))
    g = copy.deepcopy(TUNED)
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(g))
    run_grid(parse_grid(g), root=tmp_path, progress=False, probe=True)
    plan = _compute_plan().plan
    spent, left, unknown = plan(path)
    out = capsys.readouterr().out
    assert spent > 0 and left > 0 and unknown == 0          # one trial measured: the rest of the cell is costed
    assert "| ml-100k / general | mf-bpr | 1 |" in out and "over the run cap" not in out

    g["name"] = "capped"
    g["tune"]["budget_s"] = 0.5
    g["methods"]["mf-bpr"]["params"].update(max_epochs=500, patience=500)
    path = tmp_path / "capped.yaml"
    path.write_text(yaml.safe_dump(g))
    run_grid(parse_grid(g), root=tmp_path, progress=False, run_cap_s=0.5)
    plan(path)
    out = capsys.readouterr().out
    assert "Cells over the run cap" in out and "- ml-100k / general / mf-bpr: one run > 0 CPU-min" in out
    assert "| 2 runs, >0 |" in out                          # the confirm runs' cost: a lower bound
