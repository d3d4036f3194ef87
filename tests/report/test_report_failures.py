"""Failures stay visible: `metarec bench` names the failed run's method, the report lists it under its table (and a
cell where every run failed still gets a section), and each table says which hyper-parameters its rows ran with."""
from __future__ import annotations

import contextlib
import io

import yaml

from metarec.cli import main


def cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def test_failed_runs_and_selected_parameters_in_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("METAREC_HOME", str(tmp_path / "store"))
    grid = {"name": "fails", "seeds": [0], "metrics": ["ndcg@10"],
            "datasets": [{"name": "ml-100k", "protocols": ["general", "sequential"]}],
            "methods": {"pop": {"protocols": ["general"]},
                        # diverges: a non-finite loss is a TrainingError, recorded as the run's failure
                        "mf-bpr": {"params": {"lr": 1.0e30, "max_epochs": 2, "valid_metric": None,
                                              "progress_bar": False}, "protocols": ["general", "sequential"]}}}
    (tmp_path / "fails.yaml").write_text(yaml.safe_dump(grid))
    rc, out, err = cli(["bench", str(tmp_path / "fails.yaml")])
    assert rc == 1
    assert "failed" in out and "mf-bpr on ml-100k/general seed 0: TrainingError" in out
    assert "mf-bpr on ml-100k/sequential seed 0" in out
    rc, report, _ = cli(["report", str(tmp_path / "fails.yaml"), "--out", str(tmp_path / "results")])
    assert rc == 0
    general = report.split("ml-100k / general")[1]
    assert "Failed runs, missing from the table above" in general
    assert "- mf-bpr seed 0: TrainingError" in general and "non-finite loss" in general
    assert "Selected hyper-parameters" in general and "- pop: defaults" in general
    # every run of ml-100k/sequential failed: no table, but the failures are still reported
    assert "## ml-100k / sequential: no finished run" in report
    assert (tmp_path / "results" / "failures.csv").read_text().count("mf-bpr") == 2
