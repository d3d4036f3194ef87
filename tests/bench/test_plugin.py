"""An outside package adds a method through the `metarec.methods` entry point: installed into a temporary site
dir (not into metarec, not into the venv), it is listed, runs inside a grid and appears in the report."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_outside_plugin_in_methods_grid_and_report(tmp_path):
    site = tmp_path / "site"
    source = tmp_path / "plugin-src"  # a copy: building writes build/ and egg-info next to the sources
    shutil.copytree(REPO / "examples" / "plugin", source)
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), str(source)],
                         capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(site), "METAREC_HOME": str(tmp_path / "home")}

    def metarec(*args):
        proc = subprocess.run([sys.executable, "-m", "metarec.cli", *args], env=env, capture_output=True,
                              text=True, timeout=600, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    listing = metarec("methods")
    assert "itemknn-cosine" in listing and "plugin metarec_itemknn:ItemKNNCosine" in listing

    grid = {"name": "plugin", "seeds": [0], "metrics": ["ndcg@10", "recall@10"],
            "datasets": [{"name": "ml-100k", "protocols": ["general"]}],
            "methods": {"pop": {}, "itemknn-cosine": {"grid": {"k": [20, 100]}}}}
    (tmp_path / "plugin.yaml").write_text(yaml.safe_dump(grid))
    out = metarec("bench", "plugin.yaml")
    assert "3 run now" in out
    report = metarec("report", "plugin.yaml", "--out", str(tmp_path / "results"))
    row = next(line for line in report.splitlines() if line.startswith("| itemknn-cosine |"))
    pop = next(line for line in report.splitlines() if line.startswith("| pop |"))
    # a real method: item kNN beats popularity on ml-100k
    assert float(row.split("|")[2].strip("* <u>/").split()[0]) > float(pop.split("|")[2].strip("* <u>/").split()[0])
    assert (tmp_path / "results" / "figures" / "bars_ndcg10.png").is_file()
