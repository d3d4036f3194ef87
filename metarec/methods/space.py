"""Hyper-parameter search spaces, declared next to the defaults they tune (Optuna's distributions, without
importing Optuna until a study runs).

A method declares ``search_space`` as a mapping parameter -> distribution; a grid's ``search:`` block and the RecBole
YAMLs use the same words, so one parser serves all three:

    lr:         {float: [1.0e-4, 1.0e-1], log: true}     # log-uniform float
    dropout:    {float: [0.0, 0.5]}                      # uniform float (optional step: 0.1)
    dim:        {int: [16, 256], log: true}              # integer, log scale (optional step)
    loss:       [bpr, ce]                                # categorical (a plain list)
    loss:       {categorical: [bpr, ce]}                 # the same, spelled out

In Python: ``loguniform(1e-4, 1e-1)``, ``uniform(0.0, 0.5)``, ``integer(16, 256, log=True)``, ``choice(["bpr",
"ce"])`` return those mappings. Every parameter of a space must be a parameter of the method (checked by
``parse_space``); values drawn are passed to the method's constructor like any grid parameter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from metarec.errors import ConfigError
from metarec.params import Domain, domain_for


def loguniform(low: float, high: float) -> dict:
    return {"float": [low, high], "log": True}


def uniform(low: float, high: float, step: float | None = None) -> dict:
    return {"float": [low, high], **({"step": step} if step is not None else {})}


def integer(low: int, high: int, *, log: bool = False, step: int = 1) -> dict:
    return {"int": [low, high], **({"log": True} if log else {}), **({"step": step} if step != 1 else {})}


def choice(values: list) -> dict:
    return {"categorical": list(values)}


@dataclass(frozen=True)
class Distribution:
    """One parameter's distribution. ``kind`` is float | int | categorical."""

    kind: str
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: tuple = ()

    def to_optuna(self):
        import optuna.distributions as d

        if self.kind == "float":
            return d.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return d.IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return d.CategoricalDistribution(self.choices)

    def describe(self) -> str:
        if self.kind == "categorical":
            return "{" + ", ".join(map(str, self.choices)) + "}"
        scale = " log" if self.log else ""
        step = f" step {self.step}" if self.step else ""
        return f"{self.kind} [{self.low}, {self.high}]{scale}{step}"


def parse_distribution(raw: Any, where: str) -> Distribution:
    if isinstance(raw, (list, tuple)):
        raw = {"categorical": list(raw)}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a distribution is a list of choices or a mapping like "
                          f"{{float: [low, high], log: true}}, got {raw!r}")
    kinds = [k for k in ("float", "int", "categorical") if k in raw]
    if len(kinds) != 1:
        raise ConfigError(f"{where}: name exactly one of float, int, categorical; got keys {sorted(raw)}")
    kind = kinds[0]
    extra = sorted(set(raw) - {kind, "log", "step"})
    if extra or (kind == "categorical" and set(raw) != {kind}):
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(set(raw) - {kind}))} for a {kind} distribution"
                          f" (valid: {'none' if kind == 'categorical' else 'log, step'})")
    if kind == "categorical":
        choices = raw[kind]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: categorical needs a non-empty list of values, got {choices!r}")
        if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
            raise ConfigError(f"{where}: categorical values must be numbers, strings, booleans or null "
                              f"(Optuna stores them), got {choices!r}")
        return Distribution("categorical", choices=tuple(choices))
    bounds = raw[kind]
    number = int if kind == "int" else (int, float)
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, number) and not isinstance(b, bool)
                                                                  for b in bounds)):
        raise ConfigError(f"{where}: {kind} needs [low, high] {'integers' if kind == 'int' else 'numbers'}, "
                          f"got {bounds!r}")
    low, high = bounds
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got [{low}, {high}]")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log-scale range must be positive, got [{low}, {high}]")
    step = raw.get("step")
    if step is not None:
        if not isinstance(step, number) or isinstance(step, bool) or step <= 0:
            raise ConfigError(f"{where}: step must be a positive {kind}, got {step!r}")
        if log:
            raise ConfigError(f"{where}: step and log cannot be combined (Optuna's rule)")
    if kind == "float":
        return Distribution("float", float(low), float(high), log, None if step is None else float(step))
    return Distribution("int", int(low), int(high), log, step)


def parse_space(raw: Any, where: str, valid_params: dict | None = None) -> dict[str, Distribution]:
    """``{param: distribution}`` -> parsed; ``valid_params`` (the method's defaults) names the legal parameters."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a search space is a mapping of parameter -> distribution, got {raw!r}")
    out = {}
    for name, dist in raw.items():
        if valid_params is not None and name not in valid_params:
            raise ConfigError(f"{where}.{name}: not a parameter of this method; valid: "
                              f"{', '.join(sorted(valid_params)) or '(none)'}")
        out[str(name)] = parse_distribution(dist, f"{where}.{name}")
    return out


def space_size(space: dict[str, Distribution]) -> float:
    """Number of distinct configurations (inf when any parameter is continuous)."""
    n = 1.0
    for d in space.values():
        if d.kind == "categorical":
            n *= len(d.choices)
        elif d.kind == "int":
            n *= (d.high - d.low) // (d.step or 1) + 1
        elif d.step:
            n *= math.floor((d.high - d.low) / d.step + 1e-9) + 1
        else:
            return math.inf
    return n


def check_space(space: dict[str, Distribution], defaults: dict[str, Any], declared: dict[str, Domain] | None,
                where: str) -> dict[str, Distribution]:
    """A search space must only draw legal values: each distribution inside its parameter's domain."""
    for name, dist in space.items():
        d = domain_for(name, defaults.get(name), declared)
        if d is not None and not d.contains(dist):
            raise ConfigError(f"{where}.{name}: {dist.describe()} reaches outside the parameter's domain "
                              f"({d.describe()})")
    return space
