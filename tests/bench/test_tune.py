"""Tuning: search spaces, the tune: grid block, studies in SQLite, select-then-confirm, resume after SIGKILL,
executors agreeing, pruning."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from metarec.bench import parse_grid, run_grid
from tests.bench._kill import bench, bench_then_kill
from metarec.errors import ConfigError
from metarec.methods.space import parse_space, space_size

FAST = {"max_epochs": 2, "eval_every": 1, "progress_bar": False}
TUNED = {"name": "tuned", "seeds": [0, 1], "metrics": ["ndcg@10", "recall@10"],
         "datasets": [{"name": "ml-100k", "protocols": ["general"]}],
         "tune": {"trials": 3, "seeds": [7], "sampler_seed": 3, "startup_trials": 2},
         "methods": {"pop": {},
                     "mf-bpr": {"params": {**FAST, "dim": 8}, "search": {"lr": {"float": [1e-3, 5e-2], "log": True}}}}}


def trial_values(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[["study", "number", "state", "value", "params", "selected"]].sort_values(
        ["study", "number"]).reset_index(drop=True)


def table_values(tidy: pd.DataFrame) -> pd.DataFrame:
    cols = ["method", "params", "seed", "stage", "metric", "value"]
    return tidy[cols].sort_values(cols[:5]).reset_index(drop=True)


# ---- spaces -------------------------------------------------------------------------------------------------
def test_space_parsing_accepts_each_kind():
    space = parse_space({"lr": {"float": [1e-4, 1e-1], "log": True}, "p": {"float": [0.0, 0.5], "step": 0.1},
                         "dim": {"int": [8, 64], "log": True}, "loss": ["bpr", "ce"],
                         "act": {"categorical": ["relu"]}}, "s", {"lr": 0, "p": 0, "dim": 0, "loss": 0, "act": 0})
    assert space["lr"].kind == "float" and space["lr"].log and space["lr"].low == 1e-4
    assert space["p"].step == 0.1 and space["dim"].kind == "int" and space["loss"].choices == ("bpr", "ce")
    assert space_size({"loss": space["loss"], "act": space["act"]}) == 2
    assert space_size({"p": space["p"]}) == 6 and space_size({"lr": space["lr"]}) == float("inf")
    dist = space["dim"].to_optuna()
    assert (dist.low, dist.high, dist.log) == (8, 64, True)


@pytest.mark.parametrize("raw, message", [
    ({"lr": {"float": [0.0, 1.0], "log": True}}, "log-scale range must be positive"),
    ({"lr": {"float": [1.0, 0.5]}}, "low must be below high"),
    ({"lr": {"float": [1e-3, 1e-1], "log": True, "step": 0.1}}, "step and log cannot be combined"),
    ({"lr": {"int": [1.5, 3]}}, "int needs"),
    ({"lr": {"float": [1, 2], "int": [1, 2]}}, "exactly one of"),
    ({"lr": {"floaty": [1, 2]}}, "exactly one of"),
    ({"lr": []}, "non-empty list"),
    ({"lr": [[64, 32]]}, "categorical values must be"),
    ({"lr": {"categorical": [1], "log": True}}, "unknown key"),
    ({"lr": 0.1}, "a distribution is"),
    ({"nope": [1, 2]}, "not a parameter of this method"),
])
def test_space_errors_name_the_parameter(raw, message):
    with pytest.raises(ConfigError, match=message) as e:
        parse_space(raw, "methods.x.search", {"lr": 0.1})
    assert "methods.x.search." in str(e.value)


def test_every_registered_method_declares_a_valid_space():
    from metarec.methods import get_method, list_methods

    tuned = []
    for name in list_methods():
        cls = get_method(name)
        space = cls.declared_space()  # raises on a parameter the method does not have
        if space:
            tuned.append(name)
    assert "mf-bpr" in tuned and "recbole:BPR" in tuned


# ---- the tune: block ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"tune": {"seeds": [7]}}, "give trials, budget_s or both"),
    ({"tune": {"trials": 3, "seeds": [0]}}, "tuning seeds must differ"),
    ({"tune": {"trials": 0}}, "trials: must be a positive integer"),
    ({"tune": {"trials": 3, "budget_s": -1}}, "budget_s: must be a positive number"),
    ({"tune": {"trials": 3, "pruner": "hyperband"}}, "pruner: must be one of"),
    ({"tune": {"trials": 3, "metric": "ndcg@x"}}, "tune.metric"),
    ({"tune": {"trials": 3, "trails": 4}}, "unknown key"),
    ({"tune": {"trials": 3, "share": ["k_shot"]}}, "share: must map protocol parameters"),
])
def test_tune_block_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid({**TUNED, **change})


def test_grid_and_search_keys_checked():
    g = copy.deepcopy(TUNED)
    g["methods"]["mf-bpr"]["grid"] = {"lr": [0.01]}
    with pytest.raises(ConfigError, match="a tuned grid searches"):
        parse_grid(g)
    g = copy.deepcopy(TUNED)
    del g["tune"]
    with pytest.raises(ConfigError, match="needs the grid's tune: block"):
        parse_grid(g)
    g = copy.deepcopy(TUNED)
    g["methods"]["mf-bpr"]["search"] = {"lrr": [0.1]}
    with pytest.raises(ConfigError, match="methods.mf-bpr.search.lrr: not a parameter"):
        parse_grid(g)


def test_fixed_parameters_leave_the_space_and_untuned_methods_run_plain():
    g = copy.deepcopy(TUNED)
    del g["methods"]["mf-bpr"]["search"]                   # the declared space: lr and weight_decay
    g["methods"]["mf-bpr"]["params"]["weight_decay"] = 0.0  # fixed: not searched
    grid = parse_grid(g)
    assert set(grid.methods["mf-bpr"]["space"]) == {"lr"}
    assert grid.is_tuned("mf-bpr") and not grid.is_tuned("pop")
    assert {s.method for s in grid.runs()} == {"pop"}  # the tuned method's runs come from its study
    g["methods"]["mf-bpr"]["tune"] = False
    assert {s.method for s in parse_grid(g).runs()} == {"pop", "mf-bpr"}


# ---- studies ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tuned_reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuned")
    out = run_grid(parse_grid(TUNED), root=root, progress=False)
    assert not out["failures"], out["failures"]
    return root, out


def test_select_then_confirm(tuned_reference):
    import optuna

    root, out = tuned_reference
    trials, tidy, store = out["trials"], out["tidy"], out["store"]
    assert len(trials) == 3 and set(trials.state) == {"COMPLETE"}
    assert trials.params.nunique() == 3                    # three different learning rates were tried
    best = trials.loc[trials.value.idxmax()]
    assert trials.selected.sum() == 1 and bool(best.selected)
    # only confirm runs (evaluation seeds 0 and 1, the best trial's parameters) and pop enter the table
    mf = tidy[tidy.method == "mf-bpr"]
    assert set(mf.params) == {best.params} and set(mf.seed) == {0, 1}
    assert set(tidy.seed) == {0, 1} and set(tidy.method) == {"pop", "mf-bpr"}
    # every trial is a run in the store, on the tuning seed, with the trial's value as its valid metric
    study = optuna.load_study(study_name=best.study, storage=f"sqlite:///{store.root / 'tuning.db'}")
    for t in study.trials:
        (key,) = t.user_attrs["runs"]
        r = store.load_result(key)
        assert r["seed"] == 7 and r["trial"]["number"] == t.number
        assert r["metrics"]["valid"]["ndcg@10"] == pytest.approx(t.value, abs=1e-12)
    assert (store.root / "trials.csv").is_file()


def test_rerun_recomputes_nothing_and_adds_no_trial(tuned_reference):
    root, out = tuned_reference
    stamps = {p.parent.name: p.stat().st_mtime_ns for p in out["store"].runs.glob("*/result.json")}
    again = run_grid(parse_grid(TUNED), root=root, progress=False)
    # finished studies are read from the database: only pop's and the confirm runs are looked up (all stored)
    assert again["counts"]["done"] == 0 and again["counts"]["cached"] == 2 + 2 and len(stamps) == 3 + 2 + 2
    assert stamps == {p.parent.name: p.stat().st_mtime_ns for p in out["store"].runs.glob("*/result.json")}
    pd.testing.assert_frame_equal(trial_values(again["trials"]), trial_values(out["trials"]))


def test_more_trials_continue_the_same_study(tuned_reference, tmp_path):
    """Raising the budget continues each study from its trials (their runs are not recomputed)."""
    import shutil

    root, out = tuned_reference
    shutil.copytree(root, tmp_path / "copy")
    more = copy.deepcopy(TUNED)
    more["tune"]["trials"] = 4
    again = run_grid(parse_grid(more), root=tmp_path / "copy", progress=False)
    assert len(again["trials"]) == 4
    pd.testing.assert_frame_equal(trial_values(again["trials"]).iloc[:3].drop(columns="selected"),
                                  trial_values(out["trials"]).drop(columns="selected"))
    assert again["counts"]["done"] in (1, 3)  # the new trial, plus new confirm runs if the best one changed


@pytest.mark.slow
def test_sigkill_during_tuning_then_resume(tuned_reference, tmp_path):
    _, ref = tuned_reference
    # the study's trials come first in the queue (pop's runs after them): kill after 2 finished trial runs
    grid_file, env, runs, finished = bench_then_kill(TUNED, tmp_path, after=2)
    assert 2 <= len(finished) < 3 + 2 + 2, "the kill must land during tuning"
    done = bench(grid_file, env)
    assert done.returncode == 0, done.stderr[-3000:]
    for key, stamp in finished.items():
        assert (runs / key / "result.json").stat().st_mtime_ns == stamp  # no finished trial recomputed
    trials = pd.read_parquet(tmp_path / "home" / "grids" / "tuned" / "trials.parquet")
    pd.testing.assert_frame_equal(trial_values(trials), trial_values(ref["trials"]))  # the same study
    resumed = pd.read_parquet(tmp_path / "home" / "grids" / "tuned" / "results.parquet")
    pd.testing.assert_frame_equal(table_values(resumed), table_values(ref["tidy"]))


@pytest.mark.slow
def test_pool_and_ray_select_the_same_configuration(tuned_reference, tmp_path):
    _, ref = tuned_reference
    for executor in ("pool", "ray"):
        out = run_grid(parse_grid(TUNED), root=tmp_path / executor, executor=executor, jobs=2, progress=False)
        assert not out["failures"], (executor, out["failures"])
        pd.testing.assert_frame_equal(trial_values(out["trials"]), trial_values(ref["trials"]), obj=executor)
        pd.testing.assert_frame_equal(table_values(out["tidy"]), table_values(ref["tidy"]), obj=executor)
        selected = ["method", "params", "seed", "stage", "metric", "selected"]
        pd.testing.assert_frame_equal(out["tidy"][selected].sort_values(selected[:5]).reset_index(drop=True),
                                      ref["tidy"][selected].sort_values(selected[:5]).reset_index(drop=True),
                                      obj=f"{executor} selection")


# ---- pruning ------------------------------------------------------------------------------------------------
def test_a_pruned_lightning_run_stops_and_says_so(tmp_path):
    from metarec.bench.experiment import get_split, run_one

    split = get_split("ml-100k", "general", root=tmp_path)
    calls = []

    def reporter(step, value):
        calls.append((step, value))
        return step >= 1  # prune at the second validation

    res = run_one(split, "mf-bpr", {**FAST, "max_epochs": 20, "dim": 8}, metrics=["ndcg@10"],
                  workdir=tmp_path / "w", reporter=reporter)
    assert res["pruned"] and [s for s, _ in calls] == [0, 1] and res["epochs_trained"] == 2
    plain = run_one(split, "mf-bpr", {**FAST, "max_epochs": 3, "dim": 8}, metrics=["ndcg@10"], workdir=tmp_path / "v")
    assert not plain["pruned"] and plain["epochs_trained"] == 3


def test_median_pruner_prunes_a_trial_below_the_median(tmp_path):
    """Through the worker's reporter: a trial whose curve is below every completed trial's is pruned after warm-up."""
    import optuna

    from metarec.bench.execute import trial_reporter
    from metarec.bench.tune import _pruner, _storage

    url = f"sqlite:///{tmp_path / 'tuning.db'}"
    study = optuna.create_study(study_name="s", storage=_storage(url), direction="maximize", pruner=_pruner("median", 1))
    for level in (0.3, 0.4):
        t = study.ask()
        for step in range(4):
            t.report(level, step)
        study.tell(t, level)
    live = study.ask()
    info = {"storage": url, "study": "s", "trial_id": live._trial_id, "number": live.number, "pruner": "median",
            "startup": 1, "metric": "ndcg@10"}
    good, bad = trial_reporter(info, "NDCG@10"), trial_reporter(info, "ndcg@10")
    assert good(0, 0.01) is False           # warm-up step: never pruned
    assert bad(1, 0.01) is True             # below the median of the completed trials at step 1
    assert trial_reporter(info, "mae") is None and trial_reporter({**info, "pruner": "none"}, "ndcg@10") is None
    live2 = study.ask()
    ok = trial_reporter({**info, "trial_id": live2._trial_id}, "ndcg@10")
    assert ok(1, 0.5) is False              # above the median: goes on


def test_a_fresh_store_continues_from_the_committed_studies(tuned_reference, tmp_path, monkeypatch):
    """A new machine has the committed results/<grid>/tuning.db but no run store: no trial is run again."""
    import shutil

    _, ref = tuned_reference
    (tmp_path / "results" / "tuned").mkdir(parents=True)
    shutil.copyfile(ref["store"].root / "tuning.db", tmp_path / "results" / "tuned" / "tuning.db")
    monkeypatch.chdir(tmp_path)
    out = run_grid(parse_grid(TUNED), root=tmp_path / "home", progress=False)
    assert out["counts"]["done"] == 2 + 2  # pop's and the confirm runs only
    pd.testing.assert_frame_equal(trial_values(out["trials"]), trial_values(ref["trials"]))
    pd.testing.assert_frame_equal(table_values(out["tidy"]), table_values(ref["tidy"]))


# ---- report -------------------------------------------------------------------------------------------------
def test_report_shows_what_the_budget_bought(tuned_reference, tmp_path):
    from metarec import report

    _, ref = tuned_reference
    out = report.export(parse_grid(TUNED), ref["tidy"], ref["store"], tmp_path / "results" / "tuned")
    assert (out / "tuning.db").stat().st_size > 0 and (out / "trials.csv").is_file()
    built = report.build(out)
    (png, pdf) = built["figures"]["budget"]
    assert png.name == "budget_ml_100k_general.png" and png.stat().st_size > 5000 and pdf.is_file()
    md = (out / "tables" / "tuning.md").read_text()
    t = ref["trials"]
    best = t[t.selected].iloc[0]
    lr = yaml.safe_load(best.searched)["lr"]
    row = next(line for line in md.splitlines() if line.startswith("| mf-bpr |"))
    assert f"lr={lr:.3g}" in row and f"| {best.value:.4f} | 3 | 0 | 0 |" in row
    assert "pop" not in md  # untuned methods have no study
    # a reproducibility card per run in the tables: its split, parameters, code, machine, cost and tuning
    sel = ref["tidy"][ref["tidy"].selected & (ref["tidy"].stage == "test")].drop_duplicates("run")
    assert sorted(p.stem for p in (out / "cards").glob("*.md")) == sorted(sel.run)
    mf = sel[sel.method == "mf-bpr"].iloc[0]
    text = (out / "cards" / f"{mf.run}.md").read_text()
    result = ref["store"].load_result(mf.run)
    assert f"fingerprint `{result['split_fingerprint']}`" in text and f"git `{result['git_revision']}`" in text
    assert f"study `{best.study}`: 3 trials" in text and f"selected trial {best.number} (valid ndcg@10 " \
        f"{best.value:.4f})" in text
    assert f"torch {result['versions']['torch']}" in text and "torch threads" in text and "MiB (run)" in text
    pop = (out / "cards" / f"{sel[sel.method == 'pop'].run.iloc[0]}.md").read_text()
    assert "| tuning | none: the grid ran this configuration as given |" in pop
    # a card of a run the tables no longer show (deleted, re-tuned) does not outlive it
    (out / "cards" / "0123456789abcdef.md").write_text("# Run of code that no table shows\n")
    report.export(parse_grid(TUNED), ref["tidy"], ref["store"], out)
    assert sorted(p.stem for p in (out / "cards").glob("*.md")) == sorted(sel.run)


def test_best_so_far_follows_the_direction_and_skips_unfinished_trials():
    from metarec.report.tuning import best_so_far, selected_table

    t = pd.DataFrame({"number": [2, 0, 1, 3], "state": ["COMPLETE", "COMPLETE", "FAIL", "PRUNED"],
                      "value": [0.5, 0.7, float("nan"), 0.1], "wall_s": [1.0, 2.0, 3.0, 4.0],
                      "direction": "minimize"})
    c = best_so_far(t)
    assert list(c.number) == [0, 1, 2, 3] and list(c.best) == [0.7, 0.7, 0.5, 0.5]  # pruned 0.1 is not a result
    assert list(c.elapsed_s) == [2.0, 5.0, 6.0, 10.0]
    c = best_so_far(t.assign(direction="maximize"))
    assert list(c.best) == [0.7, 0.7, 0.7, 0.7]
    sel = selected_table(t.assign(dataset="d", protocol="p", method="m", selected=[False, True, False, False],
                                  searched=['{"lr": 0.5}', '{"lr": 0.25}', "{}", "{}"], space="{}"))
    r = sel.iloc[0]
    assert (r.selected, r.valid, r.trials, r.pruned, r.failed, r.tuning_s) == ("lr=0.25", 0.7, 4, 1, 1, 10.0)


def test_the_time_budget_ends_a_study(tmp_path):
    """budget_s: a trial started inside the budget runs to its end, then the study stops (here after one trial)."""
    g = copy.deepcopy(TUNED)
    g["tune"] = {"trials": 10, "budget_s": 0.01, "seeds": [7], "startup_trials": 2}
    g["seeds"] = [0]
    g["methods"] = {"mf-bpr": TUNED["methods"]["mf-bpr"]}
    out = run_grid(parse_grid(g), root=tmp_path, progress=False)
    assert len(out["trials"]) == 1 and out["trials"].wall_s.iloc[0] > 0.01
    assert set(out["tidy"].seed) == {0} and out["counts"]["done"] == 2  # one trial + one confirm run


def test_failed_trials_count_and_a_study_without_a_completed_trial_confirms_nothing(tmp_path):
    g = copy.deepcopy(TUNED)
    g["tune"] = {"trials": 2, "seeds": [7], "startup_trials": 1}
    g["methods"] = {"pop": {}, "mf-bpr": {"params": {**FAST, "dim": 8},
                                          "search": {"lr": {"float": [1e20, 1e30], "log": True}}}}
    out = run_grid(parse_grid(g), root=tmp_path, progress=False)
    assert list(out["trials"].state) == ["FAIL", "FAIL"]
    assert all("non-finite loss" in r for r in out["trials"].reason)
    # a diverging trial is a tuning outcome, not a failed grid: counted apart, the grid's own runs all succeeded
    assert out["counts"]["trials_failed"] == 2 and out["counts"]["failed"] == 0 and not out["failures"]
    assert set(out["tidy"].method) == {"pop"}
    assert any("no trial completed" in n for n in out["notes"])


def test_tracking_tensorboard_logs_params_curve_and_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    g = {"name": "tb", "seeds": [0], "metrics": ["ndcg@10"], "tracking": "tensorboard",
         "datasets": [{"name": "ml-100k", "protocols": ["general"]}],
         "methods": {"mf-bpr": {"params": {**FAST, "dim": 8, "max_epochs": 3}}}}
    out = run_grid(parse_grid(g), root=tmp_path, progress=False)
    (key,) = out["tidy"].run.unique()
    acc = EventAccumulator(str(tmp_path / "tensorboard" / key)).Reload()
    curve = acc.Scalars("valid/curve")
    assert [e.step for e in curve] == [0, 1, 2]
    result = out["store"].load_result(key)
    assert [e.value for e in curve] == pytest.approx([v for _, v, _ in result["valid_curve"]])
    assert acc.Scalars("test/ndcg@10")[0].value == pytest.approx(result["metrics"]["test"]["ndcg@10"], rel=1e-6)
    with pytest.raises(ConfigError, match="tracking: must be one of"):
        parse_grid({**g, "tracking": "mlflow"})


def test_a_shared_study_tunes_on_one_setting_and_confirms_on_every_setting(tmp_path):
    """tune.share {k_shot: 3}: the K = 1 and K = 3 settings get one study, whose trials all run at K = 3, and its
    selection is confirmed at both K."""
    settings = [{"name": "cold_start", "params": {"k_shot": k, "n_query": 5, "min_history": 15}} for k in (1, 3)]
    g = {"name": "shared", "seeds": [0], "metrics": ["ndcg@10"],
         "datasets": [{"name": "ml-100k", "protocols": settings}],
         "tune": {"trials": 3, "seeds": [7], "startup_trials": 1, "share": {"k_shot": 3}},
         "methods": {"meta:itemknn": {"search": {"k": [5, 20, 80]}}}}
    out = run_grid(parse_grid(g), root=tmp_path, progress=False)
    trials = out["trials"]
    assert trials.study.nunique() == 1 and len(trials) == 3
    assert set(trials.protocol_params.map(lambda p: json.loads(p)["k_shot"])) == {3}
    tidy = out["tidy"]
    assert sorted(tidy.protocol_params.map(lambda p: json.loads(p)["k_shot"]).unique()) == [1, 3]
    chosen = json.loads(trials[trials.selected].params.iloc[0])
    assert set(tidy.params.map(lambda p: json.loads(p)["k"])) == {chosen["k"]}
    # each distinct trial configuration ran once (a re-drawn one reads its stored run), then a confirm run per K
    assert out["counts"]["done"] == trials.params.nunique() + 2
    g["tune"]["share"] = {"k_shot": 10}                               # no K = 10 setting to tune on
    with pytest.raises(ConfigError, match=r"tune.share \{'k_shot': 10\}: dataset ml-100k has no cold_start setting"):
        run_grid(parse_grid(g), root=tmp_path / "other", progress=False)


def test_a_finite_space_ends_when_every_configuration_was_tried(tmp_path):
    g = copy.deepcopy(TUNED)
    g["tune"] = {"trials": 10, "seeds": [7], "startup_trials": 5}
    g["seeds"] = [0]
    g["methods"] = {"mf-bpr": {"params": {**FAST, "dim": 8}, "search": {"lr": [0.01, 0.02]}}}
    out = run_grid(parse_grid(g), root=tmp_path, progress=False)
    tried = {json.loads(p)["lr"] for p in out["trials"].searched}
    assert tried == {0.01, 0.02} and len(out["trials"]) < 10


def test_a_trial_killed_inside_ask_gets_the_parameters_that_ask_would_have_drawn(tuned_reference, tmp_path):
    """Simulate SIGKILL between creating a trial and writing its parameters: the resumed study is unchanged."""
    import shutil

    import optuna

    root, ref = tuned_reference
    shutil.copytree(root, tmp_path / "copy")
    url = f"sqlite:///{tmp_path / 'copy' / 'grids' / 'tuned' / 'tuning.db'}"
    name = ref["trials"].study.iloc[0]
    study = optuna.load_study(study_name=name, storage=url)
    last = study.trials[-1]
    # rebuild the database without the last trial's parameters and with it still RUNNING
    import sqlite3

    con = sqlite3.connect(tmp_path / "copy" / "grids" / "tuned" / "tuning.db")
    con.execute("delete from trial_params where trial_id = ?", (last._trial_id,))
    con.execute("delete from trial_values where trial_id = ?", (last._trial_id,))
    con.execute("update trials set state = 'RUNNING', datetime_complete = NULL where trial_id = ?", (last._trial_id,))
    con.commit()
    con.close()
    for run in (tmp_path / "copy" / "grids" / "tuned" / "runs").iterdir():  # its run is gone too
        shutil.rmtree(run)
    out = run_grid(parse_grid(TUNED), root=tmp_path / "copy", progress=False)
    pd.testing.assert_frame_equal(trial_values(out["trials"]), trial_values(ref["trials"]))


@pytest.mark.slow
def test_a_cpu_clock_budget_counts_cpu_seconds_not_wall_time(tmp_path, monkeypatch):
    """budget_clock: cpu sums the trials' CPU seconds: a trial whose run waited (sleep: wall time, no CPU) leaves
    the budget untouched, so other work on the machine cannot shorten one method's budget."""
    import time

    import metarec.bench.experiment as experiment

    real = experiment.run_one

    def slow_run_one(*a, **kw):
        if kw.get("seed") == 7:   # a trial (tuning seed 7; the confirm run, seed 0, need not wait)
            time.sleep(2.0)       # wall time without CPU, as when another job holds the cores
        return real(*a, **kw)

    monkeypatch.setattr(experiment, "run_one", slow_run_one)
    g = copy.deepcopy(TUNED)
    g["seeds"] = [0]
    g["methods"] = {"mf-bpr": TUNED["methods"]["mf-bpr"]}
    # a fixed budget below one trial's wall time (its 2 s sleep) and far above one trial's CPU (~0.3 s here). A
    # budget scaled from one measured trial's CPU (2x + 0.5 s) failed once in CI: the CPU seconds of a multi-threaded
    # run vary between runs by more than that on a loaded machine.
    budget = 1.5
    g["tune"] = {"trials": 3, "budget_s": budget, "seeds": [7], "startup_trials": 2, "budget_clock": "wall"}
    out = run_grid(parse_grid(g), root=tmp_path / "wall", progress=False)
    trials = out["trials"]
    assert len(trials) == 1 and trials.wall_s.iloc[0] > 2.0, trials[["wall_s", "cpu_s"]]   # the sleep spent it
    assert 0 < trials.cpu_s.iloc[0] < trials.wall_s.iloc[0] - 1.5, trials[["wall_s", "cpu_s"]]
    # on the CPU clock the sleeps cost nothing: the study goes on (checked: counting wall seconds here fails)
    g["tune"] = {**g["tune"], "budget_clock": "cpu"}
    out = run_grid(parse_grid(g), root=tmp_path / "cpu", progress=False)
    trials = out["trials"]
    assert len(trials) >= 2 and (trials.wall_s > trials.cpu_s + 1.5).all(), trials[["wall_s", "cpu_s"]]


