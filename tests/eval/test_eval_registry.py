"""The metric registry is the one list of metrics: a metric declared there is parsed, computed, stored and judged
(best cell, tuning direction) everywhere without another edit."""
from __future__ import annotations

import ast
from pathlib import Path

import pandas as pd
import pytest

from metarec.errors import ConfigError
from metarec.eval import Evaluator, registry
from metarec.eval.metrics import parse_metric
from tests.toys import distinct_scores, random_split


@pytest.fixture
def hits_at(monkeypatch):
    """A plugin metric, registered the way the entry point does: number of targets in the top K (unnormalised)."""
    d = registry.MetricDef("hits_count", "targets in the top K", compute=lambda top, hits, n_pos, k: hits[:, :k].sum(1),
                           origin="tests:plugin")
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.metrics()))
    registry.register_metric(d)
    return d


def test_a_registered_metric_appears_everywhere(hits_at, tmp_path):
    from metarec.bench import parse_grid, run_grid
    from metarec.bench.store import lower_is_better

    assert parse_metric("hits_count@5").k == 5
    split = random_split(n_users=30, n_items=40, seed=1)
    scores = distinct_scores(split.n_users, split.n_items, seed=1)
    res = Evaluator(split, ["hits_count@5", "precision@5"]).evaluate_scores(scores)
    assert res.means["hits_count@5"] == pytest.approx(5 * res.means["precision@5"], abs=1e-12)
    assert "hits_count@5" in res.per_user.columns and not lower_is_better("hits_count@5")
    g = parse_grid({"name": "p", "seeds": [0], "metrics": ["hits_count@10", "ndcg@10"], "valid_metric":
                    "hits_count@10", "datasets": [{"name": "ml-100k", "protocols": ["general"]}],
                    "methods": {"pop": {}}})
    out = run_grid(g, root=tmp_path, progress=False)
    assert "hits_count@10" in set(out["tidy"].metric) and out["tidy"].selected.all()


def test_registration_errors():
    with pytest.raises(ConfigError, match="already registered"):
        registry.register_metric(registry.MetricDef("ndcg", "again"))
    with pytest.raises(ConfigError, match="unknown need"):
        registry.register_metric(registry.MetricDef("x1", "x", needs=("gpu",)))
    with pytest.raises(ConfigError, match="a plugin can add per-user top-K metrics"):
        registry.register_metric(registry.MetricDef("x2", "x", origin="plugin"))


@pytest.mark.parametrize("defn, message", [
    (lambda: "ndcg", r"register_metric expects a MetricDef, got str"),
    (lambda: registry.MetricDef("Hits", "x"), r"metric base 'Hits': lower-case letters"),
    (lambda: registry.MetricDef("hit-rate", "x"), r"metric base 'hit-rate': lower-case letters"),
    (lambda: registry.MetricDef("x3", "x", needs=("scores", "gpu", "tpu")), r"^metric 'x3': unknown need\(s\) gpu, tpu; "
                                                                            r"valid: scores, ratings, impressions, "
                                                                            r"item_categories, train_popularity$"),
    (lambda: registry.MetricDef("x4", "x", protocols={"sessions": "k"}), r"protocols must map ranking/impressions to k "
                                                                          r"or none, got 'sessions': 'k'"),
    (lambda: registry.MetricDef("x5", "x", protocols={"ranking": "K"}), r"got 'ranking': 'K'"),
    (lambda: registry.MetricDef("x6", "x", origin="p", compute=len, protocols={"ranking": "none"}),
     r"^plugin metric 'x6': a plugin can add per-user top-K metrics \(protocols \{'ranking': 'k'\}, needs "
     r"\('scores',\), a compute function\)$"),
    (lambda: registry.MetricDef("x7", "x", origin="p", compute=len, needs=("ratings",)), "plugin metric 'x7'"),
    (lambda: registry.MetricDef("x8", "x", origin="p", compute=len, per_unit=False), "plugin metric 'x8'"),
    (lambda: registry.MetricDef("ndcg", "again", origin="p", compute=len), r"'ndcg' is already registered \(by metarec\)"),
])
def test_every_registration_rule_refuses_its_case(defn, message, monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.metrics()))
    with pytest.raises(ConfigError, match=message):
        registry.register_metric(defn())
    ok = registry.register_metric(registry.MetricDef("x9", "x", origin="p", compute=len))   # a valid plugin metric
    assert registry.get("x9") is ok and "x9" in registry.metrics() and "x9" in registry.requestable("ranking")
    assert registry.register_metric(registry.MetricDef("x9", "y"), replace=True).doc == "y"


def test_names_defaults_and_what_can_be_requested():
    assert [registry.base_of(n) for n in ("rating/mae", "ndcg@10", " NDCG@5 ", "a/b/recall@20", "auc")] == \
        ["mae", "ndcg", "ndcg", "recall", "auc"]
    assert registry.default_metrics("ranking") == [
        "recall@10", "recall@20", "ndcg@10", "ndcg@20", "hit@10", "mrr@10", "precision@10", "map@10", "novelty@10",
        "diversity@10", "coverage@10", "gini@10", "auc"]
    assert registry.default_metrics("impressions") == ["ndcg@5", "ndcg@10", "mrr", "auc"]
    assert registry.requestable("impressions") == ["auc", "mrr", "ndcg"]
    assert "mae" in registry.requestable("ranking") and "user_mae" not in registry.requestable()
    assert "user_mae" in registry.metrics()           # produced by an extra: known, directed, never requested
    d = registry.get("ndcg")
    assert d.is_topk and not registry.get("auc").is_topk and not registry.get("mae").is_topk
    assert registry.get("no_such") is None


