"""Grid errors in full: the whole message, not a pattern, for the rules whose wording lists names (valid keys, valid
protocols, what a method supports) or carries another check's message. A user acts on these words; a list joined
wrongly or a message dropped on the way is a bug the regex tests in test_grid.py would let through."""
from __future__ import annotations

import pytest
import yaml

from metarec.bench import load_grid, parse_grid
from metarec.bench.grid import RunSpec
from metarec.bench.store import run_key
from metarec.errors import ConfigError

from tests.bench.test_grid import BASE, tuned, with_

PROTOCOLS = "cold_start, general, given, impressions, sequential, temporal"
TUNE_KEYS = "budget_clock, budget_s, metric, parallel, pruner, sampler_seed, seeds, startup_trials, trials"


def message(raw, source="g.yaml") -> str:
    with pytest.raises(ConfigError) as e:
        parse_grid(raw, source=source)
    return str(e.value)


@pytest.mark.parametrize("raw, expected", [
    ({**BASE, "colour": 1, "size": 2},
     "g.yaml: unknown key(s) colour, size; valid: also_eval, datasets, description, eval_mode, inference_repeats, methods, metrics, "
     "name, reference, seeds, split_seed, summaries, threads, ties, tracking, tune, valid_metric"),
    (with_(datasets=[{"name": "ml-100k", "split": 1, "size": 2}]),
     "g.yaml: datasets[0]: unknown key(s) size, split; valid: name, preprocess, protocols"),
    (with_(datasets=[{"name": "ml-100k", "protocols": ["general"]}, {"name": "mind-sample",
                                                                   "protocols": ["impressions"]}], metrics=None),
     "g.yaml: metrics: the grid mixes ranking and impressions protocols: list the metrics (each must be defined "
     "under every protocol, e.g. auc, ndcg@10)"),
    (with_(valid_metric="ndcg@0"), "g.yaml: valid_metric: VALID_MESSAGE"),
    (with_(datasets=[{"name": "ml-100k", "protocols": ["general", "sequential"]}],
           methods={"pop": {"protocols": ["temporal"]}}),
     "g.yaml: methods.pop.protocols: protocol 'temporal' is not in the grid's datasets (valid: general, sequential)"),
    (with_(datasets=[{"name": "ml-100k", "protocols": ["general", "sequential", "cold_start"]}],
           methods={"mtl:mmoe": {"protocols": ["sequential", "cold_start"]}}),
     "g.yaml: methods.mtl:mmoe.protocols: mtl:mmoe does not support sequential, cold_start (it supports general, "
     "impressions)"),
    (with_(datasets=[{"name": "ml-100k", "protocols": ["sequential"]}], methods={"mtl:mmoe": {}}),
     "g.yaml: methods.mtl:mmoe: supports protocols general, impressions; none is in the grid"),
    (with_(methods={"pop": {"exclude": ["ml-100k/genral"]}}),
     f"g.yaml: methods.pop.exclude: unknown protocol in 'ml-100k/genral' (valid: {PROTOCOLS})"),
    (tuned(**{"mf-bpr": {"grid": {"lr": [0.1]}}}),
     "g.yaml: methods.mf-bpr.grid: a tuned grid searches; write the values as search: {param: [...]} (or set tune: "
     "false for this method)"),
    (tuned(**{"mf-bpr": {"search": {"lr": {"low": -1.0, "high": 0.1}}}}),      # named once, not twice
     "g.yaml: methods.mf-bpr.search.lr: name exactly one of float, int, categorical; got keys ['high', 'low']"),
    (tuned(**{"mf-bpr": {"search": {"lr": {"float": [-1.0, 0.1]}}}}), "g.yaml: methods.mf-bpr.search.lr: float [-1.0, 0.1] reaches outside the parameter's domain (a number > 0.0)"),
    (with_(tune={"trails": 3, "budget": 4}), f"g.yaml: tune: unknown key(s) budget, trails; valid: {TUNE_KEYS}"),
    (with_(tune={"trials": 2, "seeds": [0, 7]}),
     "g.yaml: tune.seeds: tuning seeds must differ from the evaluation seeds (shared: [0]): a configuration chosen "
     "on a split must not be scored on the same split"),
    (with_(tune={"trials": 2, "metric": "ndcg@0"}), "g.yaml: tune.metric: VALID_MESSAGE"),
])
def test_the_whole_message(raw, expected):
    from metarec.eval.metrics import parse_metric
    try:
        parse_metric("ndcg@0")
    except Exception as e:       # the metric parser's own words, carried unchanged
        expected = expected.replace("VALID_MESSAGE", str(e))
    assert message(raw) == expected


