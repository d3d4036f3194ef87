"""The paper's grid as a composition of the suite's tuned grids: validation, and the members' results as one
leaderboard (metarec/bench/compose.py)."""
from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from metarec.bench.compose import Composite, compose_results
from metarec.bench.grid import load_experiment, load_grid
from metarec.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_the_paper_grid_validates_and_covers_every_registered_method():
    from metarec.methods import list_methods

    comp = load_experiment(REPO / "paper" / "grid.yaml")
    assert isinstance(comp, Composite) and comp.uncovered() == []
    assert [g.name for g, why in comp.deferred if "CPU-h" in why] == ["paper_rest"]   # beyond 2 cores, said why
    excluded = {m for m in list_methods() if m not in comp.methods()}
    assert excluded == {"recbole:GRU4Rec", "recbole:SASRec", "recbole:BERT4Rec", "rerank:mmr"}   # each with a reason
    assert {g.tune.trials for g in comp.members} == {20} and comp.seeds == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match=r"a composition of grids \(grids:\), not one grid"):
        load_grid(REPO / "paper" / "grid.yaml")


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _member(tmp_path: Path, name: str, **changes) -> str:
    raw = yaml.safe_load((REPO / "benchmarks" / "meta.yaml").read_text())
    raw.update(name=name, **changes)
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(raw))
    return f"{name}.yaml"


@pytest.mark.parametrize("change, message", [
    ({"tune": {"trials": 10, "budget_s": 1200, "seeds": [100], "share": {"k_shot": 5}}},
     r"grids\[1\] \(b\): another tuning budget: trials 10 \(grids\[0\] a: 20\)"),
    ({"seeds": [0, 1, 2]}, r"grids\[1\] \(b\): evaluation seeds \[0, 1, 2\], grids\[0\] a: \[0, 1, 2, 3, 4\]"),
    ({"tune": None}, r"grids\[1\] \(b\): not tuned"),
])
def test_members_must_have_had_the_same_budget_and_seeds(tmp_path, change, message):
    a = _member(tmp_path, "a")
    b = _member(tmp_path, "b", **{k: v for k, v in change.items() if v is not None})
    if change.get("tune", 0) is None:
        raw = yaml.safe_load((tmp_path / b).read_text())
        raw.pop("tune")
        (tmp_path / b).write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=message):
        load_experiment(_write(tmp_path, {"name": "p", "grids": [a, b], "exclude": {"*": "all of them"}}))


def test_every_registered_method_is_run_or_excluded_with_a_reason(tmp_path):
    a = _member(tmp_path, "a")
    with pytest.raises(ConfigError, match=r"registered method\(s\) no member grid runs: distill:kd-rd, .*mf-bpr"):
        load_experiment(_write(tmp_path, {"name": "p", "grids": [a]}))
    bad = [({"name": "p", "grids": [a], "exclude": {"nothing:*": "x"}}, r"exclude.nothing:\*: matches no registered"),
           ({"name": "p", "grids": [a], "exclude": {"*": " "}}, r"exclude.\*: give the reason"),
           ({"name": "p", "grids": [a, a], "exclude": {"*": "x"}}, r"grids: a grid named twice"),
           ({"name": "p", "grids": [], "exclude": {"*": "x"}}, r"grids: a non-empty list"),
           ({"name": "p", "grids": ["nope.yaml"]}, r"grids\[0\] \(nope.yaml\): .*grid file not found"),
           ({"name": "p", "grids": [a], "seeds": [0]}, r"unknown key\(s\) seeds of a composition")]
    for raw, message in bad:
        with pytest.raises(ConfigError, match=message):
            load_experiment(_write(tmp_path, raw))
    assert load_experiment(_write(tmp_path, {"name": "p", "grids": [a], "exclude": {"*": "x"}})).uncovered() == []


def _results_member(results: Path, name: str, keep_methods=None) -> None:
    shutil.copytree(REPO / "results" / "meta", results / name)
    if keep_methods is not None:
        tidy = pd.read_parquet(results / name / "results.parquet")
        tidy[tidy.method.isin(keep_methods)].to_parquet(results / name / "results.parquet", index=False)