def test_a_broken_metric_plugin_is_named(monkeypatch):
    class EP:
        name, value = "broken", "pkg.module:METRIC"

        def load(self):
            raise ImportError("no module named pkg")

    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_LOADED", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [EP()] if group == registry.ENTRY_POINT_GROUP else [])
    with pytest.raises(ConfigError, match=r"metric plugin 'broken' \(pkg.module:METRIC\) failed to load: "
                                          r"ImportError: no module named pkg"):
        registry.metrics()


def test_plugin_metrics_load_from_entry_points_and_carry_their_origin(monkeypatch):
    count = registry.MetricDef("hits_count", "targets in the top K", compute=lambda top, hits, n_pos, k: hits.sum(1))
    other = registry.MetricDef("hits_twice", "x", compute=lambda top, hits, n_pos, k: 2 * hits.sum(1), origin="mine")

    class EP:
        name, value = "counts", "pkg:METRICS"

        def load(self):
            return [count, other]

    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_LOADED", False)
    monkeypatch.setattr(registry, "entry_points", lambda group: [EP()] if group == registry.ENTRY_POINT_GROUP else [])
    found = registry.metrics()
    assert found["hits_count"].origin == "pkg:METRICS" and found["hits_twice"].origin == "mine"
    assert "ndcg" in found and found["ndcg"].origin == "metarec"
    registry.metrics()                                   # loaded once: a second call registers nothing again


def test_directions_come_from_the_declarations():
    from metarec.bench.store import lower_is_better

    for name, low in [("rating/user_mae", True), ("rating/mae", True), ("gini@10", True), ("query/ndcg@3", False),
                      ("like/pooled_auc", False), ("amazon2018-fashion/recall@10", False)]:
        assert lower_is_better(name) is low, name
    from metarec.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"^unknown metric 'no_such_metric@10'; valid: accuracy, auc, ") as e:
        lower_is_better("no_such_metric@10")
    assert e.value.kind == "metric" and "user_mae" in e.value.choices


def test_best_cell_follows_the_direction_of_task_metrics():
    """The report bolds the lowest rating/user_mae (it bolded the worst when a list missed the name)."""
    from metarec.report.tables import comparison

    rows = [{"dataset": "d", "protocol": "general", "method": m, "family": "x", "metric": "rating/user_mae",
             "value": v + 0.01 * s, "seed": s, "stage": "test", "selected": True, "protocol_params": "{}"}
            for m, v in (("a", 0.7), ("b", 0.9)) for s in (0, 1)]
    table, _ = comparison(pd.DataFrame(rows), None, ["rating/user_mae"], "d", "general")
    assert table.cell("a", "rating/user_mae")["best"] and not table.cell("b", "rating/user_mae")["best"]


def test_no_other_module_lists_metric_names():
    """Outside the registry, no module holds a literal tuple/list of two or more metric names (the four places
    that used to disagree). Computations may branch on a single built-in name."""
    names = set(registry.metrics())
    offenders = []
    for path in Path("metarec").rglob("*.py"):
        if path.name == "registry.py" and path.parent.name == "eval":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                lits = [e.value.split("@")[0] for e in node.elts if isinstance(e, ast.Constant)
                        and isinstance(e.value, str)]
                if sum(x in names for x in lits) >= 3:
                    offenders.append(f"{path}:{node.lineno}")
    assert not offenders, offenders


@pytest.mark.parametrize("ties", ["expected", "first"])
def test_a_plugin_metric_gets_the_lists_the_expected_hits_the_positives_and_its_cut_off(monkeypatch, ties):
    """A plugin's compute(top, hits, n_pos, k) sees this cut-off's K (not the largest one asked), the expected hits
    of tied lists (so it is tie-aware like the built-ins), the user's number of targets and the lists themselves."""
    import torch

    seen = {}

    def my_recall(top, hits, n_pos, k):
        seen["top"] = top
        return hits[:, :k].sum(1) / n_pos

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.metrics()))
    registry.register_metric(registry.MetricDef("my_recall", "recall again", compute=my_recall, origin="tests"))
    split = random_split(n_users=20, n_items=30, seed=3)
    scores = torch.randint(0, 3, (20, 30), generator=torch.Generator().manual_seed(2)).float()   # many ties
    res = Evaluator(split, ["my_recall@5", "recall@5", "ndcg@10"], ties=ties).evaluate_scores(scores)
    assert res.means["my_recall@5"] == pytest.approx(res.means["recall@5"], abs=1e-12)
    ev = Evaluator(split, ["ndcg@10"], ties=ties)
    assert torch.equal(seen["top"], torch.from_numpy(ev.top_k(scores, k=10)[1]))
