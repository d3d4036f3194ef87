"""benchmarks/compute_plan.py: what a grid costs, from its studies' trials (a probe's first trials included), and
which cells do not fit (a trial stopped by the run cap)."""
from __future__ import annotations

import copy
import math
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
    assert "| 2 runs, " in out and "| 0 runs, " not in out

    # a new machine: the cell's confirm runs are committed under results/<grid>/ (metarec bench restores them
    # instead of rerunning them), not in the store, and are done all the same
    import gzip
    import json

    trial = next(json.loads(r.read_text()) for r in (tmp_path / "grids" / "tuned" / "runs").glob("*/result.json"))
    committed = tmp_path / "results" / "tuned"
    committed.mkdir(parents=True)
    with gzip.open(committed / "runs_so_far.jsonl.gz", "wt") as f:
        for seed in (0, 1):
            f.write(json.dumps({"key": f"k{seed}", "config": {}, "result": {**trial, "trial": False, "seed": seed}})
                    + "\n")
    module = _compute_plan()
    monkeypatch.setattr(module, "ROOT", tmp_path)
    module.plan(path)
    row = next(line for line in capsys.readouterr().out.splitlines() if "| mf-bpr |" in line)
    assert "| 0 runs, 0 |" in row

    # a finite search space tried in full ends its study (as the tuner's budget_left has it): nothing left of it
    g["name"] = "finite"
    g["methods"]["mf-bpr"]["search"] = {"lr": [0.01]}
    g["tune"]["budget_s"] = 3600                            # left of the budget: an hour, but nothing left to try
    path = tmp_path / "finite.yaml"
    path.write_text(yaml.safe_dump(g))
    run_grid(parse_grid(g), root=tmp_path, progress=False, probe=True)
    plan(path)
    row = next(line for line in capsys.readouterr().out.splitlines() if "| mf-bpr |" in line)
    assert row.startswith("| ml-100k / general | mf-bpr | 1 |") and "| 0 | 2 runs, " in row

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
    # and the YAML that leaves it out, with the measured bound as its reason (a grid validates with it)
    snippet = yaml.safe_load(out.split("```yaml\n")[1].split("```")[0])
    reason = snippet["methods"]["mf-bpr"]["exclude"]["ml-100k/general"]
    assert reason.startswith("does not fit on 2 CPU cores: one trial was stopped by the run cap after ")
    g["methods"]["mf-bpr"].update(snippet["methods"]["mf-bpr"])
    assert parse_grid(g).excluded_cells()[0]["reason"] == reason


def test_an_unmeasured_cell_is_estimated_from_the_nearest_sized_measured_dataset():
    """Scaled by the cards' interaction counts from the measured dataset nearest in size (log scale); nothing under
    another protocol, another method or the cell's own dataset is used, and without a measurement there is none."""
    from metarec.data.registry import get_card

    module = _compute_plan()
    n = {d: get_card(d).expected["interactions"] for d in ("ml-100k", "amazon-office", "ml-1m-implicit",
                                                            "amazon-beauty")}
    measured = {("mf-bpr", "general"): {"amazon-office": [60.0, 120.0], "ml-100k": [300.0]},
                ("mf-bpr", "sequential"): {"ml-1m-implicit": [1.0]},
                ("pop", "general"): {"ml-1m-implicit": [1.0]}}
    trial, ref = module.scaled_estimate(measured, "mf-bpr", "general", "ml-1m-implicit")
    assert ref == "ml-100k" and abs(trial - 300.0 * n["ml-1m-implicit"] / n["ml-100k"]) < 1e-9
    trial, ref = module.scaled_estimate(measured, "mf-bpr", "general", "amazon-office")   # its own: never
    assert ref == "ml-100k" and abs(trial - 300.0 * n["amazon-office"] / n["ml-100k"]) < 1e-9
    measured[("mf-bpr", "general")]["ml-1m-implicit"] = [5000.0]
    trial, ref = module.scaled_estimate(measured, "mf-bpr", "general", "amazon-beauty")
    nearest = min(("amazon-office", "ml-100k", "ml-1m-implicit"),
                  key=lambda d: abs(math.log(n[d] / n["amazon-beauty"])))
    assert ref == nearest and abs(trial - sum(measured[("mf-bpr", "general")][ref]) /
                                  len(measured[("mf-bpr", "general")][ref]) * n["amazon-beauty"] / n[ref]) < 1e-6
    assert module.scaled_estimate(measured, "recbole:BPR", "general", "ml-1m-implicit") is None
    assert module.scaled_estimate(measured, "mf-bpr", "cold_start", "ml-1m-implicit") is None
    assert module.scaled_estimate(measured, "mf-bpr", "general", "no-such-dataset") is None