def test_the_members_results_make_one_leaderboard(tmp_path):
    """A cell two members share comes from the first; the rest of the second member fills in; the leaderboard over
    the composed folder equals the one grid's (same runs, same per-user values); rows on different splits are
    refused."""
    from metarec.report import build

    meta = load_grid(REPO / "benchmarks" / "meta.yaml")
    results = tmp_path / "results"
    _results_member(results, "first", keep_methods=["pop", "meta:finetune"])
    _results_member(results, "second")
    comp = Composite(name="paper", path=None, members=[dataclasses.replace(meta, name="first"),
                                                        dataclasses.replace(meta, name="second"),
                                                        dataclasses.replace(meta, name="absent")])
    out = compose_results(comp, results, results / "paper")
    assert out["missing"] == ["absent"]
    sources = pd.read_csv(results / "paper" / "sources.csv")
    by_method = sources.groupby("method").grid.unique().map(list).to_dict()
    assert by_method["pop"] == ["first"] and by_method["meta:finetune"] == ["first"]
    assert by_method["meta:maml"] == ["second"] and len(by_method) == 8
    build(results / "paper", figures=False)
    mine = pd.read_csv(results / "paper" / "tables" / "leaderboard.csv")
    ref = pd.read_csv(REPO / "results" / "meta" / "tables" / "leaderboard.csv")
    cols = ["dataset", "protocol", "protocol_params", "method", "rank", "ndcg@10", "delta", "seed_p_holm"]
    pd.testing.assert_frame_equal(mine[cols].sort_values(cols[:4]).reset_index(drop=True),
                                  ref[cols].sort_values(cols[:4]).reset_index(drop=True))
    cards = {p.name for p in (results / "paper" / "cards").glob("*.md")}
    assert len(cards) == len(set(pd.read_parquet(results / "paper" / "results.parquet").run))

    # compute: both members are the same grid's results, so every run and trial is counted once, not twice
    with gzip.open(REPO / "results" / "meta" / "runs.jsonl.gz", "rt") as f:
        runs = [json.loads(line)["result"] for line in f if line.strip()]
    trials = pd.read_csv(REPO / "results" / "meta" / "trials.csv")
    spent = json.loads((results / "paper" / "meta.json").read_text())["compute"]
    assert spent["runs"] == len(runs) and spent["trials"] == len(trials) > 0
    assert spent["studies"] == trials.study.nunique()
    assert spent["run_cpu_h"] == pytest.approx(sum(r["cpu_s"] for r in runs) / 3600)
    assert spent["trial_cpu_h"] == pytest.approx(trials.cpu_s.sum() / 3600)
    assert spent["cpu_h"] == pytest.approx(spent["run_cpu_h"] + spent["trial_cpu_h"])
    assert sum(spent["cpus"].values()) == len(runs)
    assert f"total **{spent['cpu_h']:,.1f} CPU-h**" in (results / "paper" / "leaderboard.md").read_text()
    from metarec.report.macros import values
    assert values(results / "paper")["paper/compute/cpu_h"] == f"{spent['cpu_h']:,.1f}"

    # the second member's maml runs claim another split for seed 0: refused, naming the cell and both members
    runs = results / "second" / "runs.jsonl.gz"
    lines = gzip.open(runs, "rt").read().splitlines()
    tidy = pd.read_parquet(results / "second" / "results.parquet")
    maml = set(tidy[(tidy.method == "meta:maml") & (tidy.seed == 0) & tidy.selected].run)
    edited = []
    for line in lines:
        entry = json.loads(line)
        if entry["key"] in maml:
            entry["config"]["split_fingerprint"] = "0" * 64
        edited.append(json.dumps(entry))
    with gzip.open(runs, "wt") as f:
        f.write("\n".join(edited) + "\n")
    with pytest.raises(ConfigError, match=r"seed 0: second's runs were trained on split 000000000000, first's on"):
        compose_results(comp, results, results / "paper2")


