"""(d) Metric names: validation and errors."""
from __future__ import annotations

import pytest

from metarec.errors import ConfigError, UnknownNameError
from metarec.eval import parse_metric, parse_metrics


@pytest.mark.parametrize("name,base,k", [("ndcg@10", "ndcg", 10), ("Recall@20", "recall", 20), ("auc", "auc", None),
                                         ("gauc", "gauc", None), ("mae", "mae", None), ("coverage@5", "coverage", 5),
                                         ("mrr", "mrr", None), (" map@3 ", "map", 3), ("diversity@2", "diversity", 2)])
def test_valid_names(name, base, k):
    s = parse_metric(name)
    assert (s.base, s.k) == (base, k) and s.name == (f"{base}@{k}" if k else base)


@pytest.mark.parametrize("name", ["ndgc@10", "foo", "recal@5", "@10", "", "ndcg_at_10"])
def test_unknown_names(name):
    with pytest.raises(UnknownNameError) as e:
        parse_metric(name)
    assert e.value.kind == "metric" and "ndcg@K" in e.value.choices
    if name == "ndgc@10":
        assert "did you mean" in str(e.value) or "valid:" in str(e.value)


@pytest.mark.parametrize("name", ["ndcg@0", "ndcg@-1", "ndcg@x", "ndcg@", "ndcg@1.5", "ndcg", "recall",
                                  "auc@10", "mae@5", "diversity@1"])
def test_bad_cutoffs(name):
    with pytest.raises(ConfigError) as e:
        parse_metric(name)
    assert not isinstance(e.value, UnknownNameError)


def test_parse_metrics_dedup_and_errors():
    assert [s.name for s in parse_metrics(["ndcg@10", "NDCG@10", "hit@5"])] == ["ndcg@10", "hit@5"]
    assert [s.name for s in parse_metrics("auc")] == ["auc"]
    with pytest.raises(ConfigError):
        parse_metrics([])
    with pytest.raises(ConfigError):
        parse_metric(10)


@pytest.mark.parametrize("name, kind, message", [
    (10, None, r"^metric names are strings like 'ndcg@10', got 10$"),
    ("recall@10", "impressions", r"^metric 'recall@10' is not defined for the impressions protocols; valid: auc, "
                                 r"mrr, ndcg@K$"),
    ("ndcg", "ranking", r"^metric 'ndcg' needs a cut-off under the ranking protocols, e.g. 'ndcg@10'$"),
    ("recall", None, r"^metric 'recall' needs a cut-off, e.g. 'recall@10'$"),
    ("auc@10", None, r"^metric 'auc' takes no cut-off \(got 'auc@10'\); write 'auc'$"),
    ("mrr@5", "impressions", r"^metric 'mrr' takes no cut-off \(got 'mrr@5'\); write 'mrr'$"),
    ("ndcg@0", None, r"^metric 'ndcg@0': the cut-off K must be a positive integer, got '0'$"),
    ("ndcg@x1", None, r"the cut-off K must be a positive integer, got 'x1'"),
    ("diversity@1", None, r"^metric 'diversity@1': diversity needs K >= 2$"),
])
def test_each_name_rule_says_what_is_wrong(name, kind, message):
    with pytest.raises(ConfigError, match=message):
        parse_metric(name, kind)


def test_names_under_a_protocol_kind():
    assert parse_metric("mrr", "impressions").name == "mrr" and parse_metric("mrr@5", "ranking").name == "mrr@5"
    assert parse_metric("ndcg@5", "impressions").k == 5 and parse_metric("diversity@2").k == 2
    assert parse_metric("mrr").name == "mrr"        # any kind: mrr without a cut-off is defined (impressions)
    with pytest.raises(ConfigError, match=r"^no metrics requested$"):
        parse_metrics([])
    with pytest.raises(UnknownNameError, match="user_mae"):   # known to the registry, produced by extras only
        parse_metric("user_mae")


@pytest.fixture
def f1_at(monkeypatch):
    """A plugin metric whose base holds a digit (the registry allows lower-case letters, digits and '_')."""
    from metarec.eval import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.metrics()))
    registry.register_metric(registry.MetricDef("f1", "F1 of the top K", compute=lambda top, hits, n_pos, k:
                                                hits[:, :k].sum(1), origin="tests:plugin"))


def test_a_base_with_digits_and_what_follows_the_first_at_sign(f1_at):
    s = parse_metric("F1@10")
    assert (s.name, s.base, s.k) == ("f1@10", "f1", 10)
    with pytest.raises(ConfigError, match=r"^metric 'f1' needs a cut-off, e.g. 'f1@10'$"):
        parse_metric("f1")
    with pytest.raises(ConfigError, match=r"^metric 'f1@1@0': the cut-off K must be a positive integer, got '1@0'$"):
        parse_metric("f1@1@0")                        # the cut-off is everything after the first '@'
    with pytest.raises(ConfigError, match=r"^metric 'ndcg@1@0': the cut-off K must be a positive integer, got '1@0'$"):
        parse_metric("ndcg@1@0")


def test_an_unknown_name_under_a_protocol_kind_lists_that_kinds_names():
    with pytest.raises(UnknownNameError) as e:
        parse_metric("ndgc@10", "impressions")
    assert e.value.choices == ["auc", "mrr", "ndcg@K"]
    with pytest.raises(UnknownNameError) as e:
        parse_metric("ndgc@10")
    assert "recall@K" in e.value.choices and "auc" in e.value.choices
