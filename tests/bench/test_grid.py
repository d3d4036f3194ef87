"""Grid spec validation: every bad input is one clear error naming the key and listing valid choices (the
wording checked in full where it lists names), what a valid spec expands to, and a pinned run key."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from metarec.bench import load_grid, parse_grid
from metarec.bench.grid import RunSpec
from metarec.bench.store import run_key
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
    assert grid.keep_artifacts == () and parse_grid(with_(keep_artifacts=["text_emb"])).keep_artifacts == ("text_emb",)


def test_exclude_skips_a_dataset_or_a_dataset_protocol_pair():
    datasets = [{"name": "ml-100k", "protocols": ["general", "sequential"]},
                {"name": "amazon-office", "protocols": ["general"]}]
    methods = {"pop": {}, "mf-bpr": {"exclude": ["amazon-office"]}, "distill:student": {"exclude": ["ml-100k/general"]}}
    runs = {(r.method, r.dataset, r.protocol) for r in parse_grid(with_(datasets=datasets, methods=methods)).runs()}
    assert ("pop", "amazon-office", "general") in runs and ("pop", "ml-100k", "sequential") in runs
    assert {(d, p) for m, d, p in runs if m == "mf-bpr"} == {("ml-100k", "general"), ("ml-100k", "sequential")}
    assert {(d, p) for m, d, p in runs if m == "distill:student"} == {("ml-100k", "sequential"),
                                                                      ("amazon-office", "general")}
    # with the reason the report names beside the tables: the left-out cells and only they, each with its reason
    methods["mf-bpr"]["exclude"] = {"amazon-office": "one trial exceeds the study's budget here (measured: 41 min)"}
    grid = parse_grid(with_(datasets=datasets, methods=methods))
    assert {(r.method, r.dataset, r.protocol) for r in grid.runs()} == runs
    assert [{k: v for k, v in c.items() if k != "protocol_params"} for c in grid.excluded_cells()] == [
        {"dataset": "ml-100k", "protocol": "general", "method": "distill:student", "reason": ""},
        {"dataset": "amazon-office", "protocol": "general", "method": "mf-bpr",
         "reason": "one trial exceeds the study's budget here (measured: 41 min)"}]


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
    ({"methods": {"pop": {"exclude": {"ml-100k": " "}}}}, r"methods\.pop\.exclude\.ml-100k: the reason must be a non-empty"),
    ({"methods": {"pop": {"exclude": {"ml-100k/x/y": "why"}}}}, r"methods\.pop\.exclude: must be a list .* or a mapping"),
    ({"methods": {"pop": {"exclude": ["ml-100k/genral"]}}}, r"methods\.pop\.exclude: unknown protocol in 'ml-100k/genral'"),
    ({"keep_artifacts": ["text_emb", "checkpoints"]}, r"g\.yaml: keep_artifacts: must be a list of artifact kinds among "
                                                      r"teacher, text_emb, text_student, got \['text_emb', 'checkpoints'\]"),
    ({"keep_artifacts": "text_emb"}, r"keep_artifacts: must be a list"),
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
    from metarec.bench.grid import load_experiment

    assert load_grid("benchmarks/smoke.yaml").runs()
    assert all(g.cells() for g in load_experiment("paper/grid.yaml").members)   # a composition of grids


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


def test_one_metric_list_per_protocol_kind():
    """A grid over ranking and impressions protocols may list each kind's metrics apart: every run gets its kind's
    list; selection needs one metric both define."""
    raw = {"name": "g", "metrics": {"ranking": ["recall@10", "ndcg@10"], "impressions": ["auc", "ndcg@10"]},
           "datasets": [{"name": "ml-100k", "protocols": ["general"]},
                        {"name": "mind-sample", "protocols": ["impressions"]}], "methods": {"pop": {}}}
    g = parse_grid(raw)
    assert g.valid_metric == "ndcg@10" and g.metrics == ["recall@10", "ndcg@10", "auc"]   # the first shared one
    assert {(s.protocol, s.metrics) for s in g.runs()} == {("general", ("recall@10", "ndcg@10")),
                                                            ("impressions", ("auc", "ndcg@10"))}
    plain = parse_grid({**raw, "metrics": ["ndcg@10", "recall@10"], "datasets": raw["datasets"][:1]})
    assert [s.metrics for s in plain.runs()] == [("ndcg@10", "recall@10")]   # a plain list: as before
    bad = [({"ranking": ["recall@10"]}, r"metrics: no list for impressions protocols \(datasets\[1\]"),
           ({"ranking": ["recall@10"], "impressions": ["recall@10"]},
            r"metrics.impressions\[0\]: metric 'recall@10' is not defined for the impressions protocols"),
           ({"ranking": ["recall@10"], "impressions": ["auc"]}, "valid_metric: the per-kind metric lists share no"),
           ({"rank": ["ndcg@10"]}, r"or protocol name \(.*\) to a metric list; unknown \['rank'\]"),
           ({"general": ["ndcg@10"]}, r"metrics: no list for impressions protocols"),
           ({"general": ["ndcg@10"], "impressions": ["ndcg@10", "recall@5"]},
            r"metrics.impressions\[1\]: metric 'recall@5' is not defined for the impressions protocols"),
           ({"ranking": []}, "metrics.ranking: must be a non-empty list")]
    for metrics, message in bad:
        with pytest.raises(ConfigError, match=message):
            parse_grid({**raw, "metrics": metrics})
    g = parse_grid({**raw, "valid_metric": "auc", "metrics": {"ranking": ["recall@10"], "impressions": ["mrr"]}})
    assert {s.metrics for s in g.runs()} == {("auc", "recall@10"), ("auc", "mrr")}   # added to every kind's list


def test_a_protocol_may_have_its_own_metric_list():
    """A protocol's name as a key of ``metrics`` gives that protocol its own list, before its kind's (a grid that
    reuses other grids' runs asks each protocol for what those grids computed); every list is checked against the
    protocol's kind."""
    raw = {"name": "g", "metrics": {"ranking": ["ndcg@10", "recall@20"], "cold_start": ["ndcg@10", "mrr@10"]},
           "datasets": [{"name": "ml-100k", "protocols": ["general", "cold_start"]}], "methods": {"pop": {}}}
    g = parse_grid(raw)
    assert {(s.protocol, s.metrics) for s in g.runs()} == {("general", ("ndcg@10", "recall@20")),
                                                            ("cold_start", ("ndcg@10", "mrr@10"))}
    assert g.metrics_for("sequential") == ["ndcg@10", "recall@20"]   # no list of its own: its kind's
    g = parse_grid({**raw, "metrics": {"general": ["recall@20"], "cold_start": ["mrr@10"]}, "valid_metric": "ndcg@10"})
    assert {s.metrics for s in g.runs()} == {("ndcg@10", "recall@20"), ("ndcg@10", "mrr@10")}
    with pytest.raises(ConfigError, match=r"metrics: no list for cold_start or ranking protocols"):
        parse_grid({**raw, "metrics": {"general": ["ndcg@10"]}})
    with pytest.raises(ConfigError, match=r"metrics.cold_start\[1\]: metric 'mrr' needs a cut-off under the ranking"):
        parse_grid({**raw, "metrics": {"general": ["ndcg@10"], "cold_start": ["ndcg@10", "mrr"]}})


# ---- every rule, and what a valid spec expands to ------------------------------------------------------------
TUNE = {"trials": 4, "seeds": [100]}
def tuned(tune=None, **methods):
    return with_(tune={**TUNE, **(tune or {})}, methods=methods or {"mf-bpr": {"params": {"max_epochs": 1}}})


@pytest.mark.parametrize("raw, message", [
    ([1, 2], r"g.yaml: a grid is a mapping"),
    ({k: v for k, v in BASE.items() if k != "datasets"}, r"g.yaml: missing key 'datasets'"),
    ({k: v for k, v in BASE.items() if k != "methods"}, r"g.yaml: missing key 'methods'"),
    (with_(seeds=[]), r"g.yaml: seeds: must be a non-empty list"),
    (with_(seeds=[0, -1]), r"seeds: must be a non-empty list of integers in 0..2\*\*32-1, got \[0, -1\]"),
    (with_(seeds=[1, 2, 1]), r"seeds: repeated seed in \[1, 2, 1\]"),
    (with_(metrics="ndcg@10"), r"metrics: must be a list of metric names"),
    (with_(also_eval=["sampled", "sampled"]), r"also_eval: a list of distinct"),
    (with_(also_eval="sampled"), r"also_eval: a list of distinct evaluation modes other than eval_mode \(sampled, "
                                 r"sampled-pop\), got 'sampled'"),
    (with_(also_eval=["exact"]), r"also_eval"),
    (with_(ties="random"), r"ties: must be one of expected, first, got 'random'"),
    (with_(split_seed=-3), r"split_seed: must be an integer in 0..2\*\*32-1, got -3"),
    (with_(threads=0), r"threads: must be a positive integer, got 0"),
    (with_(threads="2"), r"threads: must be a positive integer, got '2'"),
    (with_(datasets=[]), r"datasets: must be a non-empty list"),
    (with_(datasets={"name": "ml-100k"}), r"datasets: must be a non-empty list"),
    (with_(datasets=[{"protocols": ["general"]}]), r"datasets\[0\]: each dataset is a name or a mapping with 'name'"),
    (with_(datasets=[{"name": "ml-100k", "split": 1}]), r"datasets\[0\]: unknown key\(s\) split; valid: name, "),
    (with_(datasets=[{"name": "ml-100k", "preprocess": {"min_ratin": 4}}]),
     r"datasets\[0\]\.preprocess: valid keys: min_rating, k_core; got \{'min_ratin': 4\}"),
    (with_(datasets=[{"name": "ml-100k", "preprocess": [4]}]), r"datasets\[0\]\.preprocess: valid keys"),
    (with_(datasets=[{"name": "ml-100k", "protocols": [{"params": {}}]}]),
     r"datasets\[0\]\.protocols\[0\]: a protocol is a name or \{name: ..., params: \{...\}\}"),
    (with_(datasets=[{"name": "ml-100k", "protocols": [{"name": "general", "ratio": 1}]}]), r"a protocol is a name"),
    (with_(datasets=[{"name": "ml-100k", "protocols": [{"name": "general", "params": {"ratios": [0.5, 0.5]}}]}]),
     r"datasets\[0\]\.protocols\[0\]: protocol 'general': ratios must be three"),
    (with_(valid_metric="ndcg@0"), r"g.yaml: valid_metric: "),
    (with_(methods={}), r"methods: must be a non-empty mapping"),
    (with_(methods=["pop"]), r"methods: must be a non-empty mapping"),
    (with_(methods={"pop": {"parms": {}}}), r"methods\.pop: valid keys: params, grid, search, tune, protocols, exclude"),
    (with_(methods={"pop": [1]}), r"methods\.pop: valid keys"),
    (with_(methods={"mf-bpr": {"params": [1]}}), r"methods\.mf-bpr: params and grid are mappings"),
    (with_(methods={"mf-bpr": {"grid": [1]}}), r"methods\.mf-bpr: params and grid are mappings"),
    (with_(methods={"mf-bpr": {"grid": {"lr": []}}}), r"methods\.mf-bpr\.grid\.lr: must be a non-empty list of values, "
                                                      r"got \[\]"),
    (with_(methods={"mf-bpr": {"grid": {"lr": [0.1, "fast"]}}}), r"methods\.mf-bpr: .*lr"),
    (with_(methods={"pop": {"protocols": ["sequential"]}}),
     r"methods\.pop\.protocols: protocol 'sequential' is not in the grid's datasets \(valid: general\)"),
    (with_(datasets=[{"name": "ml-100k", "protocols": ["general", "sequential"]}],
           methods={"mtl:mmoe": {"protocols": ["sequential"]}}), r"methods\.mtl:mmoe\.protocols: mtl:mmoe does not "
                                                                  r"support sequential \(it supports general"),
    (with_(datasets=[{"name": "ml-100k", "protocols": ["sequential"]}], methods={"mtl:mmoe": {}}),
     r"methods\.mtl:mmoe: supports protocols general.*; none is in the grid"),
    (with_(methods={"pop": {"exclude": ["a/b/c"]}}), r"methods\.pop\.exclude: must be a list of 'dataset' or "
                                                     r"'dataset/protocol' names, or a mapping .*, got \['a/b/c'\]"),
    (with_(methods={"pop": {"exclude": ["ml-100k/"]}}), r"methods\.pop\.exclude: must be a list"),
    (with_(methods={"pop": {"exclude": [3]}}), r"methods\.pop\.exclude: must be a list"),
    (with_(methods={"mf-bpr": {"search": {"lr": [0.1]}}}), r"methods\.mf-bpr\.search: needs the grid's tune: block"),
    (with_(methods={"pop": {"tune": "yes"}}), r"methods\.pop\.tune: must be true or false, got 'yes'"),
    (with_(summaries="tradeoff"), r"summaries: must be a list of summary names, got 'tradeoff'"),
    (with_(summaries=["tradeof"]), r"summaries\[0\]: unknown summary 'tradeof'"),
    (with_(summaries=["vs_reference"]), r"summaries: vs_reference needs the grid's reference: method"),
    (with_(inference_repeats=-1), r"inference_repeats: must be a non-negative integer, got -1"),
    (with_(inference_repeats=True), r"inference_repeats: must be a non-negative integer, got True"),
    (with_(inference_repeats=1.5), r"inference_repeats: must be a non-negative integer"),
    (with_(tracking="wandb"), r"tracking: must be one of none, tensorboard, got 'wandb'"),
    (with_(reference="itemknn"), r"reference: must be one of the grid's methods \(mf-bpr, pop\), got 'itemknn'"),
    # tune:
    (with_(tune=[1]), r"g.yaml: tune: a mapping with trials"),
    (with_(tune={"trails": 3}), r"tune: unknown key\(s\) trails; valid: budget_clock, budget_s, metric, parallel"),
    (with_(tune={"seeds": [100]}), r"tune: give trials, budget_s or both"),
    (with_(tune={"trials": 0}), r"tune\.trials: must be a positive integer, got 0"),
    (with_(tune={"trials": 2.5}), r"tune\.trials: must be a positive integer, got 2.5"),
    (with_(tune={"trials": True}), r"tune\.trials: must be a positive integer, got True"),
    (with_(tune={"budget_s": -1}), r"tune\.budget_s: must be a positive number, got -1"),
    (with_(tune={"budget_s": "1h"}), r"tune\.budget_s: must be a positive number"),
    (with_(tune={"trials": 2, "seeds": []}), r"tune\.seeds: must be a non-empty list of distinct integers"),
    (with_(tune={"trials": 2, "seeds": [5, 5]}), r"tune\.seeds: must be a non-empty list of distinct"),
    (with_(tune={"trials": 2, "seeds": [-5]}), r"tune\.seeds: must be a non-empty list"),
    (with_(tune={"trials": 2, "seeds": [0, 7]}), r"tune\.seeds: tuning seeds must differ from the evaluation seeds "
                                                 r"\(shared: \[0\]\)"),
    (with_(tune={"trials": 2, "metric": "ndcg@-1"}), r"tune\.metric: "),
    (with_(tune={"trials": 2, "pruner": "hyperband"}), r"tune\.pruner: must be one of median, none, got 'hyperband'"),
    (with_(tune={"trials": 2, "sampler_seed": -1}), r"tune\.sampler_seed: must be an integer in 0..2\*\*32-1"),
    (with_(tune={"trials": 2, "startup_trials": -1}), r"tune\.startup_trials: must be a non-negative integer, got -1"),
    (with_(tune={"trials": 2, "startup_trials": False}), r"tune\.startup_trials: must be a non-negative integer"),
    (with_(tune={"trials": 2, "parallel": 0}), r"tune\.parallel: must be a positive integer, got 0"),
    (with_(tune={"trials": 2, "budget_clock": "gpu"}), r"tune\.budget_clock: must be one of wall, cpu, got 'gpu'"),
    (tuned(**{"mf-bpr": {"grid": {"lr": [0.1]}}}), r"methods\.mf-bpr\.grid: a tuned grid searches"),
    (tuned(**{"mf-bpr": {"search": {"lrr": [0.1, 0.2]}}}),
     r"^g.yaml: methods\.mf-bpr\.search\.lrr: not a parameter of this method; valid: .*dim"),
])
def test_each_rule_refuses_its_case(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid(raw, source="g.yaml")


def test_defaults_of_a_minimal_grid(tmp_path):
    p = tmp_path / "minimal.yaml"
    p.write_text("datasets: [ml-100k]\nmethods: {pop: }\n")
    g = load_grid(p)
    assert (g.name, g.path, g.seeds, g.eval_mode, g.ties, g.threads, g.split_seed) == \
        ("minimal", p, [0], "full", "expected", 1, None)
    assert g.datasets == [{"name": "ml-100k", "preprocess": {}, "protocols": [{"name": "general",
                                                                               "params": {"ratios": [0.8, 0.1, 0.1]}}]}]
    assert g.metrics[:2] == ["recall@10", "recall@20"] and g.valid_metric == "recall@10"
    assert (g.reference, g.tune, g.summaries, g.inference_repeats, g.tracking, g.also_eval) == \
        (None, None, [], 0, "none", ())
    assert parse_grid({"datasets": ["ml-100k"], "methods": {"pop": {}}}).name == "grid"
    with pytest.raises(ConfigError, match=r"nowhere.yaml: grid file not found"):
        load_grid(tmp_path / "nowhere.yaml")


def test_the_valid_and_tuning_metrics_join_the_metrics():
    g = parse_grid(with_(valid_metric="hit@10"))
    assert g.metrics == ["hit@10", "ndcg@10"] and g.valid_metric == "hit@10"
    g = parse_grid(tuned(tune={"metric": "mrr@10"}))
    assert g.metrics == ["mrr@10", "ndcg@10"] and g.tune.metric == "mrr@10" and g.valid_metric == "ndcg@10"


def test_configurations_are_the_product_of_the_grid_over_the_fixed_parameters():
    g = parse_grid(with_(methods={"mf-bpr": {"params": {"max_epochs": 2}, "grid": {"lr": [0.1, 0.2], "dim": [8, 16]}}}))
    assert g.methods["mf-bpr"]["configs"] == [{"max_epochs": 2, "dim": d, "lr": lr} for d in (8, 16) for lr in (0.1, 0.2)]
    assert g.methods["mf-bpr"]["fixed"] == {"max_epochs": 2} and g.methods["mf-bpr"]["space"] == {}
    assert len(g.runs()) == 4 and not g.is_tuned("mf-bpr")


def test_protocols_default_to_those_a_method_supports():
    g = parse_grid(with_(datasets=[{"name": "ml-100k", "protocols": ["general", "sequential"]}],
                         methods={"mtl:mmoe": {}, "pop": {}}))
    assert g.methods["mtl:mmoe"]["protocols"] == ["general"] and g.methods["pop"]["protocols"] == []
    assert {(m, p["name"]) for _, p, m in g.cells()} == {("mtl:mmoe", "general"), ("pop", "general"),
                                                         ("pop", "sequential")}


def test_a_tune_block_gives_each_method_its_space_without_the_fixed_parameters():
    g = parse_grid(tuned(**{"mf-bpr": {"params": {"max_epochs": 1, "lr": 0.01}},
                            "recbole:ItemKNN": {"search": {"k": [10, 20]}}, "pop": {"tune": False}}))
    t = g.tune
    assert (t.trials, t.budget_s, t.seeds, t.metric, t.pruner, t.sampler_seed, t.parallel, t.clock) == \
        (4, None, (100,), "ndcg@10", "median", 0, 1, "wall")
    assert t.startup_trials == 2   # min(10, trials // 2)
    assert "lr" not in g.methods["mf-bpr"]["space"] and "weight_decay" in g.methods["mf-bpr"]["space"]
    assert set(g.methods["recbole:ItemKNN"]["space"]) == {"k"}
    assert g.is_tuned("mf-bpr") and not g.is_tuned("pop") and g.methods["pop"]["space"] == {}
    assert {r.method for r in g.runs()} == {"pop"}        # tuned methods' runs come from their studies
    t = parse_grid(with_(tune={"budget_s": 60, "budget_clock": "cpu"}, methods={"pop": {}})).tune
    assert (t.trials, t.budget_s, t.clock, t.startup_trials, t.seeds) == (None, 60.0, "cpu", 10, (1000,))
    assert parse_grid(with_(tune=False)).tune is None


def test_run_specs_carry_the_grid_settings_and_identity_the_resolved_parameters():
    g = parse_grid(with_(seeds=[3, 4], split_seed=9, threads=2, eval_mode="sampled", also_eval=["sampled-pop"],
                         ties="first", inference_repeats=2, tracking="tensorboard", metrics=["ndcg@10", "hit@10"],
                         datasets=[{"name": "ml-100k", "preprocess": {"min_rating": 4}}], methods={"pop": {}}))
    specs = g.runs()
    assert [s.seed for s in specs] == [3, 4] and {s.split_seed for s in specs} == {9}
    s = specs[0]
    assert (s.dataset, s.preprocess, s.protocol, s.method, s.params, s.threads, s.eval_mode, s.ties,
            s.also_eval, s.inference_repeats, s.tracking, s.metrics) == \
        ("ml-100k", {"min_rating": 4}, "general", "pop", {}, 2, "sampled", "first", ("sampled-pop",), 2,
         "tensorboard", ("ndcg@10", "hit@10"))
    ident = s.identity("fp")
    assert ident["split_fingerprint"] == "fp" and ident["also_eval"] == ["sampled-pop"] and ident["ties"] == "first"
    assert ident["metrics"] == ["ndcg@10", "hit@10"] and ident["protocol_params"] == {"ratios": [0.8, 0.1, 0.1]}
    assert "threads" not in ident and "tracking" not in ident and "inference_repeats" not in ident
    assert "also_eval" not in parse_grid(with_()).runs()[0].identity("fp")
    assert parse_grid(with_(seeds=[5])).runs()[0].split_seed == 5     # no split_seed: the run's seed
    assert s.params_label == "{}" and parse_grid(BASE).runs()[1].params_label == '{"lr": 0.001, "max_epochs": 1}'


def test_restrict_runs_a_part_and_names_what_matches_nothing():
    g = parse_grid(with_(datasets=[{"name": "ml-100k", "protocols": ["general", "sequential"]}]))
    part = g.restrict(["method=mf-*", "protocol=seq*, gen*"])
    assert part.only == {"method": ["mf-*"], "protocol": ["seq*", "gen*"]}
    assert {(p["name"], m) for _, p, m in part.cells()} == {("general", "mf-bpr"), ("sequential", "mf-bpr")}
    assert {(p["name"], m) for _, p, m in g.restrict(["dataset=ml-100k", "method=pop"]).cells()} == \
        {("general", "pop"), ("sequential", "pop")}
    assert g.only == {} and len(g.cells()) == 4
    for bad, msg in [(["method"], "expected dataset=GLOB"), (["method= "], "expected"), (["seed=1"], "expected"),
                     (["method=x*"], r"method=x\*: matches no method of grid 't' \(has: mf-bpr, pop\)")]:
        with pytest.raises(ConfigError, match=msg):
            g.restrict(bad)
    g2 = parse_grid(with_(methods={"pop": {"protocols": ["general"]}, "mf-bpr": {"protocols": ["sequential"]}},
                          datasets=[{"name": "ml-100k", "protocols": ["general", "sequential"]}]))
    with pytest.raises(ConfigError, match=r"--only method=pop protocol=sequential: matches no cell"):
        g2.restrict(["method=pop", "protocol=sequential"])


# ---- errors in full ------------------------------------------------------------------------------------------------
# The whole message, not a pattern, for the rules whose wording lists names (valid keys, valid protocols, what a
# method supports) or carries another check's message. A user acts on these words; a list joined wrongly or a message
# dropped on the way is a bug the patterns above would let through.
PROTOCOLS = "cold_start, general, given, impressions, sequential, temporal"
TUNE_KEYS = "budget_clock, budget_s, metric, parallel, pruner, reuse, sampler_seed, seeds, share, startup_trials, trials"


def message(raw, source="g.yaml") -> str:
    with pytest.raises(ConfigError) as e:
        parse_grid(raw, source=source)
    return str(e.value)


@pytest.mark.parametrize("raw, expected", [
    ({**BASE, "colour": 1, "size": 2},
     "g.yaml: unknown key(s) colour, size; valid: also_eval, datasets, description, eval_mode, inference_repeats, keep_artifacts, "
     "methods, metrics, name, reference, seeds, split_seed, summaries, threads, ties, tracking, tune, valid_metric"),
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


def test_a_method_s_own_domains_bound_the_search_and_its_broken_space_is_named(monkeypatch):
    """A search is checked against the method's own ``domains`` (not only the common ones by name), and an error in
    the space a method declares is reported under the method's grid key, with the declaration's own words."""
    from metarec.methods import registry
    from metarec.methods.base import Method
    from metarec.params import Domain

    class Strict(Method):
        defaults = {"width": 8, "lr": 0.01}
        domains = {"width": Domain("int", low=4, high=64)}
        search_space = {"width": {"int": [4, 32]}}

    class Broken(Method):
        defaults = {"lr": 0.01}
        search_space = {"depth": {"int": [1, 3]}}

    monkeypatch.setitem(registry._BUILTIN, "test:strict", Strict)
    monkeypatch.setitem(registry._BUILTIN, "test:broken", Broken)
    Strict.name, Broken.name = "test:strict", "test:broken"
    assert parse_grid(tuned(**{"test:strict": {}})).methods["test:strict"]["space"]["width"].high == 32
    assert message(tuned(**{"test:strict": {"search": {"width": {"int": [2, 16]}}}})) == (
        "g.yaml: methods.test:strict.search.width: int [2, 16] reaches outside the parameter's domain (an integer in "
        "[4, 64])")
    with pytest.raises(ConfigError) as e:
        Broken.declared_space()
    assert message(tuned(**{"test:broken": {}})) == f"g.yaml: methods.test:broken: {e.value}"
    assert "depth" in str(e.value)


@pytest.mark.parametrize("path", sorted(str(p) for p in Path("benchmarks").glob("*.yaml")) + ["paper/grid.yaml"])
def test_every_shipped_grid_validates(path):
    """Every grid the repository ships parses (the paper's: every member), and the grids its tuning reuses exist with
    the same budget."""
    from metarec.bench.compose import Composite
    from metarec.bench.grid import load_experiment
    from metarec.bench.tune import reused_grids

    loaded = load_experiment(path)
    for grid in loaded.members if isinstance(loaded, Composite) else [loaded]:
        assert grid.cells()
        for other in reused_grids(grid):
            assert other.name != grid.name