@pytest.mark.slow
def test_cpu_seconds_count_at_the_measured_speed_of_the_cpu_that_spent_them(tmp_path, monkeypatch):
    """A study resumed on another machine: its CPU seconds count in the reference machine's (CPU_SPEED, measured by
    benchmarks/cpu_speed.py), so a slower CPU does not buy fewer trials. Here this CPU counted 1000x (a machine
    1000x the reference's speed) spends a 5 s budget on its first trial; unlisted, it counts 1x and gets all 3."""
    import optuna

    import metarec.bench.tune as tune
    from metarec.utils import machine

    g = copy.deepcopy(TUNED)
    g["seeds"] = [0]
    g["methods"] = {"mf-bpr": TUNED["methods"]["mf-bpr"]}
    g["tune"] = {"trials": 3, "budget_s": 5.0, "seeds": [7], "startup_trials": 2, "budget_clock": "cpu"}
    monkeypatch.setattr(tune, "CPU_SPEED", {machine()["cpu"]: 1000.0})
    fast = run_grid(parse_grid(g), root=tmp_path / "fast", progress=False)["trials"]
    assert len(fast) == 1 and fast.cpu_s.iloc[0] < 5.0, fast[["cpu_s"]]
    monkeypatch.setattr(tune, "CPU_SPEED", {})
    assert tune.cpu_speed(machine()["cpu"]) == tune.cpu_speed(None) == 1.0
    assert len(run_grid(parse_grid(g), root=tmp_path / "unlisted", progress=False)["trials"]) == 3
    storage = f"sqlite:///{tmp_path / 'fast' / 'grids' / 'tuned' / 'tuning.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    (trial,) = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert trial.user_attrs["cpu_model"] == machine()["cpu"]


