"""The run store on its own: run keys, the write-then-rename of a run folder, stale temporaries, failure records,
what is read back (and the one error naming the file when it is damaged), the tidy table and its files."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from metarec.bench.store import (RESULT, RESULT_KEYS, TIDY_COLUMNS, RunStore, _writer_alive, read_json, read_parquet,
                                 run_key, tidy_table, write_run, write_table)
from metarec.errors import DataError


def result(**over) -> dict:
    r = {"dataset": "d", "protocol": "general", "protocol_params": {"ratios": [0.8, 0.1, 0.1]}, "method": "pop",
         "config_params": {"b": 2, "a": 1}, "seed": 3, "num_parameters": 7, "timings": {"fit_s": 1.5},
         "metrics": {"valid": {"ndcg@10": 0.25}, "test": {"ndcg@10": 0.5, "hit@10": 0.75}}}
    r.update(over)
    return r


def finished(store: RunStore, key: str, **over) -> None:
    tmp = store.temp_folder(key)
    write_run(tmp, {"key": key}, result(**over), {})
    store.commit(key, tmp)


@pytest.fixture
def store(tmp_path):
    s = RunStore("g", tmp_path)
    s.prepare()
    return s


def test_run_key_is_a_short_hash_of_the_identity_in_any_key_order():
    a = run_key({"method": "pop", "seed": 0, "params": {"x": 1, "y": 2}})
    assert a == run_key({"params": {"y": 2, "x": 1}, "seed": 0, "method": "pop"})
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != run_key({"method": "pop", "seed": 1, "params": {"x": 1, "y": 2}})


def test_a_run_is_done_only_once_committed_and_the_folder_holds_what_was_written(store):
    tmp = store.temp_folder("k1")
    assert tmp.parent == store.runs and tmp.name == f".tmp-k1-{os.getpid()}"
    users = pd.DataFrame({"ndcg@10": [0.5, 0.25]}, index=pd.Index([4, 9], name="user"))
    write_run(tmp, {"method": "pop", "seed": 3}, result(), {"test": users})
    assert not store.is_done("k1")
    final = store.commit("k1", tmp)
    assert final == store.runs / "k1" and store.is_done("k1") and not tmp.exists()
    assert json.loads((final / "config.json").read_text()) == {"method": "pop", "seed": 3}
    assert store.load_result("k1") == result()
    back = store.per_user("k1", "test")
    assert list(back.columns) == ["user", "ndcg@10"] and back.user.tolist() == [4, 9]
    assert back["ndcg@10"].tolist() == [0.5, 0.25]
    assert store.per_user("k1", "valid") is None


def test_a_second_writer_of_the_same_run_leaves_the_first_result(store):
    finished(store, "k", seed=1)
    tmp = store.temp_folder("k")
    write_run(tmp, {}, result(seed=2), {})
    assert store.commit("k", tmp) == store.runs / "k"
    assert store.load_result("k")["seed"] == 1 and not tmp.exists()


def test_temp_folder_starts_empty_and_creates_the_runs_folder(tmp_path):
    s = RunStore("fresh", tmp_path)          # never prepared: runs/ does not exist yet
    tmp = s.temp_folder("k")
    assert tmp.is_dir() and s.runs.is_dir()
    (tmp / "half-written.txt").write_text("x")
    again = s.temp_folder("k")
    assert again == tmp and list(again.iterdir()) == []


def test_prepare_removes_temporaries_of_dead_writers_only(store):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    # the child takes the default action of every signal a probe could send by mistake (SIGHUP = 1 included): a run
    # started under nohup would otherwise hand it SIGHUP ignored, and a wrong probe would go unnoticed
    live = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                             "for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_DFL)\n"
                             "time.sleep(60)"])
    try:
        names = [f".tmp-a-{dead_pid}", f".tmp-b-{live.pid}", f".tmp-c-{os.getpid()}", ".tmp-d-notapid"]
        for n in names:
            (store.runs / n).mkdir()
            (store.runs / n / "f").write_text("x")
        (store.runs / "finished").mkdir()
        store.prepare()
        left = sorted(p.name for p in store.runs.iterdir())
        assert left == [f".tmp-b-{live.pid}", "finished"]
    finally:
        live.kill()
        live.wait()


def test_writer_alive():
    assert not _writer_alive(f".tmp-k-{os.getpid()}")     # our own: a leftover from this process
    assert _writer_alive(f".tmp-k-{os.getppid()}")
    assert not _writer_alive(".tmp-k-x") and not _writer_alive("nodash")
    assert not _writer_alive(f".tmp-k-{2 ** 22 + 12345}")  # above pid_max: no such process


def test_failure_records_are_kept_until_the_run_succeeds(store):
    assert store.failure("k") is None
    store.record_failure("k", {"error": "boom", "traceback": "..."})
    assert store.failure("k") == {"error": "boom", "traceback": "..."}
    finished(store, "k")
    assert store.failure("k") is None and not (store.failed / "k.json").exists()


def test_damaged_files_are_one_error_naming_the_file_and_the_way_out(store):
    finished(store, "k")
    (store.runs / "k" / RESULT).write_text('{"dataset": "d",\n "seed": ')
    with pytest.raises(DataError) as e:
        store.load_result("k")
    msg = str(e.value)
    assert str(store.runs / "k" / RESULT) in msg and "damaged JSON" in msg and ":2" in msg
    assert f"delete {store.runs / 'k'} and rerun the grid" in msg

    r = result()
    del r["metrics"], r["timings"]
    (store.runs / "k" / RESULT).write_text(json.dumps(r))
    with pytest.raises(DataError, match=r"run result lacks timings, metrics: delete .* and rerun the grid"):
        store.load_result("k")

    (store.failed / "x.json").write_text("{")
    with pytest.raises(DataError, match=r"x\.json.*damaged JSON.*delete it to forget the failure"):
        store.failure("x")


def test_read_json_and_read_parquet_errors(tmp_path):
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(DataError, match=r"dir\.json.*unreadable \(.*\): do this"):
        read_json(tmp_path / "dir.json", "do this")
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(DataError, match=r"bad\.json.*unreadable"):
        read_json(tmp_path / "bad.json", "do this")

    (tmp_path / "t.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataError) as e:
        read_parquet(tmp_path / "t.parquet", "rebuild it")
    assert "t.parquet" in str(e.value) and "damaged Parquet file (ArrowInvalid: " in str(e.value)
    assert str(e.value).endswith("rebuild it")
    pd.DataFrame({"a": [1], "b": [2]}).to_parquet(tmp_path / "ok.parquet")
    assert read_parquet(tmp_path / "ok.parquet", "x", columns=("a",)).a.tolist() == [1]
    with pytest.raises(DataError, match=r"table lacks column\(s\) c, d: rebuild it"):
        read_parquet(tmp_path / "ok.parquet", "rebuild it", columns=("a", "c", "d"))


def test_tidy_table_one_row_per_stage_and_metric_of_finished_runs_only(store):
    finished(store, "k2", method="mf-bpr", seed=0, timings={"fit_s": 2.0, "score_test_s": 0.5, "infer_test_s": 0.1},
             family="classic", eval_mode="sampled-100")
    finished(store, "k1")
    t = tidy_table(store, ["k1", "missing", "k2"])
    assert set(TIDY_COLUMNS) <= set(t.columns) and len(t) == 6
    assert t.method.tolist() == ["mf-bpr"] * 3 + ["pop"] * 3          # sorted by method, then stage, metric
    assert t.stage.tolist()[3:] == ["test", "test", "valid"] and t.metric.tolist()[3:5] == ["hit@10", "ndcg@10"]
    pop = t[t.method == "pop"].iloc[0]
    assert pop.params == '{"a": 1, "b": 2}' and pop.protocol_params == '{"ratios": [0.8, 0.1, 0.1]}'
    assert pop.family == "" and pop.eval_mode == "full" and np.isnan(pop.score_s) and np.isnan(pop.infer_s)
    assert (pop.seed, pop.num_parameters, pop.fit_s, pop.run) == (3, 7, 1.5, "k1")
    mf = t[t.method == "mf-bpr"].iloc[0]
    assert (mf.family, mf.eval_mode, mf.score_s, mf.infer_s) == ("classic", "sampled-100", 0.5, 0.1)
    assert np.isnan(pop.adapt_ms) and np.isnan(mf.adapt_ms)          # neither adapted to a support set
    finished(store, "k3", method="meta:finetune", seed=0, test_users=40,
             timings={"fit_s": 2.0, "score_test_s": 0.5, "adapt_test_s": 0.02})
    assert tidy_table(store, ["k3"]).adapt_ms.iloc[0] == pytest.approx(0.5)   # 20 ms over 40 test users
    assert np.isnan(pop.encode_items_per_s) and np.isnan(pop.encoder_parameters)
    finished(store, "k4", method="distill:text-mpnet-6", text_info={"encoder": "mpnet-6", "items_per_s": 61.5,
                                                                     "parameters": 66_368_640})
    text = tidy_table(store, ["k4"]).iloc[0]
    assert text.encode_items_per_s == 61.5 and text.encoder_parameters == 66_368_640
    assert t.set_index(["run", "stage", "metric"]).value.to_dict()[("k1", "test", "hit@10")] == 0.75
    empty = tidy_table(store, [])
    assert empty.empty and list(empty.columns) == list(t.columns)
    assert set(RESULT_KEYS) <= set(result())


def test_write_table_writes_both_files_whole(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    pq, csv = write_table(df, tmp_path / "out", "tbl")
    assert pq.name == "tbl.parquet" and csv.name == "tbl.csv"
    pd.testing.assert_frame_equal(pd.read_parquet(pq), df)
    pd.testing.assert_frame_equal(pd.read_csv(csv), df)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tbl.csv", "tbl.parquet"]   # no temporaries


# ---- model selection on validation ---------------------------------------------------------------------------
def test_selection_keeps_methods_without_the_valid_metric():
    from metarec.bench.store import select_configs

    rows = []
    for method, params, metric, value in (("a", '{"x": 1}', "mae", 0.9), ("a", '{"x": 2}', "mae", 0.8),
                                          ("pop", "{}", "ndcg@10", 0.1)):
        for stage in ("valid", "test"):
            rows.append({"dataset": "d", "protocol": "p", "protocol_params": "{}", "method": method,
                         "params": params, "seed": 0, "stage": stage, "metric": metric, "value": value})
    t = select_configs(pd.DataFrame(rows), "mae")
    assert set(t[t.selected].method) == {"a", "pop"}
    assert set(t[t.selected & (t.method == "a")].params) == {'{"x": 2}'}  # lower MAE wins


def test_run_keys_follow_resolved_parameters(monkeypatch):
    """Spelling out a default gives the same key; changing a default gives a new one (no stale cache hit)."""
    from metarec.bench.grid import RunSpec
    from metarec.bench.store import run_key
    from metarec.methods import get_method

    def spec(params):
        return RunSpec(dataset="ml-100k", preprocess={}, protocol="general", protocol_params={}, split_seed=0,
                       method="mf-bpr", params=params, seed=0, metrics=("ndcg@10",), eval_mode="full", threads=1)

    cls = get_method("mf-bpr")
    plain = run_key(spec({}).identity("fp"))
    assert run_key(spec({"lr": cls.defaults["lr"]}).identity("fp")) == plain
    monkeypatch.setattr(cls, "defaults", {**cls.defaults, "lr": cls.defaults["lr"] * 2})
    assert run_key(spec({}).identity("fp")) != plain


def test_selection_never_falls_back_to_test():
    """Several configurations and no validation stage: an error naming the cell, not a selection on test. One
    configuration without validation is kept (nothing is selected)."""
    from metarec.bench.store import select_configs
    from metarec.errors import ConfigError

    rows = [{"dataset": "d", "protocol": "p", "protocol_params": "{}", "method": m, "params": params, "seed": 0,
             "stage": "test", "metric": "ndcg@10", "value": v}
            for m, params, v in (("a", '{"x": 1}', 0.1), ("a", '{"x": 2}', 0.3), ("b", "{}", 0.2))]
    with pytest.raises(ConfigError, match=r"d/p a: 2 configurations but the split has no validation stage"):
        select_configs(pd.DataFrame(rows), "ndcg@10")
    t = select_configs(pd.DataFrame(rows[2:]), "ndcg@10")
    assert t.selected.all()


def test_selection_takes_the_best_mean_validation_value_over_seeds():
    """x=2 has the best *mean* validation NDCG over seeds; x=1 wins on seed 0 alone, on its best seed, and on test:
    each of those wrong rules would select it."""
    from metarec.bench.store import select_configs

    rows = []
    for params, valid, test in (('{"x": 1}', [0.30, 0.10], [0.50, 0.50]), ('{"x": 2}', [0.22, 0.22], [0.10, 0.10]),
                                ('{"x": 3}', [0.05, 0.05], [0.90, 0.90])):
        for seed in (0, 1):
            for stage, v in (("valid", valid[seed]), ("test", test[seed])):
                rows.append({"dataset": "d", "protocol": "p", "protocol_params": "{}", "method": "a",
                             "params": params, "seed": seed, "stage": stage, "metric": "ndcg@10", "value": v})
    t = select_configs(pd.DataFrame(rows), "ndcg@10")
    assert set(t[t.selected].params) == {'{"x": 2}'}
    assert len(t[t.selected]) == 4     # both seeds, both stages of the selected configuration



def test_the_store_layout_on_disk(tmp_path, monkeypatch):
    """The documented layout (module docstring, README "Where things go"): other tools read these paths."""
    s = RunStore("grid-a", tmp_path)
    assert (s.root, s.runs, s.failed) == (tmp_path / "grids" / "grid-a", tmp_path / "grids" / "grid-a" / "runs",
                                          tmp_path / "grids" / "grid-a" / "failed")
    monkeypatch.setenv("METAREC_HOME", str(tmp_path / "home"))
    assert RunStore("g").root == tmp_path / "home" / "grids" / "g"


def test_run_keys_of_values_json_does_not_know():
    from pathlib import Path

    assert run_key({"root": Path("/a/b")}) == run_key({"root": "/a/b"})


def test_recovery_advice_is_exact(store):
    finished(store, "k")
    (store.failed / "k.json").write_text("[")
    with pytest.raises(DataError, match=r"\): delete it to forget the failure \(the run is then retried\)$"):
        store.failure("k")
    r = result()
    del r["seed"]
    (store.runs / "k" / RESULT).write_text(json.dumps(r))
    with pytest.raises(DataError) as e:
        store.load_result("k")
    assert str(e.value) == (f"{store.runs / 'k' / RESULT}: run result lacks seed: delete {store.runs / 'k'} and "
                            "rerun the grid to recompute this run")
    (store.runs / "k" / "per_user_test.parquet").write_bytes(b"PAR1 no")
    with pytest.raises(DataError, match=r"per_user_test.parquet: damaged Parquet file .*: delete .*k and rerun the "
                                        r"grid to recompute this run$"):
        store.per_user("k", "test")


def test_read_parquet_quotes_the_reader_error_cut_at_120_characters(tmp_path, monkeypatch):
    def fail(path):
        raise OSError("x" * 200)

    monkeypatch.setattr(pd, "read_parquet", fail)
    with pytest.raises(DataError) as e:
        read_parquet(tmp_path / "t.parquet", "redo")
    assert str(e.value) == f"{tmp_path / 't.parquet'}: damaged Parquet file (OSError: {'x' * 120}): redo"
    monkeypatch.undo()
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "ok.parquet")
    with pytest.raises(DataError) as e:
        read_parquet(tmp_path / "ok.parquet", "redo", columns=("b",))
    assert str(e.value) == f"{tmp_path / 'ok.parquet'}: table lacks column(s) b: redo"


def test_tidy_table_writes_parameters_in_one_key_order(store):
    finished(store, "k", protocol_params={"z": 1, "a": [2]}, config_params={"y": 1, "b": 2})
    row = tidy_table(store, ["k"]).iloc[0]
    assert (row.protocol_params, row.params) == ('{"a": [2], "z": 1}', '{"b": 2, "y": 1}')
    t = tidy_table(store, ["k"])      # no run timed scoring: NaN floats, not missing objects
    assert t.score_s.dtype == float and t.infer_s.dtype == float and t.score_s.isna().all()
    assert list(t.columns) == ["run", "dataset", "protocol", "protocol_params", "method", "family", "params", "seed",
                               "stage", "metric", "value", "num_parameters", "fit_s", "score_s", "infer_s", "eval_mode",
                               "adapt_ms", "encode_items_per_s", "encoder_parameters", "cpu"]
    assert list(t.index) == list(range(len(t)))


def test_equal_validation_means_select_the_first_configuration_by_its_parameters():
    """A deterministic tie rule: whatever order the rows come in, the smaller parameter label wins."""
    from metarec.bench.store import select_configs

    rows = [{"dataset": "d", "protocol": "p", "protocol_params": "{}", "method": "a", "params": params, "seed": 0,
             "stage": "valid", "metric": "ndcg@10", "value": 0.2} for params in ('{"x": 2}', '{"x": 1}', '{"x": 3}')]
    for order in (rows, rows[::-1]):
        t = select_configs(pd.DataFrame(order), "ndcg@10")
        assert t.selected.dtype == bool and set(t[t.selected].params) == {'{"x": 1}'}
    t = select_configs(pd.DataFrame(rows[:1]).iloc[:0], "ndcg@10")
    assert t.empty and "selected" in t.columns


def test_write_table_creates_missing_folders(tmp_path):
    pq, _ = write_table(pd.DataFrame({"a": [1]}), tmp_path / "x" / "y")
    assert pq.is_file()


def test_checking_a_writer_does_not_signal_it(store):
    # the child takes the default action of every signal a probe could send by mistake (SIGHUP = 1 included): a run
    # started under nohup would otherwise hand it SIGHUP ignored, and a wrong probe would go unnoticed
    # (it says so once that is done: a probe before would meet the inherited dispositions)
    live = subprocess.Popen([sys.executable, "-c", "import signal, time\n"
                             "for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_DFL)\n"
                             "print('ready', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert live.stdout.readline().strip() == "ready"
        assert _writer_alive(f".tmp-k-{live.pid}")
        with pytest.raises(subprocess.TimeoutExpired):   # probed with signal 0: still running a moment later
            live.wait(timeout=0.3)
    finally:
        live.kill()
        live.wait()


def test_selection_without_validation_says_what_to_do():
    from metarec.bench.store import select_configs
    from metarec.errors import ConfigError

    rows = [{"dataset": "d", "protocol": "p", "protocol_params": "{}", "method": "a", "params": params, "seed": 0,
             "stage": "test", "metric": "ndcg@10", "value": 0.1} for params in ('{"x": 1}', '{"x": 2}')]
    with pytest.raises(ConfigError) as e:
        select_configs(pd.DataFrame(rows), "ndcg@10")
    assert str(e.value) == ("d/p a: 2 configurations but the split has no validation stage to select among them "
                            "(selecting on test would report the best test score as if it were chosen blind); give "
                            "this method one configuration here or use a protocol with a validation stage")


def test_replace_run_puts_the_new_folder_in_place_and_leaves_nothing_aside(store):
    finished(store, "k1", seed=1)
    tmp = store.temp_folder("k1")
    write_run(tmp, {"key": "k1"}, result(seed=2), {})
    store.commit("k1", tmp)          # commit keeps the run there (same key, same result)
    assert store.load_result("k1")["seed"] == 1
    tmp = store.temp_folder("k1")
    write_run(tmp, {"key": "k1"}, result(seed=2), {})
    store.replace_run("k1", tmp)     # replace_run does not
    assert store.load_result("k1")["seed"] == 2
    assert sorted(p.name for p in store.runs.iterdir()) == ["k1"]   # no temporary or old folder left
