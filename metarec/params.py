"""Parameter domains: what value a method's or protocol's parameter may take (type, bounds, choices), declared next
to the defaults and checked before anything runs. Search spaces (``metarec.methods.space``) must lie inside them.

A parameter's domain is its owner's declaration (``Method.domains``, ``@protocol(..., domains=...)``), else the
common one for its name (``COMMON_DOMAINS``: ``dim`` is a positive integer wherever it appears), else the type of
its default (an int default takes integers only — ``1.5`` or ``true`` as an epoch count is an error).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from metarec.errors import ConfigError

if TYPE_CHECKING:
    from metarec.methods.space import Distribution


@dataclass(frozen=True)
class Domain:
    """The legal values of one parameter: ``kind`` int | float | bool | str | any, closed bounds ``low``/``high``
    (None = unbounded), ``low_open`` for a strict lower bound, ``choices`` for a finite set; ``nullable`` allows
    None. Declared next to a method's or protocol's defaults; a search space must lie inside it."""

    kind: str
    low: Any = None
    high: Any = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    nullable: bool = False

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(map(repr, self.choices))
        what = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                "any": "a value"}[self.kind]
        if self.low is not None and self.high is not None:
            what += f" in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        elif self.low is not None:
            what += f" {'>' if self.low_open else '>='} {self.low}"
        elif self.high is not None:
            what += f" {'<' if self.high_open else '<='} {self.high}"
        return what + (" (or null)" if self.nullable else "")

    def check(self, value: Any, where: str) -> Any:
        """``value`` as the parameter gets it (an int given for a float becomes a float), or a ConfigError."""
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"{where} must be {self.describe()}, got null")
        ok = True
        if self.kind == "int":
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            value = int(value) if ok else value
        elif self.kind == "float":
            ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
                and math.isfinite(float(value))
            value = float(value) if ok else value
        elif self.kind == "bool":
            ok = isinstance(value, bool)
        elif self.kind == "str":
            ok = isinstance(value, str)
        if ok and self.choices:
            ok = value in self.choices
        if ok and self.low is not None:
            ok = value > self.low if self.low_open else value >= self.low
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        if not ok:
            hint = ""
            if isinstance(value, str) and self.kind in ("int", "float"):
                try:
                    float(value)
                    hint = f" (YAML reads {value!r} as text: write {float(value)!r})"
                except ValueError:
                    pass
            raise ConfigError(f"{where} must be {self.describe()}, got {value!r}{hint}")
        return value

    def contains(self, dist: "Distribution") -> bool:
        """Whether every value ``dist`` can draw is legal here."""
        try:
            if dist.kind == "categorical":
                for c in dist.choices:
                    self.check(c, "")
            else:
                self.check(dist.low if dist.kind == "float" else int(dist.low), "")
                self.check(dist.high if dist.kind == "float" else int(dist.high), "")
        except ConfigError:
            return False
        return True


def positive_int(nullable: bool = False) -> Domain:
    return Domain("int", 1, nullable=nullable)


def non_negative_int(nullable: bool = False) -> Domain:
    return Domain("int", 0, nullable=nullable)


def positive(nullable: bool = False) -> Domain:
    return Domain("float", 0.0, low_open=True, nullable=nullable)


def non_negative(nullable: bool = False) -> Domain:
    return Domain("float", 0.0, nullable=nullable)


def probability() -> Domain:
    """A dropout or masking rate: [0, 1) (a rate of 1 drops everything)."""
    return Domain("float", 0.0, 1.0, high_open=True)


#: Parameters that mean the same wherever they appear (our methods and RecBole's): checked for every method that has
#: them unless the method declares its own ``domains`` entry. Types otherwise follow the default's type.
_POSITIVE_INTS = ("dim", "batch_size", "epochs", "eval_every", "hidden", "hidden_size",
                  "embedding_size", "n_heads", "n_layers", "num_layers", "n_neg", "num_negatives", "num_experts",
                  "num_levels", "inner_steps", "inner_size", "max_len", "MAX_ITEM_LIST_LENGTH", "k", "kd_k",
                  "candidates", "length", "tasks_per_batch", "teacher_dim", "teacher_max_epochs", "teacher_n_heads",
                  "teacher_n_layers", "teacher_eval_every", "text_batch", "text_dim", "text_heads", "text_layers",
                  "text_max_len", "train_batch_size", "eval_batch_size", "eval_step", "latent_dimension",
                  "mf_embedding_size", "mlp_embedding_size", "bag_repeats", "task_experts", "total_anneal_steps")
#: max_epochs 0 builds the model without training it (the property tests of untrained models use it)
_NON_NEGATIVE_INTS = ("max_epochs", "patience", "teacher_patience", "stopping_step", "teacher_seed")
_POSITIVE_FLOATS = ("lr", "learning_rate", "inner_lr", "outer_lr", "teacher_lr", "temperature", "layer_norm_eps",
                    "initializer_range")
_NON_NEGATIVE_FLOATS = ("reg", "reg_weight", "weight_decay", "dense_weight_decay", "shrink", "kd_weight", "rd_lambda",
                        "emb_weight", "anneal_cap", "aux_weight")
_RATES = ("dropout", "dropout_prob", "attn_dropout_prob", "hidden_dropout_prob", "input_dropout", "teacher_dropout",
          "teacher_input_dropout", "mask_ratio")
_UNIT = ("lam", "ft_ratio")
COMMON_DOMAINS: dict[str, Domain] = {
    **{n: positive_int() for n in _POSITIVE_INTS}, **{n: non_negative_int() for n in _NON_NEGATIVE_INTS},
    **{n: positive() for n in _POSITIVE_FLOATS}, **{n: non_negative() for n in _NON_NEGATIVE_FLOATS},
    **{n: probability() for n in _RATES}, **{n: Domain("float", 0.0, 1.0) for n in _UNIT},
    "valid_metric": Domain("str", nullable=True),   # null: train without validation (no early stopping)
}


def domain_for(name: str, default: Any, declared: dict[str, Domain] | None = None) -> Domain | None:
    """The domain of parameter ``name``: the owner's declaration, else the common one for the name, else the type
    of its default (int, float, bool, str; None or a container: unchecked). A None default makes any domain
    nullable (None keeps its meaning of "automatic")."""
    d = (declared or {}).get(name) or COMMON_DOMAINS.get(name)
    if d is None:
        if isinstance(default, bool):
            d = Domain("bool")
        elif isinstance(default, int):
            d = Domain("int")
        elif isinstance(default, float):
            d = Domain("float")
        elif isinstance(default, str):
            d = Domain("str")
        else:
            return None
    if default is None and not d.nullable:
        d = Domain(d.kind, d.low, d.high, d.low_open, d.high_open, d.choices, True)
    return d


def check_params(params: dict[str, Any], defaults: dict[str, Any], declared: dict[str, Domain] | None,
                 where: str) -> dict[str, Any]:
    """Every parameter checked against its domain (``domain_for``); returns the values as the owner gets them."""
    out = dict(params)
    for name, value in params.items():
        d = domain_for(name, defaults.get(name), declared)
        if d is not None:
            out[name] = d.check(value, f"{where}: parameter {name!r}")
    return out


#: a random seed (numpy's generators take no negative seed; Lightning's seed_everything none above 2**32 - 1)
SEED = Domain("int", 0, 2 ** 32 - 1)


def is_seed(value: Any) -> bool:
    try:
        SEED.check(value, "")
    except ConfigError:
        return False
    return True
