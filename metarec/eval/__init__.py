"""One evaluator for every method: metric definitions (``metrics``) and the batched ``Evaluator``."""
from metarec.eval.evaluator import EvalResult, Evaluator
from metarec.eval.metrics import MetricSpec, parse_metric, parse_metrics, valid_metric_names

__all__ = ["EvalResult", "Evaluator", "MetricSpec", "parse_metric", "parse_metrics", "valid_metric_names"]
