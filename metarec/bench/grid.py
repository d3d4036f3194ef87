"""Grid spec: one YAML declares datasets x protocols x methods (each with a hyper-parameter grid) x seeds, the
metrics and the validation metric used for model selection. Validated completely before anything runs.

    name: smoke
    seeds: [0, 1, 2]
    metrics: [ndcg@10, recall@10, coverage@10]
    valid_metric: ndcg@10
    datasets:
      - name: ml-100k
        preprocess: {min_rating: 4}          # optional
        protocols:
          - general                          # a name, or {name: ..., params: {...}}
          - {name: sequential, params: {min_length: 5}}
    reference: mf-bpr                        # optional: significance reference (default: best baseline)
    methods:
      pop: {}
      mf-bpr:
        params: {max_epochs: 40}             # fixed parameters
        grid: {lr: [0.001, 0.005]}           # every combination is a configuration
        protocols: [general]                 # optional: only these protocols
        exclude: [amazon-office/general]     # optional: skip these datasets or dataset/protocol pairs
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metarec.errors import ConfigError, MetarecError, UnknownNameError

TOP_KEYS = {"name", "seeds", "metrics", "valid_metric", "eval_mode", "datasets", "methods", "split_seed", "threads",
            "reference",
            "description"}


@dataclass(frozen=True)
class RunSpec:
    """One cell of the grid. ``key`` identifies it: same key -> same result."""

    dataset: str
    preprocess: dict
    protocol: str
    protocol_params: dict
    split_seed: int
    method: str
    params: dict
    seed: int
    metrics: tuple
    eval_mode: str
    threads: int

    def identity(self, split_fingerprint: str) -> dict[str, Any]:
        return {"dataset": self.dataset, "preprocess": self.preprocess, "protocol": self.protocol,
                "protocol_params": self.protocol_params, "split_fingerprint": split_fingerprint,
                "method": self.method, "params": self.params, "seed": self.seed, "eval_mode": self.eval_mode,
                "metrics": list(self.metrics)}

    @property
    def params_label(self) -> str:
        return json.dumps(self.params, sort_keys=True)


@dataclass
class Grid:
    name: str
    path: Path | None
    seeds: list[int]
    metrics: list[str]
    valid_metric: str
    eval_mode: str
    datasets: list[dict]
    methods: dict[str, dict]
    split_seed: int | None = None
    threads: int = 1
    reference: str | None = None   # significance reference method; default: the best 'baseline'-family method
    raw: dict = field(default_factory=dict)

    def runs(self) -> list[RunSpec]:
        out = []
        for d in self.datasets:
            for proto in d["protocols"]:
                for mname, m in self.methods.items():
                    if m["protocols"] and proto["name"] not in m["protocols"]:
                        continue
                    if d["name"] in m["exclude"] or f"{d['name']}/{proto['name']}" in m["exclude"]:
                        continue
                    for combo in m["configs"]:
                        for seed in self.seeds:
                            out.append(RunSpec(
                                dataset=d["name"], preprocess=d["preprocess"], protocol=proto["name"],
                                protocol_params=proto["params"],
                                split_seed=self.split_seed if self.split_seed is not None else seed,
                                method=mname, params=combo, seed=seed, metrics=tuple(self.metrics),
                                eval_mode=self.eval_mode, threads=self.threads))
        return out


def _err(where: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {msg}")


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: grid file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None
    return parse_grid(raw, source=str(path), path=path)


def parse_grid(raw: Any, source: str = "<grid>", path: Path | None = None) -> Grid:
    """Validate every key and name before anything runs; errors name the key path and list valid choices."""
    from metarec.data import list_cards
    from metarec.eval.metrics import parse_metric
    from metarec.methods import get_method
    from metarec.protocols import PROTOCOLS, get_protocol

    if not isinstance(raw, dict):
        raise _err(source, "a grid is a mapping with keys datasets, methods, seeds, metrics ...")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise _err(source, f"unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(TOP_KEYS))}")
    for key in ("datasets", "methods"):
        if key not in raw:
            raise _err(source, f"missing key {key!r}")

    name = str(raw.get("name") or (path.stem if path else "grid"))
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise _err(f"{source}: seeds", f"must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise _err(f"{source}: seeds", f"repeated seed in {seeds}")
    metrics = raw.get("metrics") or ["ndcg@10", "recall@10", "hit@10", "mrr@10", "coverage@10"]
    if not isinstance(metrics, list):
        raise _err(f"{source}: metrics", "must be a list of metric names like ndcg@10")
    for i, m in enumerate(metrics):
        try:
            parse_metric(str(m))
        except MetarecError as e:
            raise _err(f"{source}: metrics[{i}]", str(e)) from None
    valid_metric = str(raw.get("valid_metric", metrics[0]))
    try:
        parse_metric(valid_metric)
    except MetarecError as e:
        raise _err(f"{source}: valid_metric", str(e)) from None
    if valid_metric not in metrics:
        metrics = [valid_metric] + list(metrics)
    eval_mode = raw.get("eval_mode", "full")
    if eval_mode not in ("full", "sampled"):
        raise _err(f"{source}: eval_mode", f"must be 'full' or 'sampled', got {eval_mode!r}")
    split_seed = raw.get("split_seed")
    if split_seed is not None and not isinstance(split_seed, int):
        raise _err(f"{source}: split_seed", f"must be an integer, got {split_seed!r}")
    threads = raw.get("threads", 1)
    if not isinstance(threads, int) or threads < 1:
        raise _err(f"{source}: threads", f"must be a positive integer, got {threads!r}")

    card_names = [c.name for c in list_cards()]
    datasets = []
    if not isinstance(raw["datasets"], list) or not raw["datasets"]:
        raise _err(f"{source}: datasets", "must be a non-empty list")
    for i, d in enumerate(raw["datasets"]):
        where = f"{source}: datasets[{i}]"
        if isinstance(d, str):
            d = {"name": d}
        if not isinstance(d, dict) or "name" not in d:
            raise _err(where, "each dataset is a name or a mapping with 'name'")
        bad = sorted(set(d) - {"name", "preprocess", "protocols"})
        if bad:
            raise _err(where, f"unknown key(s) {', '.join(bad)}; valid: name, preprocess, protocols")
        if d["name"] not in card_names:
            raise _err(f"{where}.name", str(UnknownNameError("dataset", d["name"], card_names)))
        pre = d.get("preprocess") or {}
        if not isinstance(pre, dict) or set(pre) - {"min_rating", "k_core"}:
            raise _err(f"{where}.preprocess", f"valid keys: min_rating, k_core; got {pre!r}")
        protos = []
        for j, p in enumerate(d.get("protocols") or ["general"]):
            pw = f"{where}.protocols[{j}]"
            if isinstance(p, str):
                p = {"name": p}
            if not isinstance(p, dict) or "name" not in p or set(p) - {"name", "params"}:
                raise _err(pw, "a protocol is a name or {name: ..., params: {...}}")
            try:
                resolved = get_protocol(p["name"]).resolve(p.get("params"))
            except MetarecError as e:
                raise _err(pw, str(e)) from None
            protos.append({"name": p["name"], "params": resolved})
        datasets.append({"name": d["name"], "preprocess": pre, "protocols": protos})

    if not isinstance(raw["methods"], dict) or not raw["methods"]:
        raise _err(f"{source}: methods", "must be a non-empty mapping of method name -> settings")
    methods = {}
    proto_names = {p["name"] for d in datasets for p in d["protocols"]}
    for mname, m in raw["methods"].items():
        where = f"{source}: methods.{mname}"
        m = m or {}
        if not isinstance(m, dict) or set(m) - {"params", "grid", "protocols", "exclude"}:
            raise _err(where, "valid keys: params, grid, protocols, exclude")
        try:
            cls = get_method(str(mname))
        except MetarecError as e:
            raise _err(where, str(e)) from None
        fixed = m.get("params") or {}
        grid = m.get("grid") or {}
        if not isinstance(fixed, dict) or not isinstance(grid, dict):
            raise _err(where, "params and grid are mappings")
        for k, v in grid.items():
            if not isinstance(v, list) or not v:
                raise _err(f"{where}.grid.{k}", f"must be a non-empty list of values, got {v!r}")
        keys = sorted(grid)
        configs = [{**fixed, **dict(zip(keys, values))} for values in itertools.product(*(grid[k] for k in keys))]
        for c in configs:
            try:
                cls(**c)  # constructing validates names and types without training
            except MetarecError as e:
                raise _err(where, str(e)) from None
        protos = m.get("protocols") or []
        for p in protos:
            if p not in proto_names:
                raise _err(f"{where}.protocols", f"protocol {p!r} is not in the grid's datasets "
                                                 f"(valid: {', '.join(sorted(proto_names))})")
        supported = getattr(cls, "protocols", None)
        if supported and not protos:
            protos = [p for p in supported if p in proto_names]
            if not protos:
                raise _err(where, f"supports protocols {', '.join(supported)}; none is in the grid")
        exclude = m.get("exclude") or []
        if not isinstance(exclude, list) or not all(isinstance(e, str) and e.count("/") <= 1 and all(e.split("/"))
                                                    for e in exclude):
            raise _err(f"{where}.exclude", f"must be a list of 'dataset' or 'dataset/protocol' names, got {exclude!r}")
        for e in exclude:
            if "/" in e and e.split("/")[1] not in PROTOCOLS:
                raise _err(f"{where}.exclude", f"unknown protocol in {e!r} (valid: {', '.join(sorted(PROTOCOLS))})")
        methods[str(mname)] = {"configs": configs, "protocols": protos, "exclude": exclude}
    reference = raw.get("reference")
    if reference is not None and reference not in methods:
        raise _err(f"{source}: reference", f"must be one of the grid's methods ({', '.join(methods)}), got {reference!r}")
    return Grid(name=name, path=path, seeds=seeds, metrics=[str(m) for m in metrics], valid_metric=valid_metric,
                eval_mode=eval_mode, datasets=datasets, methods=methods, split_seed=split_seed, threads=threads,
                reference=reference, raw=raw)
