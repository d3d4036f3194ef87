"""A corpus of bad inputs, as a user who fat-fingers every field would type them: the CLI, grid YAML, split folders,
run folders, data roots and plugins. Each must exit non-zero with one line on stderr that names the option, key or
file (and line where there is one), no traceback, and leave every finished result byte for byte as it was.

Runs in-process (``metarec.cli.main``) against one finished grid built once for the module."""
from __future__ import annotations

import contextlib
import hashlib
import io
import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from metarec.cli import main

GRID = """\
name: {name}
seeds: [0]
metrics: [ndcg@10]
datasets:
  - name: ml-100k
    protocols: [general]
methods:
  pop: {{protocols: [general]}}
"""


def cli(argv: list[str]) -> tuple[int, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as e:   # argparse
            rc = e.code
    return rc, err.getvalue()


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """$METAREC_HOME with one finished grid ('done': popularity on ml-100k general, seed 0) and its report."""
    root = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("METAREC_HOME", str(root / "store"))
    mp.chdir(root)
    (root / "done.yaml").write_text(GRID.format(name="done"))
    assert cli(["bench", str(root / "done.yaml")])[0] == 0
    yield root
    mp.undo()


@dataclass
class Case:
    id: str
    args: Callable[[Path], list[str]] | list[str]
    expect: str                     # regex the one stderr line must match
    plugin: tuple[str, str] | None = None   # (entry-point name, module source defining class Plugin)
    data: Callable[[Path], None] | None = None  # builds a data root under the case's folder ($METAREC_DATA)


def install_plugin(site: Path, case_id: str, name: str, source: str) -> None:
    """A real (if minimal) installed distribution: its module and a dist-info with a ``metarec.methods`` entry
    point, found through sys.path like any pip-installed plugin."""
    module = "plugin_" + re.sub(r"\W", "_", case_id)
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[metarec.methods]\n{name} = {module}:Plugin\n")


SCORER = """
    import torch
    from metarec.methods import Method

    class Plugin(Method):
        \"\"\"A plugin under test.\"\"\"
        defaults = {}

        def fit(self, split, *, seed=0, workdir=None):
            self.n_items = split.n_items
            return self

        def score(self, users):
            return %s
"""


def grid(body: str, name: str = "g"):
    """A grid YAML written under the case's folder: ``body`` edits the finished grid's text."""
    def make(tmp: Path) -> list[str]:
        p = tmp / f"{name}.yaml"
        p.write_text(textwrap.dedent(body).replace("{name}", name))
        return ["bench", str(p)]
    return make


def swap(old: str, new: str, extra: str = "") -> str:
    return GRID.replace("{{", "{").replace("}}", "}").replace(old, new) + extra


def damaged_copy(edit: Callable[[Path], None], cmd: str = "bench"):
    """A copy of the finished grid's store under another name, damaged by ``edit``, then ``metarec <cmd>``."""
    def make(tmp: Path) -> list[str]:
        name = f"copy-{tmp.name}"
        store = Path.cwd() / "store" / "grids"
        shutil.copytree(store / "done", store / name)
        edit(store / name)
        p = tmp / f"{name}.yaml"
        p.write_text(GRID.format(name=name))
        return [cmd, str(p)]
    return make


def first_run(folder: Path) -> Path:
    return next(p for p in (folder / "runs").iterdir() if not p.name.startswith("."))


def truncate(path: Path, keep: int = 40) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def ml100k_root(edit: Callable[[Path], None]):
    """A data root holding a copy of ml-100k (the RecBole wheel's atomic files), changed by ``edit``."""
    def make(tmp: Path) -> None:
        from metarec.data.registry import recbole_ml100k

        folder = tmp / "data" / "movielens-100k"
        folder.mkdir(parents=True)
        for f in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
            shutil.copy(recbole_ml100k() / f, folder / f)
        edit(folder)
    return make


def bad_line(path: Path, line_no: int, text: str) -> None:
    lines = path.read_text(encoding="latin-1").splitlines()
    lines[line_no - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")


RUN = ["run", "-d", "ml-100k", "-m"]
CASES = [
    # ---- metarec run: options and method parameters -------------------------------------------------------------
    Case("run-seed-negative", RUN + ["pop", "--seed", "-1"], r"--seed.*seed must be an integer in 0\.\.2\*\*32-1"),
    Case("run-seed-text", RUN + ["pop", "--seed", "one"], r"--seed.*got 'one'"),
    Case("run-method-unknown", RUN + ["mf-bprr"], r"unknown method 'mf-bprr' \(did you mean 'mf-bpr'\?\)"),
    Case("run-dim-negative", RUN + ["mf-bpr", "--param", "dim=-5"], r"'dim' must be an integer >= 1, got -5"),
    Case("run-batch-zero", RUN + ["mf-bpr", "--param", "batch_size=0"], r"'batch_size' must be an integer >= 1"),
    Case("run-epochs-fraction", RUN + ["mf-bpr", "--param", "max_epochs=1.5"], r"'max_epochs' must be an integer"),
    Case("run-epochs-bool", RUN + ["mf-bpr", "--param", "max_epochs=true"], r"'max_epochs' must be an integer.*True"),
    Case("run-lr-text", RUN + ["mf-bpr", "--param", "lr=abc"], r"'lr' must be a number > 0.0, got 'abc'"),
    Case("run-lr-negative", RUN + ["mf-bpr", "--param", "lr=-1"], r"'lr' must be a number > 0.0, got -1"),
    Case("run-lr-infinite", RUN + ["mf-bpr", "--param", "lr=.inf"], r"'lr' must be a number > 0.0, got inf"),
    Case("run-dropout-one", RUN + ["distill:student", "--param", "dropout=1.0"], r"'dropout' must be a number in \[0.0, 1.0\)"),
    Case("run-bool-as-text", RUN + ["mf-bpr", "--param", "progress_bar=maybe"], r"'progress_bar' must be true or false"),
    Case("run-param-unknown", RUN + ["mf-bpr", "--param", "dimm=8"], r"unknown parameter\(s\) dimm"),
    Case("run-param-no-equals", RUN + ["mf-bpr", "--param", "dim"], r"bad method parameter 'dim': expected KEY=VALUE"),
    Case("run-param-bad-yaml", RUN + ["mf-bpr", "--param", "dim=[1,"], r"'dim=\[1,': value is not valid YAML"),
    Case("run-dataset-unknown", ["run", "-d", "ml-10k", "-m", "pop"], r"unknown dataset 'ml-10k'"),
    Case("run-protocol-unknown", ["run", "-d", "ml-100k", "-p", "generall", "-m", "pop"], r"unknown protocol 'generall'"),
    Case("run-ratios-not-one", RUN + ["pop", "--protocol-param", "ratios=[0.5,0.3,0.1]"], r"ratios must sum to 1"),
    Case("run-ratios-negative", RUN + ["pop", "--protocol-param", "ratios=[0.9,-0.1,0.2]"], r"ratios must be three non-negative"),
    Case("run-protocol-param-unknown", RUN + ["pop", "--protocol-param", "ratio=[0.8,0.1,0.1]"], r"unknown parameter\(s\) ratio"),
    Case("run-metric-k-zero", RUN + ["pop", "--metrics", "ndcg@0"], r"metric 'ndcg@0'.*positive integer"),
    Case("run-metric-empty", RUN + ["pop", "--metrics", "ndcg@10,,recall@10"], r"unknown metric ''"),
    Case("run-metric-unknown", RUN + ["pop", "--metrics", "ndgc@10"], r"unknown metric .*ndgc"),
    Case("run-kcore-negative", RUN + ["pop", "--k-core", "-3"], r"--k-core must be an integer >= 1, got -3"),
    Case("run-min-rating-text", RUN + ["pop", "--min-rating", "abc"], r"argument --min-rating: invalid float value"),
    Case("run-min-rating-too-high", RUN + ["pop", "--min-rating", "9"], r"empty train set"),
    Case("run-out-is-folder", lambda t: RUN + ["pop", "--out", str(t)], r"--out .*: is a folder"),
    Case("run-ties-unknown", RUN + ["pop", "--ties", "random"], r"argument --ties: invalid choice: 'random'"),
    Case("run-cold-start-k-zero", ["run", "-d", "ml-100k", "-p", "cold_start", "-m", "pop", "--protocol-param",
                                   "k_shot=0"], r"'k_shot' must be an integer >= 1, got 0"),
    Case("run-no-dataset", ["run", "-m", "pop"], r"the following arguments are required: --dataset"),
    Case("run-unsupported-protocol", ["run", "-d", "ml-100k", "-p", "sequential", "-m", "mtl:mmoe"],
         r"method 'mtl:mmoe' does not support protocol 'sequential' \(it supports general, impressions\)"),
    # ---- metarec bench: options and grid YAML ------------------------------------------------------------------
    Case("bench-missing-file", lambda t: ["bench", str(t / "nope.yaml")], r"nope.yaml: grid file not found"),
    Case("bench-yaml-syntax", grid("name: x\nseeds: [0\nmethods: {}\n"), r"g.yaml:3: not valid YAML"),
    Case("bench-yaml-list", grid("- a\n- b\n"), r"g.yaml: a grid is a mapping"),
    Case("bench-unknown-key", grid(swap("", "", "colour: red\n")), r"g.yaml: unknown key\(s\) colour"),
    Case("bench-seed-negative", grid(swap("seeds: [0]", "seeds: [-1]")), r"g.yaml: seeds: must be a non-empty list of integers in 0"),
    Case("bench-seed-text", grid(swap("seeds: [0]", "seeds: abc")), r"g.yaml: seeds:"),
    Case("bench-seed-bool", grid(swap("seeds: [0]", "seeds: [true]")), r"g.yaml: seeds:"),
    Case("bench-seed-repeated", grid(swap("seeds: [0]", "seeds: [1, 1]")), r"g.yaml: seeds: repeated seed"),
    Case("bench-metric-bad-k", grid(swap("[ndcg@10]", "[ndcg@x]")), r"g.yaml: metrics\[0\]: metric 'ndcg@x'"),
    Case("bench-metric-protocol-mismatch", grid(swap("[ndcg@10]", "[ndcg@10, mae]", "").replace(
        "protocols: [general]\nmethods", "protocols: [impressions]\nmethods").replace("ml-100k", "mind-sample")),
        r"g.yaml"),
    Case("bench-method-unknown", grid(swap("pop:", "popp:")), r"g.yaml: methods.popp: unknown method 'popp'"),
    Case("bench-param-unknown", grid(swap("pop: {protocols: [general]}", "mf-bpr: {params: {dimm: 3}}")),
         r"g.yaml: methods.mf-bpr: .*unknown parameter\(s\) dimm"),
    Case("bench-param-type", grid(swap("pop: {protocols: [general]}", "mf-bpr: {params: {dim: big}}")),
         r"g.yaml: methods.mf-bpr: .*'dim' must be an integer >= 1, got 'big'"),
    Case("bench-param-negative", grid(swap("pop: {protocols: [general]}", "mf-bpr: {params: {dim: -4}}")),
         r"g.yaml: methods.mf-bpr: .*'dim' must be an integer >= 1, got -4"),
    Case("bench-grid-value-negative", grid(swap("pop: {protocols: [general]}", "mf-bpr: {grid: {lr: [0.01, -0.01]}}")),
         r"g.yaml: methods.mf-bpr.*'lr' must be a number > 0.0, got -0.01"),
    Case("bench-search-outside-domain", grid(swap("pop: {protocols: [general]}", "mf-bpr: {search: {dim: {int: [-8, 64]}}}",
                                                  "tune: {trials: 2}\n")),
         r"g.yaml: methods.mf-bpr.search.dim: int \[-8, 64\] reaches outside the parameter's domain"),
    Case("bench-unsupported-protocol", grid(swap("pop: {protocols: [general]}", "mtl:mmoe: {protocols: [general]}")
                                            .replace("protocols: [general]\nmethods", "protocols: [general, sequential]\nmethods")
                                            .replace("mtl:mmoe: {protocols: [general]}", "mtl:mmoe: {protocols: [sequential]}")),
         r"g.yaml: methods.mtl:mmoe.protocols: mtl:mmoe does not support sequential"),
    Case("bench-tune-trials-zero", grid(swap("", "", "tune: {trials: 0}\n")), r"g.yaml: tune.trials: must be a positive integer"),
    Case("bench-tune-budget-negative", grid(swap("", "", "tune: {budget_s: -5}\n")), r"g.yaml: tune.budget_s: must be a positive number"),
    Case("bench-tune-metric-unknown", grid(swap("", "", "tune: {trials: 2, metric: foo@10}\n")), r"g.yaml: tune.metric: unknown metric"),
    Case("bench-tune-seed-shared", grid(swap("", "", "tune: {trials: 2, seeds: [0]}\n")), r"g.yaml: tune.seeds: tuning seeds must differ"),
    Case("bench-dataset-unknown", grid(swap("name: ml-100k", "name: ml-99k")), r"g.yaml: datasets\[0\].name: unknown dataset 'ml-99k'"),
    Case("bench-protocol-unknown", grid(swap("protocols: [general]\nmethods", "protocols: [genral]\nmethods")),
         r"g.yaml: datasets\[0\].protocols\[0\]: unknown protocol 'genral'"),
    Case("bench-protocol-ratios", grid(swap("protocols: [general]\nmethods",
                                            "protocols: [{name: general, params: {ratios: [0.5, 0.2, 0.1]}}]\nmethods")),
         r"g.yaml.*ratios must sum to 1"),
    Case("bench-threads-zero", grid(swap("", "", "threads: 0\n")), r"g.yaml: threads: must be a positive integer"),
    Case("bench-only-bad-key", lambda t: grid(swap("", ""))(t) + ["--only", "colour=red"], r"--only 'colour=red': expected"),
    Case("bench-only-no-match", lambda t: grid(swap("", ""))(t) + ["--only", "method=zzz"], r"--only method=zzz: matches no method"),
    Case("bench-executor-unknown", lambda t: grid(swap("", ""))(t) + ["--executor", "bogus"], r"argument --executor: invalid choice: 'bogus'"),
    Case("bench-jobs-zero", lambda t: grid(swap("", ""))(t) + ["--jobs", "0"], r"--jobs must be an integer >= 1, got 0"),
    # ---- run folders and tidy tables ---------------------------------------------------------------------------
    Case("bench-truncated-result", damaged_copy(lambda f: truncate(first_run(f) / "result.json")),
         r"result.json:\d+: damaged JSON .*delete .* and rerun the grid"),
    Case("bench-result-missing-keys", damaged_copy(lambda f: (first_run(f) / "result.json").write_text('{"seed": 0}')),
         r"result.json: run result lacks .*delete"),
    Case("report-truncated-parquet", damaged_copy(lambda f: truncate(f / "results.parquet"), cmd="report"),
         r"results.parquet: damaged Parquet file .*rerun `metarec bench"),
    Case("report-tidy-missing-column", damaged_copy(lambda f: __import__("pandas").read_parquet(
        f / "results.parquet").drop(columns=["value"]).to_parquet(f / "results.parquet"), cmd="report"),
         r"results.parquet: table lacks column\(s\) value: rerun `metarec bench"),
    Case("bench-only-damaged-tidy", lambda t: damaged_copy(lambda f: truncate(f / "results.parquet"))(t)
         + ["--only", "method=pop"], r"results.parquet: damaged Parquet file .*delete it and rerun the whole grid"),
    Case("report-never-run", lambda t: ["report", grid(swap("", ""), name="never")(t)[1]],
         r"no results for grid 'never' in .*: run `metarec bench"),
    Case("bench-truncated-failure-record", damaged_copy(
        lambda f: (f / "failed" / f"{first_run(f).name}.json").write_text('{"reason": "x"')
        or shutil.rmtree(first_run(f))), r"failed/.*\.json:\d+: damaged JSON .*delete it to forget the failure"),
    # ---- plugins ------------------------------------------------------------------------------------------------
    Case("plugin-named-like-builtin", RUN + ["pop"], r"plugin method 'pop' .* has the name of a built-in method",
         plugin=("pop", SCORER % "torch.zeros(len(users), self.n_items)")),
    Case("plugin-clash-in-listing", ["methods"], r"plugin method 'mf-bpr' .* has the name of a built-in",
         plugin=("mf-bpr", SCORER % "torch.zeros(len(users), self.n_items)")),
    Case("plugin-import-error", RUN + ["broken-plugin"], r"plugin method 'broken-plugin' .* failed to load",
         plugin=("broken-plugin", "import no_such_module_anywhere\n")),
    Case("plugin-not-a-method", RUN + ["not-a-method"], r"plugin method 'not-a-method' .* not a metarec Method",
         plugin=("not-a-method", "class Plugin:\n    pass\n")),
    Case("plugin-score-wrong-shape", RUN + ["wrong-shape"], r"score\(\) at stage 'valid' returned shape \(\d+, 7\)",
         plugin=("wrong-shape", SCORER % "torch.zeros(len(users), 7)")),
    Case("plugin-score-not-numbers", RUN + ["text-scores"], r"score\(\) at stage 'valid' returned str",
         plugin=("text-scores", SCORER % "'high'")),
    Case("plugin-score-nan", RUN + ["nan-scores"], r"NaN scores at stage 'valid'",
         plugin=("nan-scores", SCORER % "torch.full((len(users), self.n_items), float('nan'))")),
    Case("plugin-unknown-param", RUN + ["no-params", "--param", "k=3"], r"'no-params': unknown parameter\(s\) k",
         plugin=("no-params", SCORER % "torch.zeros(len(users), self.n_items)")),
    # ---- data roots and dataset files ---------------------------------------------------------------------------
    Case("data-incomplete-copy", RUN + ["pop"], r"movielens-100k: incomplete copy of dataset 'ml-100k': missing "
         r"ml-100k.item", data=ml100k_root(lambda f: (f / "ml-100k.item").unlink())),
    Case("data-incomplete-listing", ["datasets", "--quick"], r"incomplete copy of dataset 'ml-100k'",
         data=ml100k_root(lambda f: (f / "ml-100k.user").unlink())),
    Case("data-bad-rating", RUN + ["pop"], r"ml-100k.inter:\d+: ",
         data=ml100k_root(lambda f: bad_line(f / "ml-100k.inter", 5, "196\t242\tthree\t881250949"))),
    Case("data-short-row", RUN + ["pop"], r"ml-100k.inter:\d+: ",
         data=ml100k_root(lambda f: bad_line(f / "ml-100k.inter", 7, "22\t377"))),
    # ---- downloads ----------------------------------------------------------------------------------------------
    Case("download-unknown", ["download", "ml-1000m"], r"unknown dataset 'ml-1000m'"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case, home, tmp_path, monkeypatch):
    finished = digests(home / "store" / "grids" / "done")
    monkeypatch.setenv("METAREC_HOME", str(home / "store"))   # the store holding the finished grid
    if case.plugin:
        install_plugin(tmp_path / "site", case.id, *case.plugin)
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
    if case.data:   # and a fresh store, so the split is built from these files rather than read back
        case.data(tmp_path)
        monkeypatch.setenv("METAREC_DATA", str(tmp_path / "data"))
        monkeypatch.setenv("METAREC_HOME", str(tmp_path / "store"))
    argv = case.args(tmp_path) if callable(case.args) else case.args
    rc, err = cli(argv)
    # `metarec run` announces what it starts on stderr; everything else there must be the one error line
    lines = [line for line in err.splitlines()
             if line.strip() and not re.match(r"\S+ on ml-100k/\w+ \(split|\[run\] ", line)]
    assert rc not in (0, None), f"{case.id}: exit {rc}, stderr {err!r}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"{case.id}: expected one line on stderr, got:\n{err}"
    assert re.search(case.expect, lines[0]), f"{case.id}: {lines[0]!r} does not match {case.expect!r}"
    assert digests(home / "store" / "grids" / "done") == finished, "a finished result changed"


def test_the_corpus_is_large_and_covers_every_surface():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
    surfaces = {c.id.split("-")[0] for c in CASES}
    assert {"run", "bench", "report", "download", "plugin", "data"} <= surfaces


def test_a_tampered_split_is_an_error_not_a_silent_rebuild(home, tmp_path, monkeypatch):
    """A stored split changed after it was written: one line naming the file and how to recover; the file is left
    as it is (no rebuild behind the user's back)."""
    import pandas as pd

    shutil.copytree(home / "store" / "splits", tmp_path / "store" / "splits")
    monkeypatch.setenv("METAREC_HOME", str(tmp_path / "store"))
    target = next((tmp_path / "store" / "splits").rglob("test.parquet"))
    df = pd.read_parquet(target)
    df.loc[0, "item"] = (int(df.loc[0, "item"]) + 1) % 1682
    df.to_parquet(target, index=False)
    before = target.read_bytes()
    rc, err = cli(["run", "-d", "ml-100k", "-m", "pop"])
    lines = [line for line in err.splitlines()
             if line.strip() and "pop on ml-100k" not in line and not line.startswith("[run] ")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(r"test.parquet: sha256 differs from manifest.json.*delete .* to rebuild it", lines[0])
    assert target.read_bytes() == before


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_the_grid_resumes(tmp_path, monkeypatch):
    """SIGINT during a Lightning fit: exit 130, one line saying how to resume, no traceback; finished runs kept."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "g.yaml").write_text(GRID.format(name="ctrlc").replace(
        "pop: {protocols: [general]}", "pop: {protocols: [general]}\n  mf-bpr: {params: {max_epochs: 300, "
        "valid_metric: null}, protocols: [general]}"))
    env = {**os.environ, "METAREC_HOME": str(tmp_path / "store")}
    # SIGINT back to its default in the child: a test run started in the background (`make test &`, nohup)
    # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-m", "metarec.cli", "bench", "g.yaml"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    deadline = time.monotonic() + 240
    for line in proc.stderr:                     # wait until mf-bpr is training
        lines.append(line)
        if line.startswith("[mf-bpr] epoch 2/") or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    rest, out = proc.stderr.read(), proc.stdout.read()
    assert proc.wait(timeout=120) == 130, rest
    tail = [line for line in rest.splitlines() if line.strip() and not line.startswith("[mf-bpr] epoch")]
    assert tail == ["interrupted; rerun the same command to resume (finished runs are kept)"], rest
    assert "Traceback" not in rest
    runs = [p for p in (tmp_path / "store" / "grids" / "ctrlc" / "runs").iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1 and (runs[0] / "result.json").is_file()     # pop's run, finished before the interrupt
    monkeypatch.setenv("METAREC_HOME", str(tmp_path / "store"))   # resumed in this process: same store
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["bench", str(tmp_path / "g.yaml"), "--only", "method=pop"]) == 0
    assert "1 already finished" in out.getvalue(), out.getvalue()


def test_one_broken_dataset_does_not_hide_the_others(tmp_path, monkeypatch, capsys):
    """`metarec datasets` with one incomplete copy: every card still has its row, the broken one says ERROR, one
    stderr line names the folder and the missing file, and the exit status is 1."""
    from metarec.data import list_cards

    ml100k_root(lambda f: (f / "ml-100k.user").unlink())(tmp_path)
    monkeypatch.setenv("METAREC_DATA", str(tmp_path / "data"))
    assert main(["datasets", "--quick"]) == 1
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if line.startswith("| ") and not line.startswith("| dataset ")]
    assert len(rows) == len(list_cards())
    assert next(r for r in rows if r.startswith("| ml-100k ")).split("|")[2].strip() == "ERROR"
    assert all(r.split("|")[2].strip() in ("yes", "no") for r in rows if not r.startswith("| ml-100k "))
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and "movielens-100k: incomplete copy of dataset 'ml-100k': missing ml-100k.user" in err[0]
