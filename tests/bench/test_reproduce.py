"""benchmarks/reproduce_runs.py: retrains a grid's finished runs in fresh processes and compares them bit for bit;
``--adopt`` replaces a reproduced run (and the copies other grids took of it) by its retraining, never a run that
differs in a metric or in a single per-user value."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from metarec.bench import parse_grid, run_grid
from metarec.bench.store import RunStore, copy_run

ROOT = Path(__file__).resolve().parents[2]
GRID = {"name": "audit", "seeds": [0, 1, 2, 3], "metrics": ["ndcg@10", "hit@10"],
        "datasets": [{"name": "ml-100k", "protocols": ["general"]}], "methods": {"pop": {}}}


@pytest.mark.slow
def test_adopt_replaces_only_runs_reproduced_bit_for_bit_and_their_copies(tmp_path):
    home = tmp_path / "home"
    run_grid(parse_grid(GRID), root=home, progress=False)
    store = RunStore("audit", home)
    runs = {json.loads((p / "result.json").read_text())["seed"]: p for p in store.runs.iterdir()}
    # another grid's copy of seed 1's run (as tune.reuse takes one), with a shorter metric list
    other = RunStore("other", home)
    other.prepare()
    config = json.loads((runs[1] / "config.json").read_text())
    copy_run(store, runs[1].name, other, "copykey", {**config, "metrics": ["ndcg@10"]}, "audit")
    # seed 0: one per-user value off by 1e-12, every mean untouched: not reproduced, not adopted
    table = runs[0] / "per_user_test.parquet"
    frame = pd.read_parquet(table)
    frame.loc[frame.index[0], "ndcg@10"] += 1e-12
    frame.to_parquet(table, index=False)
    # what --unchecked picks: seed 0 recorded before runs recorded their code, seed 1 trained by uncommitted sources,
    # seed 3 by a process whose loaded sources changed on disk while it ran; seed 2, trained by committed code, is
    # left alone
    path = runs[0] / "result.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "code"}))
    path = runs[1] / "result.json"
    r = json.loads(path.read_text())
    path.write_text(json.dumps({**r, "code": {**r["code"], "uncommitted": True}}))
    path = runs[2] / "result.json"
    r = json.loads(path.read_text())
    path.write_text(json.dumps({**r, "code": {**r["code"], "uncommitted": False}}))
    path = runs[3] / "result.json"
    (runs[3] / "per_user_valid.parquet").unlink()   # as a run restored from a committed results folder: test only
    r = json.loads(path.read_text())
    path.write_text(json.dumps({**r, "code": {**r["code"], "uncommitted": False, "changed_since_start": True}}))
    grid_file = tmp_path / "audit.yaml"
    grid_file.write_text(yaml.safe_dump(GRID))
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce_runs.py"), str(grid_file), "--all",
                          "--unchecked", "--adopt"], capture_output=True, text=True, cwd=ROOT, timeout=600,
                         env={**os.environ, "METAREC_HOME": str(home)})
    assert out.returncode == 1, out.stdout + out.stderr   # one run differs
    assert "2 of 3 reproduced" in out.stdout and "other" in out.stdout and "audit" in out.stdout
    kept, adopted = (json.loads((runs[s] / "result.json").read_text()) for s in (0, 1))
    assert "reproduces" in json.loads((runs[3] / "result.json").read_text())
    assert "reproduces" not in kept
    assert "reproduces" not in json.loads((runs[2] / "result.json").read_text())   # not picked: it has its code
    assert adopted["reproduces"]["git_revision"] is not None and adopted["machine"]["threads"] == 1
    copy = json.loads((other.runs / "copykey" / "result.json").read_text())
    assert copy["reproduces"] == adopted["reproduces"] and copy["copied_from"] == {"grid": "audit",
                                                                                   "run": runs[1].name}
    assert list(copy["metrics"]["test"]) == ["ndcg@10"]   # still the copy's own metric list
    assert sorted(p.name for p in store.runs.iterdir()) == sorted(p.name for p in runs.values())
    from metarec.report import card   # the card says which run was retrained, and under which revision first
    assert "bit-identical to the run first recorded under git" in card(adopted)
    assert "bit-identical" not in card(kept)


def test_same_per_user_needs_the_stored_test_table_and_every_table_it_has(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("reproduce_runs", ROOT / "benchmarks" / "reproduce_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir(), new.mkdir()
    frame = pd.DataFrame({"user": [1, 2], "ndcg@10": [0.5, 0.25]})
    for name in ("per_user_test.parquet", "per_user_valid.parquet"):
        frame.to_parquet(new / name, index=False)
    frame.to_parquet(old / "per_user_valid.parquet", index=False)
    assert not module.same_per_user(old, new)          # no stored test table: nothing to check per user
    frame.to_parquet(old / "per_user_test.parquet", index=False)
    assert module.same_per_user(old, new)
    (old / "per_user_valid.parquet").unlink()
    assert module.same_per_user(old, new)              # restored from committed results: the test table only
    (new / "per_user_test.parquet").unlink()
    assert not module.same_per_user(old, new)          # the retraining lost a table the stored run has
