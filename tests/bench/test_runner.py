"""Runner properties: resume after SIGKILL, determinism, failures recorded, executors agree, report builds."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metarec.bench import parse_grid, run_grid
from metarec.utils import source_digest
from tests.bench._kill import bench, bench_then_kill

TINY = {"name": "tiny", "seeds": [0, 1], "metrics": ["ndcg@10", "recall@10", "coverage@10"],
        "datasets": [{"name": "ml-100k", "protocols": ["general"]}],
        "methods": {"pop": {}, "mf-bpr": {"params": {"max_epochs": 2, "eval_every": 1, "progress_bar": False,
                                                     "batch_size": 4096}, "grid": {"dim": [8, 16]}}}}
METRIC_COLS = ["dataset", "protocol", "method", "params", "seed", "stage", "metric", "value", "selected"]


def values(tidy: pd.DataFrame) -> pd.DataFrame:
    return tidy[METRIC_COLS].sort_values(METRIC_COLS[:7]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny grid run once, uninterrupted, in-process."""
    root = tmp_path_factory.mktemp("ref")
    out = run_grid(parse_grid(TINY), root=root, progress=False)
    assert out["counts"]["done"] == 6 and out["counts"]["failed"] == 0
    return root, out


def test_same_seed_same_metrics(reference, tmp_path):
    _, ref = reference
    again = run_grid(parse_grid(TINY), root=tmp_path, progress=False)
    pd.testing.assert_frame_equal(values(again["tidy"]), values(ref["tidy"]))
    # different seeds do differ (the test can fail)
    t = ref["tidy"]
    a = t[(t.method == "mf-bpr") & (t.seed == 0) & (t.metric == "ndcg@10")].value.to_numpy()
    b = t[(t.method == "mf-bpr") & (t.seed == 1) & (t.metric == "ndcg@10")].value.to_numpy()
    assert not (a == b).all()


