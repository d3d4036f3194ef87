"""The metric registry: every metric the suite knows, declared once.

A ``MetricDef`` says what a metric is (``doc``), which way is better, whether it has a value per evaluation unit
(user or impression: pairable, so significance tests can use it) or only an aggregate, what it needs from the split
and the method (``needs``), and under which protocol kinds it may be requested with which cut-off rule
(``protocols``: ``{"ranking": "k" | "none", "impressions": ...}``; empty: produced only by an evaluator extra, e.g.
the multi-task heads' ``rating/user_mae``). Names are ``base@K`` or ``base``; an extra may prefix a task or domain
(``rating/mae``, ``amazon2018-fashion/ndcg@10``) and the last segment decides the direction.

The evaluator, grid validation, the run store (model selection, tuning direction) and the report (which cell is
best) all ask this registry; nothing else lists metric names. The built-in metrics are computed by the evaluator's
fused paths (``metarec.eval.metrics``). A plugin adds a top-K metric through the entry-point group
``metarec.metrics``: the entry point loads a ``MetricDef`` (or a list of them) whose ``compute(top_items, hits,
n_pos, k)`` returns a float64 vector per user, where ``hits`` [B, K] are the probabilities that each listed
position holds a target (0/1 without ties; their expectation over tie orders by default, so a metric linear in the
hits is tie-aware for free).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Callable

from metarec.errors import ConfigError

ENTRY_POINT_GROUP = "metarec.metrics"
#: what a metric may need: "scores" (a full score row per user), "ratings" (the stage frame's ratings and the
#: method's predict_rating), "impressions" (candidate lists with labels), "item_categories" (item_features genres or
#: category), "train_popularity" (train interaction counts)
NEEDS = ("scores", "ratings", "impressions", "item_categories", "train_popularity")
PROTOCOL_KINDS = ("ranking", "impressions")
CUTOFF_RULES = ("k", "none")


@dataclass(frozen=True)
class MetricDef:
    base: str
    doc: str
    higher_is_better: bool = True
    per_unit: bool = True
    needs: tuple[str, ...] = ("scores",)
    protocols: dict = field(default_factory=lambda: {"ranking": "k"})
    min_k: int = 1
    #: top-K lists -> per-user values; None for the evaluator's built-ins (fused, see metarec.eval.metrics)
    compute: Callable | None = None
    #: in the default metric set of these protocol kinds, at these cut-offs (() = without a cut-off)
    default: dict = field(default_factory=dict)
    origin: str = "metarec"

    @property
    def is_topk(self) -> bool:
        """Computed from the top-K lists of a full score row (the evaluator's ranked path)."""
        return self.protocols.get("ranking") == "k" and "scores" in self.needs


_BUILTIN = [
    # top-K accuracy from the ranked lists (RecBole's definitions, metarec.eval.metrics)
    MetricDef("recall", "targets in the top K / the user's targets", default={"ranking": (10, 20)}),
    MetricDef("ndcg", "DCG@K / ideal DCG@K, binary gains (impressions: MIND's nDCG of the candidate list)",
              protocols={"ranking": "k", "impressions": "k"}, default={"ranking": (10, 20), "impressions": (5, 10)}),
    MetricDef("hit", "1 if a target is in the top K", default={"ranking": (10,)}),
    MetricDef("mrr", "1 / rank of the first target in the top K (impressions: MIND's MRR, no cut-off)",
              protocols={"ranking": "k", "impressions": "none"}, default={"ranking": (10,), "impressions": ()}),
    MetricDef("precision", "targets in the top K / K", default={"ranking": (10,)}),
    MetricDef("map", "average precision at K, normalised by min(targets, K) as RecBole", default={"ranking": (10,)}),
    # beyond accuracy
    MetricDef("novelty", "mean self-information -log2(train popularity share) of the top-K items",
              needs=("scores", "train_popularity"), default={"ranking": (10,)}),
    MetricDef("diversity", "intra-list diversity: mean pairwise Jaccard distance of the top-K items' categories; "
              "without categories, mean pairwise cosine distance of reference item vectors (rank-64 SVD of the "
              "training interactions)", needs=("scores", "item_categories"), min_k=2, default={"ranking": (10,)}),
    MetricDef("coverage", "distinct items recommended in anyone's top K / catalogue size", per_unit=False,
              default={"ranking": (10,)}),
    MetricDef("gini", "Gini index of how often each item is recommended in the top K (0: all equally)",
              higher_is_better=False, per_unit=False, default={"ranking": (10,)}),
    # over the whole ranking
    MetricDef("auc", "per-user AUC of targets against every unmasked item, ties 0.5 (impressions: per impression)",
              protocols={"ranking": "none", "impressions": "none"}, default={"ranking": (), "impressions": ()}),
    MetricDef("gauc", "per-user AUC weighted by the user's targets (RecBole's GAUC)", per_unit=False,
              protocols={"ranking": "none"}),
    # ratings
    MetricDef("mae", "mean absolute rating error over the stage's rated pairs", higher_is_better=False,
              per_unit=False, needs=("ratings",), protocols={"ranking": "none"}),
    MetricDef("rmse", "root mean squared rating error over the stage's rated pairs", higher_is_better=False,
              per_unit=False, needs=("ratings",), protocols={"ranking": "none"}),
    # produced by evaluator extras only (metarec.eval.tasks, metarec.eval.query_ranking), prefixed by their task
    MetricDef("user_mae", "per-user mean absolute rating error (a task head)", higher_is_better=False,
              needs=("ratings",), protocols={}),
    MetricDef("pooled_auc", "one AUC over all the stage's pairs (a task head)", per_unit=False, protocols={}),
    MetricDef("accuracy", "top-1 accuracy (a classification head, pooled)", per_unit=False, protocols={}),
    MetricDef("impression_accuracy", "top-1 accuracy per impression (a classification head)", protocols={}),
    MetricDef("user_accuracy", "top-1 accuracy per user (a classification head under a ranking protocol)",
              protocols={}),
    MetricDef("majority_accuracy", "accuracy of always predicting train's most frequent class", per_unit=False,
              protocols={}),
]

_REGISTRY: dict[str, MetricDef] = {}
_LOADED = False


def register_metric(defn: MetricDef, *, replace: bool = False) -> MetricDef:
    """Add a metric. A name already taken is an error (a plugin never silently changes a built-in metric)."""
    if not isinstance(defn, MetricDef):
        raise ConfigError(f"register_metric expects a MetricDef, got {type(defn).__name__}")
    if not defn.base.isidentifier() or defn.base != defn.base.lower():
        raise ConfigError(f"metric base {defn.base!r}: lower-case letters, digits and '_' only")
    bad = sorted(set(defn.needs) - set(NEEDS))
    if bad:
        raise ConfigError(f"metric {defn.base!r}: unknown need(s) {', '.join(bad)}; valid: {', '.join(NEEDS)}")
    for kind, rule in defn.protocols.items():
        if kind not in PROTOCOL_KINDS or rule not in CUTOFF_RULES:
            raise ConfigError(f"metric {defn.base!r}: protocols must map {'/'.join(PROTOCOL_KINDS)} to "
                              f"{' or '.join(CUTOFF_RULES)}, got {kind!r}: {rule!r}")
    if defn.origin != "metarec" and (defn.compute is None or not defn.is_topk or not defn.per_unit):
        raise ConfigError(f"plugin metric {defn.base!r}: a plugin can add per-user top-K metrics "
                          "(protocols {'ranking': 'k'}, needs ('scores',), a compute function)")
    if defn.base in _REGISTRY and not replace:
        raise ConfigError(f"metric {defn.base!r} is already registered (by {_REGISTRY[defn.base].origin})")
    _REGISTRY[defn.base] = defn
    return defn


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for d in _BUILTIN:
        register_metric(d)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as e:  # a broken plugin is named, never swallowed
            raise ConfigError(f"metric plugin {ep.name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") \
                from None
        for d in loaded if isinstance(loaded, (list, tuple)) else [loaded]:
            if isinstance(d, MetricDef) and d.origin == "metarec":
                d = MetricDef(**{**d.__dict__, "origin": ep.value})
            register_metric(d)


def metrics() -> dict[str, MetricDef]:
    """Every registered metric by base name."""
    _load()
    return dict(_REGISTRY)


def get(base: str) -> MetricDef | None:
    _load()
    return _REGISTRY.get(base)


def base_of(name: str) -> str:
    """'rating/mae' -> 'mae', 'ndcg@10' -> 'ndcg'."""
    return str(name).split("/")[-1].split("@")[0].strip().lower()


def higher_is_better(name: str) -> bool:
    """Direction of a metric name (task or domain prefixes allowed). Unknown metrics are an error: a table must
    never guess which value is best."""
    from metarec.errors import UnknownNameError

    d = get(base_of(name))
    if d is None:
        raise UnknownNameError("metric", name, sorted(metrics()))
    return d.higher_is_better


def lower_is_better(name: str) -> bool:
    return not higher_is_better(name)


def requestable(kind: str | None = None) -> list[str]:
    """Bases that can be asked for (under a protocol kind, or any)."""
    return sorted(b for b, d in metrics().items() if d.protocols and (kind is None or kind in d.protocols))


def default_metrics(kind: str) -> list[str]:
    """The default metric set of a protocol kind, built from the declarations."""
    out = []
    for b, d in metrics().items():
        if kind in d.default:
            ks = d.default[kind]
            out += [f"{b}@{k}" for k in ks] if ks else [b]
    return out
