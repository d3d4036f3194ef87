"""Grid spec validation: every bad input is one clear error naming the key and listing valid choices."""
from __future__ import annotations

import pytest
import yaml

from metarec.bench import load_grid, parse_grid
from metarec.errors import ConfigError

BASE = {"name": "t", "seeds": [0], "metrics": ["ndcg@10"], "datasets": [{"name": "ml-100k", "protocols": ["general"]}],
        "methods": {"pop": {}, "mf-bpr": {"params": {"max_epochs": 1}, "grid": {"lr": [0.001, 0.01]}}}}


def with_(**changes):
    g = yaml.safe_load(yaml.safe_dump(BASE))
    g.update(changes)
    return g


def test_valid_grid_expands():
    grid = parse_grid(with_(seeds=[0, 1]))
    runs = grid.runs()
    assert len(runs) == 2 * (1 + 2)
    assert {r.params.get("lr") for r in runs if r.method == "mf-bpr"} == {0.001, 0.01}
    assert grid.valid_metric == "ndcg@10"


def test_exclude_skips_a_dataset_or_a_dataset_protocol_pair():
    datasets = [{"name": "ml-100k", "protocols": ["general", "sequential"]},
                {"name": "amazon-office", "protocols": ["general"]}]
    methods = {"pop": {}, "mf-bpr": {"exclude": ["amazon-office"]}, "distill:student": {"exclude": ["ml-100k/general"]}}
    runs = {(r.method, r.dataset, r.protocol) for r in parse_grid(with_(datasets=datasets, methods=methods)).runs()}
    assert ("pop", "amazon-office", "general") in runs and ("pop", "ml-100k", "sequential") in runs
    assert {(d, p) for m, d, p in runs if m == "mf-bpr"} == {("ml-100k", "general"), ("ml-100k", "sequential")}
    assert {(d, p) for m, d, p in runs if m == "distill:student"} == {("ml-100k", "sequential"),
                                                                      ("amazon-office", "general")}


@pytest.mark.parametrize("changes, message", [
    ({"datasets": [{"name": "ml-10k"}]}, r"datasets\[0\]\.name: unknown dataset 'ml-10k'.*valid: .*ml-100k"),
    ({"methods": {"mf-bpx": {}}}, r"methods\.mf-bpx: unknown method 'mf-bpx' \(did you mean 'mf-bpr'\?\); valid: .*pop"),
    ({"datasets": [{"name": "ml-100k", "protocols": ["genral"]}]},
     r"protocols\[0\]: unknown protocol 'genral'.*valid: cold_start, general"),
    ({"metrics": ["ndcg@10", "ndgc@5"]}, r"metrics\[1\]: .*'ndgc"),
    ({"seeds": "0"}, r"seeds: must be a non-empty list of integers"),
    ({"methods": {"mf-bpr": {"params": {"dimm": 3}}}}, r"methods\.mf-bpr: .*unknown parameter\(s\) dimm; valid: .*dim"),
    ({"methods": {"mf-bpr": {"grid": {"lr": 0.1}}}}, r"methods\.mf-bpr\.grid\.lr: must be a non-empty list"),
    ({"eval_mode": "fast"}, r"eval_mode: must be one of full, sampled, sampled-pop"),
    ({"also_eval": ["full"]}, r"also_eval: a list of distinct evaluation modes other than eval_mode"),
    ({"colour": 1}, r"unknown key\(s\) colour; valid: "),
    ({"methods": {"pop": {"exclude": "ml-100k"}}}, r"methods\.pop\.exclude: must be a list of 'dataset' or"),
    ({"methods": {"pop": {"exclude": ["ml-100k/genral"]}}}, r"methods\.pop\.exclude: unknown protocol in 'ml-100k/genral'"),
])
def test_bad_grids(changes, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid(with_(**changes), source="g.yaml")


def test_garbled_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nseeds: [0\nmethods: {}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: not valid YAML"):
        load_grid(p)


def test_shipped_grids_validate():
    for path in ("benchmarks/smoke.yaml", "paper/grid.yaml"):
        grid = load_grid(path)
        assert grid.runs(), path


def test_smoke_grid_covers_every_builtin_method():
    from metarec.methods import list_methods

    grid = load_grid("benchmarks/smoke.yaml")
    builtin = {name for name, origin in list_methods().items() if origin == "builtin"}
    assert builtin - set(grid.methods) == set(), "benchmarks/smoke.yaml must run every registered method"
    assert grid.seeds == [0] and {d["name"] for d in grid.datasets} == {"ml-100k"}


def test_metrics_are_checked_against_every_protocol_of_the_grid():
    """A metric the impressions protocol does not define fails at parse time, naming the protocol (the evaluator
    would otherwise reject every such run after the grid started)."""
    raw = {"name": "g", "metrics": ["ndcg@10", "recall@10"],
           "datasets": [{"name": "ml-100k", "protocols": ["general"]},
                        {"name": "mind-sample", "protocols": ["impressions"]}], "methods": {"pop": {}}}
    with pytest.raises(ConfigError, match=r"datasets\[1\]\.protocols\[0\] \(impressions\): metric 'recall@10' is "
                                          r"not defined for the impressions protocols"):
        parse_grid(raw)
    raw["metrics"] = ["ndcg@10", "auc"]
    assert parse_grid(raw).metrics == ["ndcg@10", "auc"]
    del raw["metrics"]
    with pytest.raises(ConfigError, match="mixes ranking and impressions protocols"):
        parse_grid(raw)
    raw["datasets"] = raw["datasets"][1:]
    assert set(parse_grid(raw).metrics) == {"auc", "mrr", "ndcg@5", "ndcg@10"}   # the registry's defaults