def test_every_run_records_its_machine_memory_and_code(reference):
    _, ref = reference
    for path in ref["store"].runs.glob("*/result.json"):
        r = json.loads(path.read_text())
        assert r["machine"]["threads"] == 1 and r["machine"]["cores"] >= 1 and r["machine"]["cpu"]
        assert r["peak_rss_mb"] > 50 and r["peak_rss_scope"] in ("run", "process")
        assert r["versions"]["torch"] and r["wall_s"] > 0 and r["cpu_s"] > 0
        # the code its process imported: this checkout's sources, unchanged while the tests ran
        assert r["code"]["source_sha256"] == source_digest() and r["code"]["changed_since_start"] is False
        assert r["git_revision"] == r["code"]["revision"]
    # the peak is the run's own: a window opened after a big allocation was given back does not see it, and sees what
    # comes after it (in a fresh interpreter, so the allocator's state is known: a 150 MB block is unmapped on free)
    import subprocess
    import sys

    script = """
import json, numpy as np
from metarec.utils import peak_memory_mb, reset_peak_memory
def resident():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024
earlier = np.ones(150_000_000 // 8); high = resident(); del earlier
ok = reset_peak_memory(); start = peak_memory_mb(True)
big = np.ones(80_000_000 // 8); after = peak_memory_mb(True)
print(json.dumps({"ok": ok, "high": high, "rss": resident(), "start": start, "after": after,
                  "lifetime": peak_memory_mb(False)}))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                    check=True).stdout)
    if out["ok"]:
        assert out["start"]["peak_rss_scope"] == "run" and out["lifetime"]["peak_rss_scope"] == "process"
        assert out["start"]["peak_rss_mb"] < out["high"] - 100 <= out["lifetime"]["peak_rss_mb"]
        assert out["after"]["peak_rss_mb"] >= out["start"]["peak_rss_mb"] + 70


def test_resume_finished_runs_not_recomputed(reference):
    root, ref = reference
    store = ref["store"]
    stamps = {p.name: p.stat().st_mtime_ns for p in store.runs.glob("*/result.json")}
    out = run_grid(parse_grid(TINY), root=root, progress=False)
    assert out["counts"]["done"] == 0 and out["counts"]["cached"] == 6
    assert stamps == {p.name: p.stat().st_mtime_ns for p in store.runs.glob("*/result.json")}


@pytest.mark.slow
@settings(max_examples=6)
@given(lost=st.sets(st.integers(0, 5)), half_written=st.booleans())
def test_resume_is_idempotent_whatever_was_lost(reference, lost, half_written):
    """Whatever subset of finished runs an interruption lost (none, some, all; each gone, or left half-written by
    a dead process), resuming recomputes exactly those and gives the uninterrupted table; resuming again runs
    nothing."""
    import os
    import shutil
    import tempfile

    root, ref = reference
    keys = sorted(p.name for p in ref["store"].runs.iterdir() if not p.name.startswith("."))
    assert len(keys) == 6
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d) / "store"
        shutil.copytree(root, copy)
        runs = copy / "grids" / "tiny" / "runs"
        for i in lost:
            if half_written:   # what SIGKILL leaves: the temporary folder of a writer that no longer runs
                (runs / keys[i]).rename(runs / f".tmp-{keys[i]}-{2 ** 22 + os.getpid()}")
            else:
                shutil.rmtree(runs / keys[i])
        out = run_grid(parse_grid(TINY), root=copy, progress=False)
        assert (out["counts"]["done"], out["counts"]["cached"]) == (len(lost), 6 - len(lost))
        pd.testing.assert_frame_equal(values(out["tidy"]), values(ref["tidy"]))
        assert not list(runs.glob(".tmp-*"))
        again = run_grid(parse_grid(TINY), root=copy, progress=False)
        assert (again["counts"]["done"], again["counts"]["cached"]) == (0, 6)


def test_selection_uses_valid_metric(reference):
    _, ref = reference
    t = ref["tidy"]
    val = t[(t.stage == "valid") & (t.metric == "ndcg@10") & (t.method == "mf-bpr")]
    best = val.groupby("params").value.mean().idxmax()
    assert set(t[t.selected & (t.method == "mf-bpr")].params) == {best}


@pytest.mark.slow
def test_sigkill_mid_grid_then_resume(reference, tmp_path):
    _, ref = reference
    grid_file, env, runs, finished = bench_then_kill(TINY, tmp_path, after=2)
    assert 2 <= len(finished) < 6, "the kill must land mid-grid"
    for folder in runs.iterdir():  # no half-written run folder is visible under its final name
        assert folder.name.startswith(".tmp-") or (folder / "result.json").is_file()
    done = bench(grid_file, env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(finished)} already finished" in done.stdout
    for key, stamp in finished.items():
        assert (runs / key / "result.json").stat().st_mtime_ns == stamp  # not recomputed
    assert not list(runs.glob(".tmp-*"))
    resumed = pd.read_parquet(tmp_path / "home" / "grids" / "tiny" / "results.parquet")
    pd.testing.assert_frame_equal(values(resumed), values(ref["tidy"]))


def test_failed_run_is_recorded_and_grid_goes_on(tmp_path):
    grid = dict(TINY, seeds=[0], methods={"pop": {}, "mf-bpr": {"params": {"max_epochs": 3, "lr": 1e30,
                                                                           "progress_bar": False}}})
    out = run_grid(parse_grid(grid), root=tmp_path, progress=False)
    assert out["counts"] == {**out["counts"], "done": 1, "failed": 1}
    (failure,) = out["failures"]
    assert "non-finite loss" in failure["reason"] and "Traceback" in failure["traceback"]
    assert set(out["tidy"].method) == {"pop"}
    again = run_grid(parse_grid(grid), root=tmp_path, progress=False)
    assert again["counts"]["skipped_failed"] == 1 and again["counts"]["failed"] == 0


# the pool and Ray executors against the in-process run: tests/bench/test_tune.py::
# test_pool_and_ray_select_the_same_configuration (a tuned grid: its trials, confirm runs and an untuned method's
# runs go through both executors and must equal the in-process table, selection included)


def test_report_tables_and_figures(reference, tmp_path):
    from metarec import report

    root, ref = reference
    grid = parse_grid(TINY)
    out = report.export(grid, ref["tidy"], ref["store"], tmp_path / "results" / "tiny")
    built = report.build(out)
    md = Path(built["markdown"]).read_text()
    assert "| mf-bpr |" in md and "| pop |" in md and "±" in md and "**" in md
    tex = (out / built["latex"][0]).read_text()
    assert "\\toprule" in tex and "\\textbf{" in tex
    assert "\\label{tab:tiny:ml_100k_general}" in tex   # the grid in the label: unique across a paper's grids
    assert (out / "figures" / "bars_ndcg10.png").stat().st_size > 5000
    assert built["figures"]["kshot"].startswith("skipped")
    sig = pd.read_csv(out / "tables" / "significance.csv")
    assert set(sig.reference) == {"mf-bpr"} or set(sig.reference) == {"pop"}
    assert ((sig.seed_p_holm >= sig.seed_p - 1e-12) & (sig.seed_p_holm <= 1)).all()
    assert "against" in md and "p seeds (Holm)" in md   # the Δ table with intervals
    meta = json.loads((out / "meta.json").read_text())
    assert meta["valid_metric"] == "ndcg@10"
    # which code trained the table's runs: one version here, counted over every run the tables show
    n_runs = ref["tidy"][ref["tidy"].selected & (ref["tidy"].stage == "test")].run.nunique()
    assert list(meta["code_versions"].values()) == [n_runs]
    assert f"the {n_runs} runs in these tables were trained by 1 code version(s)" in md


def test_code_versions_tell_apart_what_trained_each_run():
    from metarec.report import code_versions

    same = {"revision": "a" * 40, "uncommitted": False, "source_sha256": "1" * 64, "changed_since_start": False}
    runs = [{"code": same}, {"code": dict(same)}, {"code": {**same, "source_sha256": "2" * 64}},
            {"code": {**same, "uncommitted": True}}, {"code": {**same, "changed_since_start": True}},
            {"git_revision": "b" * 40}]
    got = code_versions(runs)
    assert got == {f"{'a' * 12} sources {'1' * 12}": 2, f"{'a' * 12} sources {'2' * 12}": 1,
                   f"{'a' * 12} sources {'1' * 12} uncommitted": 1,
                   f"{'a' * 12} sources {'1' * 12} changed while running": 1, f"{'b' * 12} (unchecked)": 1}


def test_only_runs_a_part_and_keeps_the_rest_of_the_table(reference, tmp_path):
    """``--only``: a part of a grid runs in the same store; the other cells' rows stay in the tidy table."""
    from metarec.errors import ConfigError

    grid = parse_grid(TINY)
    part = grid.restrict(["method=pop"])
    assert {m for _, _, m in part.cells()} == {"pop"} and part.name == grid.name
    out = run_grid(part, root=tmp_path, progress=False)
    assert out["counts"]["done"] == 2 and set(out["tidy"].method) == {"pop"}
    out = run_grid(grid.restrict(["method=mf-*", "protocol=gen*"]), root=tmp_path, progress=False)
    assert out["counts"]["done"] == 4 and out["counts"]["cached"] == 0
    # pop's rows were kept: the table equals the whole grid run at once
    pd.testing.assert_frame_equal(values(out["tidy"]), values(reference[1]["tidy"]))
    for bad, msg in [(["model=pop"], "expected dataset=GLOB"), (["method=recbole:*"], "matches no method"),
                     (["method=pop", "protocol=sequential"], "matches no protocol")]:
        with pytest.raises(ConfigError, match=msg):
            grid.restrict(bad)

