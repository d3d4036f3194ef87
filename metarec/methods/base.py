"""The method contract: the plugin door. A method is built from its config dict, fitted on a Split, and scores.

    fit(split, *, seed, workdir)      train on split.train (model selection may use split.valid)
    score(users) -> Tensor            [len(users), n_items], higher is better (ranking protocols)
    optional, by protocol:
    score_pairs(users, items)         [n] scores for (user, item) pairs (impressions / CTR); default: gathers score()
    predict_rating(users, items)      [n] predicted ratings (MAE/RMSE)
    adapt(support)                    cold start: see the stage's support interactions before scoring
    set_stage(stage)                  which history score() reads: 'valid' = train, 'test' = train + valid (the
                                      evaluator sets it around every evaluation; None = 'test')
    num_parameters()                  trainable parameter count (reported in results)

Reusable intermediates (a teacher, item-text embeddings) are artifacts: ``self.artifacts.get_or_build(kind,
identity, build)`` (``metarec.bench.artifacts``); the runner sets ``self.artifacts`` to the grid's store before fit.

Tuning: a method declares ``search_space`` next to its ``defaults`` (see ``metarec.methods.space``). A method that
validates while it trains calls ``self.report(step, value)`` after every validation; the tuner installs a reporter
there (Optuna's pruner) and, when it answers "prune", the method stops training early, keeps its best weights and
finishes like any run (``pruned`` is then True and recorded in the run's result).

A method never reads dataset files, computes metrics or writes results: the evaluator and the runner do.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import pandas as pd
import torch

from metarec.errors import ConfigError

STAGES = ("valid", "test")


class Method:
    """Base class. Subclasses declare ``name`` and ``defaults`` (every accepted parameter with its default)."""

    name: ClassVar[str] = ""
    #: "baseline", "distill", "multitask" or "meta": which report figures the method appears in
    family: ClassVar[str] = "baseline"
    defaults: ClassVar[dict[str, Any]] = {}
    #: protocols the method supports; None = all ranking protocols
    protocols: ClassVar[tuple[str, ...] | None] = None
    #: parameter -> distribution (``metarec.methods.space``): what a tuned grid searches by default
    search_space: ClassVar[dict[str, Any]] = {}
    #: parameter -> ``metarec.methods.space.Domain`` (type, bounds, choices) where the common domains by name
    #: (``space.COMMON_DOMAINS``) and the default's type do not say enough; search spaces must lie inside
    domains: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(f"method {self.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(sorted(self.defaults)) or '(none)'}")
        from metarec.params import check_params

        # types and ranges (``domains``, else the common ones by name, else the default's type): before any work
        self.params = {**self.defaults, **check_params(params, self.defaults, self.domains, f"method {self.name!r}")}
        self.n_users = self.n_items = 0
        self.reporter: Callable[[int, float], bool] | None = None
        self.pruned = False
        #: the run store's artifacts (``metarec.bench.artifacts.Artifacts``), set by the runner before fit();
        #: None = the default store under ``metarec.utils.home()``
        self.artifacts = None

    @classmethod
    def declared_space(cls) -> dict:
        """The parsed ``search_space`` (a ConfigError names a parameter the method does not have)."""
        from metarec.methods.space import check_space, parse_space

        where = f"method {cls.name!r}: search_space"
        return check_space(parse_space(cls.search_space, where, cls.defaults), cls.defaults, cls.domains, where)

    def report(self, step: int, value: float) -> bool:
        """Called after each validation with the validation metric; True means: stop now (the trial is pruned)."""
        if self.reporter is not None and self.reporter(int(step), float(value)):
            self.pruned = True
        return self.pruned

    def fit(self, split, *, seed: int = 0, workdir: str | Path | None = None) -> "Method":
        raise NotImplementedError

    def score(self, users: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores for aligned (user, item) pairs. Default: one score() call per distinct user."""
        uniq, inv = torch.unique(users, return_inverse=True)
        full = self.score(uniq)
        return full[inv, items]

    def adapt(self, support: pd.DataFrame) -> None:  # cold start; default: nothing to adapt
        return None

    #: the stage being scored ('valid' | 'test'; None = 'test'): models that read a user's history at scoring
    #: time (sequence models) must read train at 'valid' and train + valid at 'test'
    stage: str | None = None

    def set_stage(self, stage: str | None) -> None:
        if stage not in STAGES + (None,):
            raise ValueError(f"stage must be one of {', '.join(STAGES)} or None, got {stage!r}")
        self.stage = stage

    def num_parameters(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"


def as_user_tensor(users) -> torch.Tensor:
    if isinstance(users, torch.Tensor):
        return users.long()
    return torch.as_tensor(np.asarray(users), dtype=torch.long)
