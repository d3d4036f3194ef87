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
