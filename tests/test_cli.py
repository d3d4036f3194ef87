"""The CLI: user errors are one line naming the key or file, exit status 2, no traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

from metarec.cli import main


@pytest.mark.parametrize("argv, message", [
    (["run", "-d", "ml-10k", "-m", "pop"], "unknown dataset 'ml-10k' (did you mean 'ml-100k'?)"),
    (["run", "-d", "ml-100k", "-m", "mf_bpr"], "unknown method 'mf_bpr' (did you mean 'mf-bpr'?)"),
    (["run", "-d", "ml-100k", "-p", "random", "-m", "pop"], "unknown protocol 'random'"),
    (["run", "-d", "ml-100k", "-m", "mf-bpr", "--param", "lr"], "bad method parameter 'lr': expected KEY=VALUE"),
    (["run", "-d", "ml-100k", "-m", "mf-bpr", "--param", "depth=3"], "unknown parameter(s) depth"),
    (["run", "-d", "ml-100k", "-m", "pop", "--metrics", "ndcg@0"], "ndcg@0"),
    (["split", "ml-100k", "-p", "general", "--param", "ratios=[0.9]"], "ratios must be three"),
    (["bench", "no/such/grid.yaml"], "no/such/grid.yaml: grid file not found"),
    (["run", "-d", "ml-100k", "-p", "temporal", "-m", "pop", "--protocol-param", "drop_cold=[x"], "not valid YAML"),
])
def test_user_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("METAREC_HOME", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_missing_dataset_files_name_where_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METAREC_HOME", str(tmp_path))
    monkeypatch.setenv("METAREC_DATA", str(tmp_path / "data"))
    code = main(["split", "ml-1m", "-p", "general"])
    err = capsys.readouterr().err
    assert code == 2 and "ml-1m" in err and "ratings.dat" in err and "metarec download ml-1m" in err


def test_console_script_exit_status(tmp_path):
    # a command that fails before the heavy imports: the process's own exit status and stderr are what is tested
    proc = subprocess.run([sys.executable, "-m", "metarec.cli", "download", "nope"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown dataset 'nope'")


def test_split_and_run_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("METAREC_HOME", str(tmp_path))
    assert main(["split", "ml-100k", "-p", "sequential"]) == 0
    out = capsys.readouterr().out
    assert "test item = each user's latest" in out and "943" in out
    assert main(["run", "-d", "ml-100k", "-p", "sequential", "-m", "pop", "--metrics", "ndcg@10,hit@10",
                 "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "| ndcg@10" in out and (tmp_path / "r.json").is_file() and (tmp_path / "per_user_test.csv").is_file()


def test_datasets_lists_every_card(capsys):
    from metarec.data import list_cards

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for card in list_cards():
        assert f"| {card.name} " in out


def test_every_method_has_a_description(capsys):
    """`metarec methods` shows each method's one-line description: none may be empty."""
    from metarec.methods import get_method, list_methods

    empty = [n for n in list_methods() if not (get_method(n).__doc__ or "").strip()]
    assert empty == []