def test_a_deferred_member_is_validated_counted_and_not_run(tmp_path, monkeypatch, capsys):
    """``deferred:``: a member too large for this machine is held to the same budget and seeds, covers its methods,
    is not run by ``metarec bench`` (its reason printed), and its results join once they exist, after the members'."""
    import argparse

    from metarec import cli
    from metarec.report import build

    others = {"[!m]*": "x", "melu:*": "x", "mf-bpr": "x", "mtl:*": "x"}   # everything but meta:*
    a = _member(tmp_path, "a", methods={"pop": {}})
    big = _member(tmp_path, "big")
    path = _write(tmp_path, {"name": "p", "grids": [a], "deferred": {big: "~100 CPU-h: a cluster"}, "exclude": others})
    comp = load_experiment(path)
    assert comp.uncovered() == [] and [g.name for g in comp.everyone] == ["a", "big"]
    assert [g.name for g in comp.members] == ["a"] and [(g.name, why) for g, why in comp.deferred] == \
        [("big", "~100 CPU-h: a cluster")]
    with pytest.raises(ConfigError, match=r"no member grid runs: meta:finetune"):   # meta:* only in the deferred one
        load_experiment(_write(tmp_path, {"name": "p", "grids": [a], "exclude": others}))
    for raw, message in [({"deferred": {big: " "}}, r"deferred\.big\.yaml: give the reason"),
                         ({"deferred": [big]}, r"deferred: a mapping from grid file to the reason"),
                         ({"deferred": {"nope.yaml": "x"}}, r"deferred\.nope\.yaml \(nope\.yaml\): .*not found"),
                         ({"deferred": {_member(tmp_path, "b", seeds=[0]): "x"}},
                          r"deferred\.b\.yaml \(b\): evaluation seeds \[0\]")]:
        with pytest.raises(ConfigError, match=message):
            load_experiment(_write(tmp_path, {"name": "p", "grids": [a], "exclude": {"*": "x"}, **raw}))

    path = _write(tmp_path, {"name": "p", "grids": [a], "deferred": {big: "~100 CPU-h: a cluster"}, "exclude": others})
    ran = []
    monkeypatch.setattr(cli, "_bench_one", lambda grid, args: ran.append(grid.name) or 0)
    assert cli.cmd_bench(argparse.Namespace(grid=str(path), only=None)) == 0 and ran == ["a"]
    assert "deferred member grid big" in capsys.readouterr().out

    # results: absent, the deferred member is named with its reason; present, its cells join after the members'
    results = tmp_path / "results"
    _results_member(results, "a", keep_methods=["pop"])
    out = compose_results(comp, results, results / "p")
    assert out["missing"] == ["big"]
    assert json.loads((results / "p" / "meta.json").read_text())["deferred"] == {"big": "~100 CPU-h: a cluster"}
    build(results / "p", figures=False)
    assert "big (deferred: ~100 CPU-h: a cluster)" in (results / "p" / "leaderboard.md").read_text()
    _results_member(results, "big")
    out = compose_results(comp, results, results / "p2")
    sources = pd.read_csv(results / "p2" / "sources.csv")
    assert out["missing"] == [] and set(sources[sources.method == "pop"].grid) == {"a"}   # the member's pop
    assert set(sources[sources.method != "pop"].grid) == {"big"} and sources.method.nunique() == 8


def test_a_cell_a_member_excludes_is_named_unless_another_member_runs_it():
    from metarec.bench.grid import parse_grid

    def grid(name, methods):
        return parse_grid({"name": name, "seeds": [0], "metrics": ["ndcg@10"],
                           "datasets": [{"name": "ml-100k", "protocols": ["general", "sequential"]}],
                           "methods": methods})

    a = grid("a", {"pop": {}, "mf-bpr": {"exclude": {"ml-100k/general": "too slow here"}}})
    b = grid("b", {"mf-bpr": {}})
    alone = Composite(name="p", path=None, members=[a]).excluded_cells()
    assert [(c["method"], c["protocol"], c["reason"]) for c in alone] == [("mf-bpr", "general", "too slow here")]
    assert Composite(name="p", path=None, members=[a, b]).excluded_cells() == []
