"""Protocol registry and the shared plumbing: parameter validation, Split assembly, leakage checks."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from metarec.data.schema import ITEM, TIME, USER, Dataset
from metarec.errors import ConfigError, UnknownNameError
from metarec.protocols.split import Split


@dataclass(frozen=True)
class Protocol:
    name: str
    make: Callable[..., Split]
    defaults: dict[str, Any]
    doc: str
    #: which metrics its splits are scored with (metarec.eval.registry protocol kinds): "ranking" (a full score row
    #: per user, top-K lists) or "impressions" (each impression's candidates)
    metric_kind: str = "ranking"
    #: parameter -> ``metarec.methods.space.Domain`` beyond what the default's type says (bounds, choices)
    domains: dict[str, Any] = field(default_factory=dict)
    #: bumped when the same dataset, parameters and seed would give a different split (a changed algorithm):
    #: stored splits and tuning studies are named by it, so an old split is never mixed with the new one
    version: int = 1

    def resolve(self, params: dict[str, Any] | None) -> dict[str, Any]:
        from metarec.params import check_params

        params = dict(params or {})
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(f"protocol {self.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                              f"valid: {', '.join(sorted(self.defaults)) or '(none)'}")
        resolved = {**self.defaults, **check_params(params, self.defaults, self.domains, f"protocol {self.name!r}")}
        for key in ("ratios", "user_ratios"):   # train/valid/test shares: checked here, before any split is made
            if key in resolved:
                check_ratios(self.name, resolved[key], key)
        return resolved

    def __call__(self, ds: Dataset, *, seed: int = 0, **params) -> Split:
        return self.make(ds, seed=seed, **self.resolve(params))


PROTOCOLS: dict[str, Protocol] = {}


def protocol(name: str, *, metric_kind: str = "ranking", domains: dict[str, Any] | None = None,
             version: int = 1, **defaults):
    def deco(fn):
        summary = (fn.__doc__ or "").strip().splitlines()[:1]   # a function without a docstring has none
        PROTOCOLS[name] = Protocol(name, fn, defaults, summary[0] if summary else "", metric_kind,
                                   dict(domains or {}), version)
        return fn
    return deco


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UnknownNameError("protocol", name, PROTOCOLS)
    return PROTOCOLS[name]


def params_key(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:10]


def check_ratios(name: str, ratios, key: str = "ratios") -> np.ndarray:
    try:
        r = np.asarray(ratios, dtype=float)
    except (TypeError, ValueError):
        raise ConfigError(f"protocol {name!r}: {key} must be three numbers, got {ratios!r}") from None
    if r.shape != (3,) or (r < 0).any() or r[0] <= 0 or r.sum() <= 0:
        raise ConfigError(f"protocol {name!r}: {key} must be three non-negative numbers with train > 0, "
                          f"got {ratios!r}")
    if abs(r.sum() - 1.0) > 1e-6:  # never renormalised: [0.5, 0.3, 0.1] would silently become 0.56/0.33/0.11
        raise ConfigError(f"protocol {name!r}: {key} must sum to 1 (train, valid, test shares), got {ratios!r} "
                          f"(sum {r.sum():g})")
    return r


def dedupe_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """Keep each (user, item) pair once — its latest event (by timestamp where there is one, else its last row):
    a pair split across train and test would be leakage, not signal. Row order is otherwise preserved."""
    order = df[TIME].to_numpy() if TIME in df else np.arange(len(df))
    keep = (pd.DataFrame({USER: df[USER].to_numpy(), ITEM: df[ITEM].to_numpy(), "_o": order,
                          "_r": np.arange(len(df))})
            .sort_values(["_o", "_r"], kind="stable")
            .drop_duplicates([USER, ITEM], keep="last")["_r"].to_numpy())
    return df.iloc[np.sort(keep)].reset_index(drop=True)


def chronological(df: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by user, in time order within each user (file order breaks ties and stands in for time
    where a dataset has only order). Adds ``_pos``: position within the user's history."""
    order = df[TIME].to_numpy() if TIME in df else np.zeros(len(df), dtype=np.int64)
    idx = np.lexsort((np.arange(len(df)), order, df[USER].to_numpy()))
    out = df.iloc[idx].reset_index(drop=True)
    out["_pos"] = out.groupby(USER, sort=False).cumcount().to_numpy()
    return out


def random_rank_within_user(users: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly random rank of each row within its user, and each row's user size. Vectorised."""
    keys = rng.random(len(users))
    idx = np.lexsort((keys, users))
    rank = np.empty(len(users), dtype=np.int64)
    sorted_users = users[idx]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_users)) + 1]
    sizes = np.diff(np.r_[starts, len(users)])
    rank[idx] = np.arange(len(users)) - np.repeat(starts, sizes)
    size = np.empty(len(users), dtype=np.int64)
    size[idx] = np.repeat(sizes, sizes)
    return rank, size


def split_counts(n: np.ndarray, ratios: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-user (n_valid, n_test) for ratio splits, as RecBole's ratio split counts them: floor(ratio * n) for
    valid and test, raised to 1 where the ratio is positive but rounds to zero and train would keep >= 1 item."""
    n_valid = np.floor(ratios[1] * n).astype(np.int64)
    n_test = np.floor(ratios[2] * n).astype(np.int64)
    for arr, r in ((n_test, ratios[2]), (n_valid, ratios[1])):
        bump = (arr == 0) & (r * n > 0) & (n - n_valid - n_test > 1)
        arr[bump] += 1
    return n_valid, n_test


def make_split(ds: Dataset, protocol_name: str, params: dict, seed: int, frames: dict[str, pd.DataFrame],
               checks: list[Callable[[Split], str]], **meta) -> Split:
    """Assemble a Split, drop helper columns, run the leakage checks and record what they verified."""
    clean = {}
    for name, df in frames.items():
        df = df.drop(columns=[c for c in df.columns if c.startswith("_")]).reset_index(drop=True)
        clean[name] = df
    split = Split(dataset=ds.name, protocol=protocol_name, params=params, seed=seed, n_users=ds.n_users,
                  n_items=ds.n_items, frames=frames, item_features=ds.item_features,
                  user_features=ds.user_features, meta={**ds.meta, **meta})
    verified = [check(split) for check in checks]
    split.frames = clean
    split.meta["checks"] = verified
    if not len(clean["train"]):
        raise ConfigError(f"protocol {protocol_name!r} on {ds.name}: empty train set (parameters {params})")
    return split