def test_budget_clock_must_be_known():
    g = copy.deepcopy(TUNED)
    g["tune"]["budget_clock"] = "gpu"
    with pytest.raises(ConfigError, match=r"tune\.budget_clock: must be one of wall, cpu"):
        parse_grid(g)


def test_studies_only_saves_a_resumable_copy_of_the_studies(tuned_reference, tmp_path, monkeypatch):
    from metarec.bench.store import RunStore
    from metarec.errors import ConfigError
    from metarec.report import save_studies

    root, out = tuned_reference
    lines = save_studies(RunStore("tuned", root), tmp_path / "saved")
    assert len(lines) == 1 and lines[0].startswith("ml-100k/general/mf-bpr/") and "3 trials" in lines[0]
    saved = pd.read_csv(tmp_path / "saved" / "trials_so_far.csv")
    assert saved.number.tolist() == [0, 1, 2] and set(saved.state) <= {"COMPLETE", "PRUNED"}
    best = out["trials"][out["trials"].selected].value.iloc[0]
    assert f"best {best:.4f}" in lines[0]
    # a fresh store adopts the saved studies: the rerun adds no trial and trains nothing again for them
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "tuned").mkdir(parents=True)
    (tmp_path / "saved" / "tuning.db").rename(tmp_path / "results" / "tuned" / "tuning.db")
    again = run_grid(parse_grid(TUNED), root=tmp_path / "fresh", progress=False)
    assert len(again["trials"]) == 3 and again["counts"]["trials_failed"] == 0
    assert again["counts"]["done"] == 2 + 2           # pop's and the confirm runs: only the studies were saved
    # with the finished table runs saved too (runs_so_far.jsonl.gz + per_user_so_far.parquet): nothing at all
    for name in ("runs_so_far.jsonl.gz", "per_user_so_far.parquet"):
        (tmp_path / "saved" / name).rename(tmp_path / "results" / "tuned" / name)
    third = run_grid(parse_grid(TUNED), root=tmp_path / "third", progress=False)
    assert third["counts"]["done"] == 0 and len(third["trials"]) == 3
    pd.testing.assert_frame_equal(table_values(third["tidy"]), table_values(out["tidy"]))
    with pytest.raises(ConfigError, match="no tuning studies in"):
        save_studies(RunStore("untuned", tmp_path), tmp_path / "x")