def test_a_grid_without_a_source_is_named_grid():
    with pytest.raises(ConfigError) as e:
        parse_grid([1])
    assert str(e.value) == "<grid>: a grid is a mapping with keys datasets, methods, seeds, metrics ..."


def test_a_grid_file_names_itself_in_every_error(tmp_path):
    p = tmp_path / "g.yaml"
    p.write_text(yaml.safe_dump(with_(seeds="x")))
    with pytest.raises(ConfigError) as e:
        load_grid(p)
    assert str(e.value) == f"{p}: seeds: must be a non-empty list of integers in 0..2**32-1, got 'x'"


def test_garbled_yaml_names_the_line_and_the_problem(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nseeds: [0\nmethods: {}\n")
    with pytest.raises(ConfigError) as e:
        load_grid(p)
    assert str(e.value) == f"{p}:3: not valid YAML (expected ',' or ']', but got ':')"
    # a reader error (a control character) has no position: the file alone, and the reader's own words
    p.write_text("name: x\x07\n")
    with pytest.raises(ConfigError) as e:
        load_grid(p)
    assert str(e.value).startswith(f"{p}: not valid YAML (unacceptable character #x0007")


def test_tuning_defaults_and_the_smallest_legal_values():
    assert parse_grid(tuned(tune={"trials": 30})).tune.startup_trials == 10        # at most 10 random trials
    assert parse_grid(tuned(tune={"trials": 1})).tune.startup_trials == 1          # at least one
    assert parse_grid(tuned(tune={"trials": 4, "startup_trials": 0})).tune.startup_trials == 0   # 0: TPE at once


def test_a_method_can_opt_out_of_tuning_and_keep_its_grid():
    g = parse_grid(tuned(**{"mf-bpr": {"tune": False, "params": {"max_epochs": 1}, "grid": {"lr": [0.1, 0.2]}}}))
    assert not g.is_tuned("mf-bpr") and g.methods["mf-bpr"]["space"] == {}
    assert [c["lr"] for c in g.methods["mf-bpr"]["configs"]] == [0.1, 0.2]


def test_k_core_is_a_preprocess_key_and_the_grid_keeps_reference_and_raw():
    raw = with_(datasets=[{"name": "ml-100k", "preprocess": {"k_core": 2}}], reference="pop")
    g = parse_grid(raw)
    assert g.datasets[0]["preprocess"] == {"k_core": 2} and g.reference == "pop" and g.raw is raw


def test_only_splits_at_the_first_equals_sign():
    g = parse_grid(with_())
    with pytest.raises(ConfigError) as e:
        g.restrict(["method=mf=*"])
    assert str(e.value) == "--only method=mf=*: matches no method of grid 't' (has: mf-bpr, pop)"
    with pytest.raises(ConfigError) as e:
        g.restrict(["seed=1"])
    assert str(e.value) == ("--only 'seed=1': expected dataset=GLOB, protocol=GLOB or method=GLOB (comma-separated "
                            "globs, e.g. method=recbole:*)")


def test_a_run_key_is_stable():
    """Committed results are found by their run key: what goes into it (names included) must not drift, or every
    committed result is silently orphaned and recomputed."""
    spec = RunSpec(dataset="ml-100k", preprocess={"min_rating": 4}, protocol="general",
                   protocol_params={"ratios": [0.8, 0.1, 0.1]}, split_seed=0, method="mf-bpr",
                   params={"lr": 0.01}, seed=3, metrics=("ndcg@10",), eval_mode="full", threads=1)
    ident = spec.identity("abc123")
    assert list(ident) == ["dataset", "preprocess", "protocol", "protocol_params", "split_fingerprint", "method",
                           "params", "seed", "eval_mode", "ties", "metrics"]
    assert ident["params"]["lr"] == 0.01 and ident["params"]["dim"] == 64
    assert run_key(ident) == "b5a8318492a25da0"