def test_the_source_digest_sees_every_python_byte_and_name(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    first = source_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("not code")
    assert source_digest(tmp_path) == first                      # only Python sources count
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    assert source_digest(tmp_path) != first                      # one byte
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    assert source_digest(tmp_path) == first
    (tmp_path / "a.py").rename(tmp_path / "c.py")
    assert source_digest(tmp_path) != first                      # same bytes under another name


def test_a_run_says_when_its_process_code_is_not_the_checkout(tmp_path, monkeypatch):
    """A long-lived worker keeps the modules it imported while the checkout changes: the run records the code the
    process started with and flags that the sources moved since, and its card says so (session 10: pool workers
    that outlived two commits wrote results labelled with the new HEAD)."""
    import metarec.bench.execute as execute
    from metarec import utils
    from metarec.report import card

    ident = utils.code_identity()
    assert ident == utils.code_identity() and ident is not utils.code_identity()   # taken once; a copy each time
    assert not utils.code_now_differs()
    # a loaded module's file differs on disk from what it was at import: flagged; a file never imported: not
    monkeypatch.setitem(utils._FILES_AT_IMPORT, "utils.py", "0" * 64)
    assert utils.code_now_differs()
    monkeypatch.undo()
    monkeypatch.setitem(utils._FILES_AT_IMPORT, "never_imported.py", "0" * 64)
    assert not utils.code_now_differs()
    monkeypatch.undo()
    # the report package (loaded here: card) renders results, no run calls it: a change to it is not the run's
    import metarec.report.plots  # noqa: F401
    monkeypatch.setitem(utils._FILES_AT_IMPORT, "report/plots.py", "0" * 64)
    assert not utils.code_now_differs()
    monkeypatch.undo()
    assert not utils.code_now_differs()

    grid = {"name": "code", "seeds": [0], "metrics": ["ndcg@10"],
            "datasets": [{"name": "ml-100k", "protocols": ["general"]}], "methods": {"pop": {}}}
    for moved in (False, True):
        monkeypatch.setattr(execute, "code_now_differs", lambda moved=moved: moved)
        out = run_grid(parse_grid(grid), root=tmp_path / str(moved), progress=False)
        (path,) = out["store"].runs.glob("*/result.json")
        result = json.loads(path.read_text())
        assert result["code"]["changed_since_start"] is moved
        assert result["code"]["source_sha256"] == ident["source_sha256"]
        text = card(result)
        assert ("the sources changed while its process ran" in text) is moved
        assert f"sources sha256 `{ident['source_sha256'][:16]}`" in text
    for dirty in (False, True):
        assert ("with uncommitted changes" in card({**result, "code": {**result["code"], "uncommitted": dirty}})) is dirty
    # a run recorded before the code identity existed: its revision, said to be unchecked
    old = {k: v for k, v in result.items() if k != "code"}
    assert "not checked against its code" in card(old)


def test_the_local_pool_never_runs_more_threads_than_cores(monkeypatch, capsys):
    from metarec.bench.runner import local_jobs

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    two_threads = parse_grid({**TINY, "threads": 2})
    assert local_jobs(two_threads, "pool", 2) == 1                 # 2 x 2 threads on 2 cores: one at a time
    assert "exceed the 2 cores here; running 1 at a time" in capsys.readouterr().err
    assert local_jobs(parse_grid(TINY), "pool", 2) == 2            # 2 x 1 thread fits
    assert local_jobs(two_threads, "ray", 2) == 2                  # a cluster's cores are not this machine's
    assert local_jobs(parse_grid({**TINY, "threads": 3}), "pool", 2) == 1   # never below one job
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert local_jobs(two_threads, "pool", 2) == 2


def test_a_new_machine_loads_the_artifacts_a_grid_committed_instead_of_building_them(tmp_path, monkeypatch):
    """keep_artifacts: [teacher]: `metarec report` commits the grid's teacher checkpoints; a fresh store (no runs,
    no artifacts) running the grid again loads them as they were built (same meta, build time included) and the
    run's metrics are the same. Without the key nothing is committed. A teacher is a charged artifact: the row that
    trains it counts the training in its own cost (only item-text artifacts are set apart)."""
    from metarec import report

    seq = {"max_epochs": 1, "eval_every": 1, "progress_bar": False, "max_len": 8, "batch_size": 512, "dim": 8,
           "n_layers": 1}
    raw = {"name": "kept", "seeds": [0], "metrics": ["ndcg@10"], "keep_artifacts": ["teacher"],
           "datasets": [{"name": "ml-100k", "protocols": ["sequential"]}],
           "methods": {"distill:teacher": {"params": seq}}}
    first = run_grid(parse_grid(raw), root=tmp_path / "old", progress=False)
    built = [p for p in (tmp_path / "old" / "artifacts" / "teacher").iterdir() if not p.name.startswith(".")]
    assert first["counts"]["done"] == 1 and len(built) == 1
    trained = first["store"].load_result(first["tidy"].run.iloc[0])
    # the teacher row's training is its teacher artifact: a charged kind, counted in the run's own cost
    assert trained["artifact_build"] == {"wall_s": 0.0, "cpu_s": 0.0}
    assert trained["timings"]["fit_s"] > 0.2 and trained["cpu_s"] >= trained["timings"]["fit_s"] / 4
    assert report.save_artifacts(parse_grid({**raw, "keep_artifacts": []}), tmp_path / "results" / "kept",
                                 root=tmp_path / "old") == []
    written = report.save_artifacts(parse_grid(raw), tmp_path / "results" / "kept", root=tmp_path / "old")
    assert [p.name for p in written] == [built[0].name]

    monkeypatch.chdir(tmp_path)                     # results/kept/ holds the artifacts alone: the run is redone
    again = run_grid(parse_grid(raw), root=tmp_path / "new", progress=False)
    assert again["counts"]["done"] == 1
    adopted = tmp_path / "new" / "artifacts" / "teacher" / built[0].name / "meta.json"
    assert json.loads(adopted.read_text()) == json.loads((built[0] / "meta.json").read_text())
    pd.testing.assert_frame_equal(values(again["tidy"]), values(first["tidy"]))
    loaded = again["store"].load_result(again["tidy"].run.iloc[0])
    assert loaded["timings"]["fit_s"] < trained["timings"]["fit_s"] / 5           # loaded, not trained
