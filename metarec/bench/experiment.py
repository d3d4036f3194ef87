"""One run, end to end: dataset -> persisted split -> method.fit -> evaluator -> result dict.

The harness (metarec.bench) calls ``run_one`` for every cell of a grid; the CLI's ``run`` command calls it once.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from metarec.errors import DataError
from metarec.protocols import Split, get_protocol, params_key
from metarec.utils import home



def split_dir(dataset: str, protocol: str, params: dict, seed: int, preprocess: dict | None = None,
              root: Path | None = None) -> Path:
    key = params_key({"protocol": params, "preprocess": preprocess or {}})
    version = get_protocol(protocol).version   # a folder per algorithm version: an old split is never reused
    name = protocol if version == 1 else f"{protocol}.v{version}"
    return (root or home()) / "splits" / dataset / f"{name}-{key}-seed{seed}"


def get_split(dataset: str, protocol: str, params: dict | None = None, seed: int = 0,
              preprocess: dict | None = None, root: Path | None = None, rebuild: bool = False) -> Split:
    """Load the persisted split for this configuration, or build and save it. The same configuration always
    yields a byte-identical split, so a stored one is reused as is (its fingerprint is verified on load)."""
    from metarec.data import load_dataset

    proto = get_protocol(protocol)
    resolved = proto.resolve(params)
    folder = split_dir(dataset, protocol, resolved, seed, preprocess, root)
    if folder.is_dir() and not rebuild:
        try:
            return Split.load(folder)
        except DataError as e:
            # never rebuilt silently: results already made on this split name its fingerprint
            raise DataError(f"{e} -- the stored split is damaged; delete {folder} to rebuild it (the same "
                            "configuration rebuilds the same split) or rerun with `metarec split ...`") from None
    ds = load_dataset(dataset, **(preprocess or {}))
    split = proto(ds, seed=seed, **resolved)
    split.meta["preprocess"] = preprocess or {}
    split.save(folder)
    return split


def time_scoring(method, split, batch_size: int, repeats: int, min_total_s: float = 1.0) -> float:
    """Seconds for ``score()`` over every test user in evaluator-sized batches: the fastest of at least ``repeats``
    passes (and of as many as fit in ``min_total_s``) -- the minimum, as timeit advises, because on a shared CPU the
    slower passes measure the neighbours' load, not the model."""
    import numpy as np

    users = torch.from_numpy(split.users("test").astype(np.int64))
    previous = method.stage
    method.set_stage("test")
    times: list[float] = []
    try:
        with torch.no_grad():
            while len(times) < repeats or sum(times) < min_total_s:
                t = time.perf_counter()
                for lo in range(0, len(users), batch_size):
                    method.score(users[lo:lo + batch_size])
                times.append(time.perf_counter() - t)
    finally:
        method.set_stage(previous)
    return min(times)


def metrics_for(split: Split, metrics: list[str] | None) -> list[str]:
    if metrics:
        return list(metrics)
    from metarec.eval.registry import default_metrics

    return default_metrics("impressions" if split.is_impressions else "ranking")


def run_one(split: Split, method_name: str, params: dict[str, Any] | None = None, *, seed: int = 0,
            metrics: list[str] | None = None, workdir: Path | None = None, stages=("valid", "test"),
            eval_mode: str = "full", reporter=None, inference_repeats: int = 0,
            artifacts=None, ties: str = "expected", also_eval=()) -> dict[str, Any]:
    """Fit ``method_name`` on ``split`` and evaluate it on ``stages``. Returns a JSON-ready dict with means,
    per-user frames (under ``per_user``, not JSON) and timings. ``reporter(step, valid_value) -> prune?`` is handed
    to the method (a tuning trial's pruner); a pruned run finishes with its best weights and says ``pruned``."""
    from metarec.eval import Evaluator
    from metarec.eval.extras import extras, merge
    from metarec.methods import build_method

    method = build_method(method_name, params)
    method.reporter = reporter
    method.artifacts = artifacts
    metrics = metrics_for(split, metrics)
    evaluator = Evaluator(split, metrics=metrics, mode=eval_mode, seed=seed, ties=ties)
    from metarec.bench.artifacts import build_seconds

    t0, a0 = time.perf_counter(), build_seconds()["wall_s"]
    method.fit(split, seed=seed, workdir=workdir)
    fit_s = time.perf_counter() - t0 - (build_seconds()["wall_s"] - a0)   # training alone: shared artifacts apart
    out: dict[str, Any] = {"method": method_name, "params": method.params, "seed": seed,
                           "dataset": split.dataset, "protocol": split.protocol, "protocol_params": split.params,
                           "split_fingerprint": split.fingerprint, "split_meta": split.meta,
                           "num_parameters": int(method.num_parameters()), "metrics": {}, "per_user": {},
                           "timings": {"fit_s": fit_s}}
    for stage in stages:
        if not len(split.frames[stage]):
            continue
        t0 = time.perf_counter()
        with torch.no_grad():
            res = evaluator.evaluate(method, stage=stage)
            for extra in extras():
                more = extra(method, split, stage, evaluator)
                if more is not None:
                    merge(res, more)
        out["timings"][f"score_{stage}_s"] = time.perf_counter() - t0
        out["timings"][f"adapt_{stage}_s"] = float(res.timings.get("adapt_s", 0.0))   # cold start: inside score
        out["metrics"][stage] = res.means
        out["per_user"][stage] = res.per_user
        out["eval_mode"] = res.mode
        out["ties"] = ties
        out[f"{stage}_users"] = res.n_users
    for mode in also_eval:   # the same model under other ranking protocols (sampled negatives): stage test[<label>]
        if "test" in stages and len(split.frames["test"]) and not split.is_impressions:
            other = Evaluator(split, metrics=metrics, mode=mode, seed=seed, ties=ties)
            with torch.no_grad():
                res = other.evaluate(method, stage="test")
            out["metrics"][f"test[{res.mode}]"] = res.means
    if inference_repeats and "test" in stages and len(split.frames["test"]) and not split.is_impressions:
        out["timings"]["infer_test_s"] = time_scoring(method, split, evaluator.batch_size, inference_repeats)
    out["pruned"] = bool(method.pruned)
    # valid_curve: (epoch, valid metric, seconds since training began) per validation, for time-to-quality
    for attr in ("best_epoch", "best_valid", "epochs_trained", "valid_curve"):
        if hasattr(method, attr):
            out[attr] = getattr(method, attr)
    if getattr(method, "text_info", None):   # item-text encoder: which, its size and its measured throughput
        out["text_info"] = {k: v for k, v in method.text_info.items() if isinstance(v, (str, int, float, bool))}
    return out
