"""Extra evaluations that apply only to some methods or protocols (multi-task heads, MeLU's query ranking).

Each is a function ``(method, split, stage, evaluator) -> EvalResult | None`` registered with ``@register_extra``;
it returns None where it does not apply. ``run_one`` calls every registered extra right after the main evaluation
of a stage (so a cold-start method is already adapted to that stage's support set) and merges its means and
per-user columns into the stage's results. Extras compute metrics from the method's predictions exactly like the
evaluator does: they are part of the one evaluator, kept in their own modules.
"""
from __future__ import annotations

import importlib
from typing import Callable

EXTRA_MODULES = ("metarec.eval.tasks", "metarec.eval.query_ranking")
_EXTRAS: list[Callable] = []
_LOADED = False


def register_extra(fn: Callable) -> Callable:
    if fn not in _EXTRAS:
        _EXTRAS.append(fn)
    return fn


def extras() -> list[Callable]:
    global _LOADED
    if not _LOADED:
        for module in EXTRA_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as e:
                if e.name != module:
                    raise
        _LOADED = True
    return list(_EXTRAS)


def merge(result, extra) -> None:
    """Fold an extra EvalResult into the stage's result (means, per-unit columns, notes). A column both have
    keeps the stage's values; the extra's comes in with the suffix ``_extra``."""
    result.means.update(extra.means)
    if len(extra.per_user.columns):
        result.per_user = result.per_user.join(extra.per_user, how="outer", rsuffix="_extra")
    result.notes = list(result.notes) + list(extra.notes)