def test_a_grid_reuses_the_finished_studies_of_another_grid(tuned_reference, tmp_path):
    """tune.reuse: a grid with other metrics (so other confirm runs) adopts the same study from a grid that finished
    it under the same budget: no trial runs again; another budget is refused; an unfinished study is not adopted."""
    import shutil

    from metarec.bench import load_grid

    root, ref = tuned_reference
    shutil.copytree(root, tmp_path / "home")
    (tmp_path / "tuned.yaml").write_text(yaml.safe_dump(TUNED))
    wide = copy.deepcopy(TUNED)
    wide.update(name="wide", metrics=["ndcg@10", "mrr@10"])
    wide["tune"]["reuse"] = ["tuned.yaml"]
    (tmp_path / "wide.yaml").write_text(yaml.safe_dump(wide))
    out = run_grid(load_grid(tmp_path / "wide.yaml"), root=tmp_path / "home", progress=False)
    assert out["counts"]["done"] == 2 + 2          # pop's and the confirm runs (mrr@10 was never computed) only
    assert out["counts"]["copied"] == 0
    pd.testing.assert_frame_equal(trial_values(out["trials"]), trial_values(ref["trials"]))
    assert set(out["trials"].adopted_from) == {"tuned"}
    assert set(out["tidy"][out["tidy"].method == "mf-bpr"].params) == set(ref["trials"][ref["trials"].selected].params)
    from metarec.report import tuning
    md = tuning.write(out["trials"], tmp_path / "report")["markdown"].read_text()
    assert "| mf-bpr (study of tuned) |" in md and "adopted here, not run again" in md
    # a study the grid ran itself, read back from a table where the missing grid name is None/NaN: no "study of"
    for missing in (None, float("nan")):
        own = out["trials"].assign(adopted_from=missing)
        md = tuning.write(own, tmp_path / f"own{missing}")["markdown"].read_text()
        assert "| mf-bpr |" in md and "study of" not in md

    wide["tune"]["trials"] = 4                     # another budget: the adopted trials had another chance
    (tmp_path / "wide.yaml").write_text(yaml.safe_dump(wide))
    with pytest.raises(ConfigError, match=r"tune.reuse tuned.yaml: .*trials 3 \(here 4\)"):
        run_grid(load_grid(tmp_path / "wide.yaml"), root=tmp_path / "fresh", progress=False)

    # the other grid's study stopped short of its budget (2 of 3 trials): it is still running there, not adopted
    short = copy.deepcopy(TUNED)
    short["tune"]["trials"] = 2
    run_grid(parse_grid(short), root=tmp_path / "short", progress=False)
    wide["tune"]["trials"] = 3
    (tmp_path / "wide.yaml").write_text(yaml.safe_dump(wide))
    again = run_grid(load_grid(tmp_path / "wide.yaml"), root=tmp_path / "short", progress=False)
    assert len(again["trials"]) == 3 and set(again["trials"].adopted_from) == {""}


