"""RecBole 1.2.1 classical baselines, registered as ``recbole:<Model>`` (see ``adapter``).

Each model's defaults and search space live in ``configs/<Model>.yaml`` (package data).
"""
from metarec.methods.recbole.adapter import MODELS, RecBoleMethod, make_method, search_space
from metarec.methods.registry import register

METHODS: dict[str, type[RecBoleMethod]] = {}
for _model, _kind in MODELS.items():
    METHODS[_model] = register(f"recbole:{_model}")(make_method(_model, _kind))

__all__ = ["METHODS", "MODELS", "RecBoleMethod", "search_space"]