def test_runs_that_trained_the_same_thing_are_copied_not_trained(tuned_reference, tmp_path):
    """A run another grid (tune.reuse) or this grid under a longer metric list finished, with at least the metrics
    asked for, is copied: nothing trains, the values are the donor's, the metrics not asked for are left out. A donor
    whose config does not hash to its key is not trusted."""
    import shutil

    from metarec.bench import load_grid
    from metarec.bench.store import RunStore

    root, ref = tuned_reference
    shutil.copytree(root, tmp_path / "home")
    (tmp_path / "tuned.yaml").write_text(yaml.safe_dump(TUNED))
    narrow = copy.deepcopy(TUNED)
    narrow.update(name="narrow", metrics=["ndcg@10"])
    narrow["tune"]["reuse"] = ["tuned.yaml"]
    (tmp_path / "narrow.yaml").write_text(yaml.safe_dump(narrow))
    out = run_grid(load_grid(tmp_path / "narrow.yaml"), root=tmp_path / "home", progress=False)
    assert out["counts"]["done"] == 0 and out["counts"]["copied"] == 2 + 2    # pop's and the confirm runs
    want = table_values(ref["tidy"][ref["tidy"].metric == "ndcg@10"])
    pd.testing.assert_frame_equal(table_values(out["tidy"]), want)
    store = RunStore("narrow", tmp_path / "home")
    for key in out["tidy"].run.unique():
        result = store.load_result(key)
        assert result["copied_from"]["grid"] == "tuned" and set(result["metrics"]["test"]) == {"ndcg@10"}
        assert result["key"] == key != result["copied_from"]["run"]
        from metarec.report import card
        assert f"| trained as | run `{result['copied_from']['run']}` of grid `tuned`" in card(result)
        assert list(store.per_user(key, "test").columns) == ["user", "ndcg@10"]
        assert json.loads((store.runs / key / "config.json").read_text())["metrics"] == ["ndcg@10"]

    # this grid itself, its metric list shortened: its own runs stand in (the study, unchanged, continues as is)
    own = copy.deepcopy(TUNED)
    own["metrics"] = ["ndcg@10"]
    again = run_grid(parse_grid(own), root=tmp_path / "home", progress=False)
    assert again["counts"]["done"] == 0 and again["counts"]["copied"] == 4 and len(again["trials"]) == 3
    pd.testing.assert_frame_equal(table_values(again["tidy"]), want)

    # a donor whose config.json claims a metric its key does not hash (edited) is not one: those runs train
    shutil.copytree(root, tmp_path / "edited")
    for path in RunStore("tuned", tmp_path / "edited").runs.glob("*/config.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "metrics": ["ndcg@10", "recall@10", "mrr@10"]}))
    own["metrics"] = ["ndcg@10", "mrr@10"]
    edited = run_grid(parse_grid(own), root=tmp_path / "edited", progress=False)
    assert edited["counts"]["copied"] == 0 and edited["counts"]["done"] == 4


def test_a_new_machine_resumes_from_the_committed_results(tuned_reference, tmp_path, monkeypatch):
    """`metarec report` commits the table runs (runs.jsonl.gz + per_user.parquet) beside the studies: a store that
    has neither runs nor studies recomputes nothing, and the report from it is the same; a damaged line is one error
    naming the file and line."""
    import gzip

    from metarec import report
    from metarec.errors import DataError

    _, ref = tuned_reference
    out = report.export(parse_grid(TUNED), ref["tidy"], ref["store"], tmp_path / "results" / "tuned")
    monkeypatch.chdir(tmp_path)
    again = run_grid(parse_grid(TUNED), root=tmp_path / "home", progress=False)
    assert again["counts"]["done"] == 0 and again["counts"]["cached"] == 2 + 2
    pd.testing.assert_frame_equal(table_values(again["tidy"]), table_values(ref["tidy"]))
    store = again["store"]
    for key in set(ref["tidy"][ref["tidy"].stage == "test"].run):
        pd.testing.assert_frame_equal(store.per_user(key, "test"), ref["store"].per_user(key, "test"))
        assert store.load_result(key)["restored_from"] == str(Path("results") / "tuned")
    redone = report.export(parse_grid(TUNED), again["tidy"], store, tmp_path / "results2")
    pd.testing.assert_frame_equal(pd.read_parquet(redone / "per_user.parquet"), pd.read_parquet(out / "per_user.parquet"))

    with gzip.open(out / "runs.jsonl.gz", "rt") as f:
        lines = f.read().splitlines()
    with gzip.open(out / "runs.jsonl.gz", "wt") as f:
        f.write("\n".join([lines[0], lines[1][:40]] + lines[2:]) + "\n")
    with pytest.raises(DataError, match=r"runs.jsonl.gz.*2.*not a committed run"):
        run_grid(parse_grid(TUNED), root=tmp_path / "third", progress=False)


# ---- a student whose teacher is another study's selection ------------------------------------------------------------
SEQ = {"max_epochs": 1, "eval_every": 1, "progress_bar": False, "max_len": 8, "batch_size": 256, "dim": 8}
KD = {"name": "kd", "seeds": [0], "metrics": ["ndcg@10"],
      "datasets": [{"name": "ml-100k", "protocols": ["sequential"]}],
      "tune": {"trials": 2, "seeds": [7], "sampler_seed": 1, "startup_trials": 2},
      "methods": {"distill:teacher": {"params": {**SEQ, "n_layers": 1}, "search": {"lr": {"float": [1e-3, 1e-2]}}},
                  "distill:kd-soft": {"params": {**SEQ, "teacher_dim": 8, "teacher_n_layers": 1},
                                      "search": {"kd_weight": {"float": [0.1, 1.0]}}, "teacher": "distill:teacher"}}}


@pytest.mark.slow
def test_a_student_learns_from_the_configuration_its_teacher_study_selected(tmp_path):
    out = run_grid(parse_grid(KD), root=tmp_path, progress=False)
    assert not out["failures"] and not out["notes"], (out["failures"], out["notes"])
    t = out["trials"]
    teacher, student = t[t.method == "distill:teacher"], t[t.method == "distill:kd-soft"]
    chosen = json.loads(teacher[teacher.selected].params.iloc[0])
    assert len(student) == 2
    for p in student.params.map(json.loads):   # every student trial learns from the selected teacher
        assert (p["teacher_lr"], p["teacher_dim"], p["teacher_n_layers"], p["teacher_max_epochs"]) == \
            (chosen["lr"], 8, 1, 1)
    # the student's runs trained no teacher of their own: the teacher study's runs left the only teacher artifacts
    # (its two trials on tuning seed 7, its confirm run on seed 0), which the students loaded
    built = [p for p in (tmp_path / "artifacts" / "teacher").iterdir() if not p.name.startswith(".")]   # not locks
    assert len(built) == 2 + 1
    again = run_grid(parse_grid(KD), root=tmp_path, progress=False)
    assert again["counts"]["done"] == 0                       # the student's study opens at once: all stored
    pd.testing.assert_frame_equal(trial_values(again["trials"]), trial_values(out["trials"]))
    # the student's cells alone (--only): the teacher's finished study is read from the database
    alone = run_grid(parse_grid(KD).restrict(["method=distill:kd-soft"]), root=tmp_path, progress=False)
    assert alone["counts"]["done"] == 0 and not alone["notes"]
    pd.testing.assert_frame_equal(trial_values(alone["trials"]), trial_values(out["trials"]))   # (others kept)
    # ... and in a fresh store, where the teacher's study has not run: said, not guessed
    fresh = run_grid(parse_grid(KD).restrict(["method=distill:kd-soft"]), root=tmp_path / "fresh", progress=False)
    assert fresh["counts"]["done"] == 0 and len(fresh["notes"]) == 1
    assert "its teacher's study ml-100k/sequential/distill:teacher/" in fresh["notes"][0] \
        and "has not selected yet (run distill:teacher's cells first)" in fresh["notes"][0]


@pytest.mark.slow
def test_each_protocol_can_name_its_own_teacher(tmp_path):
    """teacher: {protocol: method}: the general cells learn from the tuned mf-bpr (a score-matrix teacher), the
    sequential ones from the sequence teacher, each the selection of its own study on that cell."""
    g = copy.deepcopy(KD)
    g["datasets"][0]["protocols"] = ["sequential", "general"]
    g["methods"]["mf-bpr"] = {"params": {"max_epochs": 2, "eval_every": 1, "progress_bar": False, "dim": 8},
                              "search": {"lr": {"float": [1e-3, 1e-2]}}, "protocols": ["general"]}
    g["methods"]["distill:kd-soft"]["teacher"] = {"sequential": "distill:teacher", "general": "mf-bpr"}
    out = run_grid(parse_grid(g), root=tmp_path, progress=False)
    assert not out["failures"] and not out["notes"], (out["failures"], out["notes"])
    t = out["trials"]
    selected = {(r.method, r.protocol): json.loads(r.params) for r in t[t.selected].itertuples()}
    students = t[t.method == "distill:kd-soft"]
    assert set(students.protocol) == {"sequential", "general"}
    for r in students.itertuples():
        p = json.loads(r.params)
        if r.protocol == "general":
            assert p["teacher_method"] == "mf-bpr"
            assert p["teacher_params"]["lr"] == selected[("mf-bpr", "general")]["lr"]
        else:
            assert "teacher_method" not in p and p["teacher_lr"] == selected[("distill:teacher", "sequential")]["lr"]


def test_teacher_key_errors():
    for change, message in [
            (lambda g: g["methods"]["distill:kd-soft"].update(teacher="distill:student"), "is not one of the grid's"),
            (lambda g: g["methods"]["distill:teacher"].update(tune=False, search=None) or
             g["methods"]["distill:teacher"].pop("search"), "needs a tuned grid with both methods tuned"),
            (lambda g: g["methods"]["distill:kd-soft"]["params"].update(max_len=20),
             r"shares max_len with its teacher 'distill:teacher', but the teacher has max_len=8 and the student "
             r"max_len=20"),
            (lambda g: g["methods"].update({"pop": {"teacher": "distill:teacher"}}), "pop does not learn from a teacher"),
            (lambda g: g["methods"]["distill:kd-soft"].update(teacher={"general": "distill:teacher"}),
             r"names one teacher for each protocol distill:kd-soft runs on \(sequential\), got general"),
            (lambda g: g["methods"]["distill:kd-soft"].update(teacher={"sequential": 3}),
             "must be a method name or a mapping protocol -> method name"),
            (lambda g: g["methods"]["distill:kd-soft"].update(teacher={"sequential": "mf-bpr"}) or
             g["methods"].update({"mf-bpr": {"params": {"dim": 8}, "search": {"lr": {"float": [1e-3, 1e-2]}}}}),
             "mf-bpr does not run on sequential, where distill:kd-soft runs")]:
        g = copy.deepcopy(KD)
        change(g)
        with pytest.raises(ConfigError, match=message):
            parse_grid(g)


# ---- measuring a grid before running it: --probe and --run-cap -----------------------------------------------------
def test_a_probe_runs_one_trial_per_study_and_the_grid_goes_on_from_it(tmp_path):
    probe = run_grid(parse_grid(TUNED), root=tmp_path, progress=False, probe=True)
    t = probe["trials"]
    assert list(t.number) == [0] and t.state.iloc[0] == "COMPLETE" and t.cpu_s.iloc[0] > 0   # the cost, measured
    assert probe["counts"]["done"] == 1 and probe["tidy"].empty   # no pop run, no confirm run
    full = run_grid(parse_grid(TUNED), root=tmp_path, progress=False)
    ref = run_grid(parse_grid(TUNED), root=tmp_path / "ref", progress=False)
    assert full["counts"]["done"] == ref["counts"]["done"] - 1   # the probed trial is not run again
    pd.testing.assert_frame_equal(trial_values(full["trials"]), trial_values(ref["trials"]))


def test_a_run_over_the_cap_fails_and_its_cost_ends_the_study(tmp_path):
    g = copy.deepcopy(TUNED)
    g["tune"]["budget_s"] = 0.5
    g["methods"]["mf-bpr"]["params"].update(max_epochs=500, patience=500)   # seconds on ml-100k, not a fraction
    out = run_grid(parse_grid(g), root=tmp_path, progress=False, run_cap_s=0.5)
    t = out["trials"]
    assert len(t) == 1 and t.state.iloc[0] == "FAIL"               # the failure spent the budget: no second trial
    assert "RunCapExceeded: over the run cap of 0.5 s" in t.reason.iloc[0]
    assert 0.4 < t.wall_s.iloc[0] < 30
    assert any("no trial completed" in n for n in out["notes"])


def test_the_run_cap_is_checked_on_the_command_line(tmp_path, capsys):
    from metarec.cli import main

    assert main(["bench", "benchmarks/smoke.yaml", "--run-cap", "0"]) != 0
    assert "--run-cap must be a positive number of seconds, got 0" in capsys.readouterr().err


@pytest.mark.slow
def test_a_probe_measures_a_student_on_its_teachers_first_trial(tmp_path):
    out = run_grid(parse_grid(KD), root=tmp_path, progress=False, probe=True)
    t = out["trials"]
    assert sorted(t.method) == ["distill:kd-soft", "distill:teacher"] and set(t.number) == {0}
    assert (t.state == "COMPLETE").all() and (t.cpu_s > 0).all() and not out["notes"]
    teacher = json.loads(t[t.method == "distill:teacher"].params.iloc[0])
    assert json.loads(t[t.method == "distill:kd-soft"].params.iloc[0])["teacher_lr"] == teacher["lr"]
    again = run_grid(parse_grid(KD), root=tmp_path, progress=False, probe=True)
    assert again["counts"]["done"] == 0                                   # measured already: nothing to do
