"""Grid spec: one YAML declares datasets x protocols x methods (each with a hyper-parameter grid) x seeds, the
metrics and the validation metric used for model selection. Validated completely before anything runs.

    name: smoke
    seeds: [0, 1, 2]
    metrics: [ndcg@10, recall@10, coverage@10]   # or one list per protocol kind, when a grid mixes them:
                                                 # {ranking: [ndcg@10, recall@10], impressions: [auc, ndcg@10]}
                                                 # (a protocol's name as a key: its own list, before its kind's)
    valid_metric: ndcg@10                        # default: the first metric (every kind's lists share)
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
        exclude: [amazon-office/general]     # optional: skip these datasets or dataset/protocol pairs, or, with
                                             # the reason the report names: {amazon-office/general: "..."}

A ``tune:`` block turns the grid into select-then-confirm (see ``metarec.bench.tune`` and docs/tuning.md): every
method with a search space gets its own Optuna study per dataset x protocol, the same budget for all, on tuning
seeds disjoint from ``seeds``; the best trial's parameters are then re-run on every evaluation seed.

    tune:
      trials: 20            # trials per study ...
      budget_s: 1800        # ... or seconds of trial run time per study, whichever ends first (null: no limit)
      seeds: [100]          # tuning seeds (split and training); a trial's value is the mean over them
      metric: ndcg@10       # the validation metric optimised (default: valid_metric)
      pruner: median        # median | none: stop trials whose validation curve falls below the median
      sampler_seed: 0       # TPE's seed; startup_trials: random trials before TPE (default min(10, trials // 2))
      parallel: 1           # trials of one study in flight at once (1: the same trials on every executor)
    methods:
      mf-bpr:
        params: {max_epochs: 400}          # fixed; a fixed parameter is never searched
        search: {dim: [32, 64, 128]}       # optional: replaces the method's declared search_space
        tune: false                        # optional: run params as they are (no study)
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metarec.errors import ConfigError, MetarecError, UnknownNameError
from metarec.methods.space import check_space, parse_space
from metarec.params import is_seed

TOP_KEYS = {"name", "seeds", "metrics", "valid_metric", "eval_mode", "ties", "also_eval", "datasets", "methods", "split_seed", "threads",
            "reference", "tune", "summaries", "inference_repeats", "tracking", "keep_artifacts", "description"}
TRACKING = ("none", "tensorboard")
TUNE_KEYS = {"trials", "budget_s", "budget_clock", "seeds", "metric", "pruner", "sampler_seed", "startup_trials", "parallel", "share",
             "reuse"}
PRUNERS = ("median", "none")
CLOCKS = ("wall", "cpu")


@dataclass(frozen=True)
class TuneSpec:
    trials: int | None
    budget_s: float | None
    seeds: tuple[int, ...]
    metric: str
    pruner: str
    sampler_seed: int
    startup_trials: int
    parallel: int
    #: what budget_s counts: "wall" (run wall time) or "cpu" (CPU seconds of the run's process, all threads), which
    #: a busy machine does not shrink: equal budgets stay equal when other work shares the cores
    clock: str = "wall"
    #: protocol parameters a study is shared across, with the setting it tunes on (e.g. {"k_shot": 5}): settings of a
    #: protocol that differ only in these keys get one study, tuned on this setting and confirmed on every one
    share: dict = field(default_factory=dict)
    #: other grids (YAML paths) whose finished studies this grid adopts when a study is the same (same name: the
    #: same data, protocol, method, fixed parameters, space, tuning seeds and metric) and the budgets are equal
    reuse: tuple = ()


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
    #: > 0: also time scoring every test user, fastest of this many passes (results' timings.infer_test_s). Not part
    #: of the identity: it measures the run, it does not change what the run computes.
    inference_repeats: int = 0
    #: "tensorboard": also log the run's parameters, validation curve and final metrics under
    #: <store>/tensorboard/<key>/ (not part of the identity either)
    tracking: str = "none"
    #: how tied scores are ranked (metarec.eval.evaluator.TIES): part of the identity, the metrics depend on it
    ties: str = "expected"
    #: further evaluation modes of the test stage (e.g. "sampled", "sampled-pop"), stored as stages
    #: "test[<mode label>]": the same trained model under the protocols papers publish
    also_eval: tuple = ()

    def identity(self, split_fingerprint: str) -> dict[str, Any]:
        """What the run computes. ``params`` are the method's *resolved* parameters (its defaults filled in), so a
        changed default makes a new run instead of silently reusing one trained under the old default."""
        from metarec.methods import build_method

        return {"dataset": self.dataset, "preprocess": self.preprocess, "protocol": self.protocol,
                "protocol_params": self.protocol_params, "split_fingerprint": split_fingerprint,
                "method": self.method, "params": build_method(self.method, dict(self.params)).params,
                "seed": self.seed, "eval_mode": self.eval_mode, "ties": self.ties, "metrics": list(self.metrics),
                **({"also_eval": list(self.also_eval)} if self.also_eval else {})}

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
    tune: TuneSpec | None = None
    summaries: list = field(default_factory=list)   # report summaries (metarec.report.summaries)
    inference_repeats: int = 0
    tracking: str = "none"
    ties: str = "expected"
    also_eval: tuple = ()
    #: run-store artifact kinds committed with the results (``metarec report``) and adopted by a new machine
    keep_artifacts: tuple = ()
    raw: dict = field(default_factory=dict)
    #: one metric list per protocol kind ("ranking", "impressions") when the grid gives them apart; else None and
    #: ``metrics`` applies to every protocol
    metrics_by_kind: dict | None = None
    #: ``metarec bench --only``: glob patterns per "dataset"/"protocol"/"method"; cells outside them are not run
    #: (and their rows in the tidy table are kept as they were)
    only: dict = field(default_factory=dict)

    def restrict(self, patterns: list[str]) -> "Grid":
        """A copy that runs only the cells matching every ``key=glob[,glob...]`` (key: dataset, protocol, method).
        Same name and store: a large grid can be run a part at a time, each part resuming like the whole."""
        import dataclasses
        from fnmatch import fnmatchcase

        only: dict[str, list[str]] = {}
        for p in patterns:
            key, sep, globs = p.partition("=")
            key = key.strip()
            if not sep or key not in ("dataset", "protocol", "method") or not globs.strip():
                raise ConfigError(f"--only {p!r}: expected dataset=GLOB, protocol=GLOB or method=GLOB "
                                  "(comma-separated globs, e.g. method=recbole:*)")
            only.setdefault(key, []).extend(g.strip() for g in globs.split(",") if g.strip())
        out = dataclasses.replace(self, only=only)
        for key, globs in only.items():
            names = {(d["name"], pr["name"], m)[("dataset", "protocol", "method").index(key)]
                     for d, pr, m in self.cells()}
            for g in globs:
                if not any(fnmatchcase(n, g) for n in names):
                    raise ConfigError(f"--only {key}={g}: matches no {key} of grid {self.name!r} "
                                      f"(has: {', '.join(sorted(names))})")
        if not out.cells():
            raise ConfigError(f"--only {' '.join(patterns)}: matches no cell of grid {self.name!r}")
        return out

    def _wanted(self, dataset: str, protocol: str, method: str) -> bool:
        from fnmatch import fnmatchcase

        have = {"dataset": dataset, "protocol": protocol, "method": method}
        return all(any(fnmatchcase(have[k], g) for g in globs) for k, globs in self.only.items())

    def _applicable(self):
        """(dataset, protocol, method name, why it is excluded or None) for every cell whose protocol the method
        runs, in grid order; the reason is the YAML's ("" where it gives none)."""
        for d in self.datasets:
            for proto in d["protocols"]:
                for mname, m in self.methods.items():
                    if m["protocols"] and proto["name"] not in m["protocols"]:
                        continue
                    entry = next((e for e in (d["name"], f"{d['name']}/{proto['name']}") if e in m["exclude"]), None)
                    yield d, proto, mname, None if entry is None else m["exclude"][entry]

    def cells(self) -> list[tuple[dict, dict, str]]:
        """(dataset, protocol, method name) for every cell the grid runs, in grid order."""
        return [(d, proto, mname) for d, proto, mname, why in self._applicable()
                if why is None and (not self.only or self._wanted(d["name"], proto["name"], mname))]

    def excluded_cells(self) -> list[dict[str, str]]:
        """The cells a method's ``exclude`` leaves out of the grid (its protocols apply there), each with the reason
        the YAML gives ("" where it gives none): reported beside the tables, so a missing row is never silent."""
        return [{"dataset": d["name"], "protocol": proto["name"],
                 "protocol_params": json.dumps(proto["params"], sort_keys=True), "method": mname, "reason": why}
                for d, proto, mname, why in self._applicable() if why is not None]

    def spec(self, dataset: dict, protocol: dict, method: str, params: dict, seed: int) -> RunSpec:
        return RunSpec(dataset=dataset["name"], preprocess=dataset["preprocess"], protocol=protocol["name"],
                       protocol_params=protocol["params"],
                       split_seed=self.split_seed if self.split_seed is not None else seed,
                       method=method, params=params, seed=seed, metrics=tuple(self.metrics_for(protocol["name"])),
                       eval_mode=self.eval_mode, ties=self.ties, also_eval=self.also_eval, threads=self.threads,
                       inference_repeats=self.inference_repeats,
                       tracking=self.tracking)

    def metrics_for(self, protocol: str) -> list[str]:
        """The metrics computed under ``protocol``: the grid's list, or its list for the protocol (by name, else by
        its kind)."""
        if self.metrics_by_kind is None:
            return self.metrics
        if protocol in self.metrics_by_kind:
            return self.metrics_by_kind[protocol]
        from metarec.protocols import get_protocol

        return self.metrics_by_kind[get_protocol(protocol).metric_kind]

    def is_tuned(self, method: str) -> bool:
        return self.tune is not None and bool(self.methods[method]["space"])

    def runs(self) -> list[RunSpec]:
        """Every run known before tuning: all configurations x seeds of untuned methods (a tuned method's runs
        depend on its study and are planned by ``metarec.bench.tune``)."""
        out = []
        for d, proto, mname in self.cells():
            if self.is_tuned(mname):
                continue
            for combo in self.methods[mname]["configs"]:
                for seed in self.seeds:
                    out.append(self.spec(d, proto, mname, combo, seed))
        return out


def _err(where: str, msg: str) -> ConfigError:
    return ConfigError(f"{where}: {msg}")


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: grid file not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not valid YAML ({getattr(e, 'problem', e)})") from None


def load_grid(path: str | Path) -> Grid:
    from metarec.bench.compose import is_composite

    path = Path(path)
    raw = _read_yaml(path)
    if is_composite(raw):
        raise ConfigError(f"{path}: a composition of grids (grids:), not one grid: `metarec bench` and "
                          "`metarec report` take it as it is")
    return parse_grid(raw, source=str(path), path=path)


def load_experiment(path: str | Path):
    """A grid file, or a composition of grid files (``metarec.bench.compose``): what `metarec bench` and
    `metarec report` take."""
    from metarec.bench.compose import is_composite, parse_composite

    path = Path(path)
    raw = _read_yaml(path)
    if is_composite(raw):
        return parse_composite(raw, source=str(path), path=path)
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
    if not isinstance(seeds, list) or not seeds or not all(is_seed(s) for s in seeds):
        raise _err(f"{source}: seeds", f"must be a non-empty list of integers in 0..2**32-1, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise _err(f"{source}: seeds", f"repeated seed in {seeds}")
    metrics = raw.get("metrics") or []   # absent: the registry's defaults for the grid's protocols (below)
    by_kind: dict[str, list] | None = None
    if isinstance(metrics, dict):   # one list per protocol kind ({ranking: [...], impressions: [...]}) or protocol
        from metarec.eval.registry import PROTOCOL_KINDS as KINDS

        unknown = sorted(set(metrics) - set(KINDS) - set(PROTOCOLS))
        if unknown or not metrics:
            raise _err(f"{source}: metrics", f"a mapping from protocol kind ({', '.join(KINDS)}) or protocol name "
                                             f"({', '.join(sorted(PROTOCOLS))}) to a metric list; unknown {unknown}")
        by_kind = {}
        for kind, names in metrics.items():
            if not isinstance(names, list) or not names:
                raise _err(f"{source}: metrics.{kind}", "must be a non-empty list of metric names like ndcg@10")
            for i, m in enumerate(names):
                try:
                    parse_metric(str(m), kind if kind in KINDS else PROTOCOLS[kind].metric_kind)
                except MetarecError as e:
                    raise _err(f"{source}: metrics.{kind}[{i}]", str(e)) from None
            by_kind[kind] = [str(m) for m in names]
        metrics = list(dict.fromkeys(m for names in by_kind.values() for m in names))
    if not isinstance(metrics, list):
        raise _err(f"{source}: metrics", "must be a list of metric names like ndcg@10, or one list per protocol "
                                         "kind ({ranking: [...], impressions: [...]})")
    for i, m in enumerate(metrics):
        try:
            parse_metric(str(m))
        except MetarecError as e:
            raise _err(f"{source}: metrics[{i}]", str(e)) from None
    from metarec.eval.evaluator import MODES, TIES

    eval_mode = raw.get("eval_mode", "full")
    if eval_mode not in MODES:
        raise _err(f"{source}: eval_mode", f"must be one of {', '.join(MODES)}, got {eval_mode!r}")
    also_eval = raw.get("also_eval") or []
    if not isinstance(also_eval, list) or any(m not in MODES or m == eval_mode for m in also_eval) \
            or len(set(also_eval)) != len(also_eval):
        raise _err(f"{source}: also_eval", f"a list of distinct evaluation modes other than eval_mode "
                                           f"({', '.join(m for m in MODES if m != eval_mode)}), got {also_eval!r}")

    ties = raw.get("ties", "expected")
    if ties not in TIES:
        raise _err(f"{source}: ties", f"must be one of {', '.join(TIES)}, got {ties!r}")
    split_seed = raw.get("split_seed")
    if split_seed is not None and not is_seed(split_seed):
        raise _err(f"{source}: split_seed", f"must be an integer in 0..2**32-1, got {split_seed!r}")
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

    # metrics against the protocols they will be computed under (the registry says which are defined where)
    kinds = {get_protocol(p["name"]).metric_kind for d in datasets for p in d["protocols"]}
    if not metrics:
        if len(kinds) > 1:
            raise _err(f"{source}: metrics", "the grid mixes ranking and impressions protocols: list the metrics "
                                             "(each must be defined under every protocol, e.g. auc, ndcg@10)")
        from metarec.eval.registry import default_metrics

        metrics = default_metrics(kinds.pop())
    default_valid = metrics[0]
    if by_kind is not None:   # the first metric every kind's list has (selection must mean the same everywhere)
        common = [m for m in metrics if all(m in names for names in by_kind.values())]
        if not common and "valid_metric" not in raw:
            raise _err(f"{source}: valid_metric", "the per-kind metric lists share no metric: name the one to "
                                                  "select on (defined under every protocol, e.g. ndcg@10)")
        default_valid = common[0] if common else default_valid
    valid_metric = str(raw.get("valid_metric", default_valid))
    try:
        parse_metric(valid_metric)
    except MetarecError as e:
        raise _err(f"{source}: valid_metric", str(e)) from None
    if valid_metric not in metrics:
        metrics = [valid_metric] + list(metrics)
    if by_kind is not None:
        by_kind = {k: v if valid_metric in v else [valid_metric] + v for k, v in by_kind.items()}
    for i, d in enumerate(datasets):
        for j, p in enumerate(d["protocols"]):
            kind = get_protocol(p["name"]).metric_kind
            if by_kind is not None and kind not in by_kind and p["name"] not in by_kind:
                which = kind if p["name"] == kind else f"{p['name']} or {kind}"
                raise _err(f"{source}: metrics", f"no list for {which} protocols "
                                                 f"(datasets[{i}].protocols[{j}]: {d['name']} / {p['name']})")
            for m in (by_kind.get(p["name"], by_kind.get(kind)) if by_kind is not None else metrics):
                try:
                    parse_metric(str(m), kind)
                except MetarecError as e:
                    where = "valid_metric" if m == valid_metric else f"datasets[{i}].protocols[{j}] ({p['name']})"
                    raise _err(f"{source}: {where}", f"{e} (grid metrics are computed under every protocol; give "
                                                     "one list per protocol kind to differ)") from None

    if not isinstance(raw["methods"], dict) or not raw["methods"]:
        raise _err(f"{source}: methods", "must be a non-empty mapping of method name -> settings")
    tune = _parse_tune(raw.get("tune"), source, seeds, valid_metric)
    if tune is not None and tune.metric not in metrics:
        metrics = [tune.metric] + list(metrics)
    if tune is not None and by_kind is not None:
        by_kind = {k: v if tune.metric in v else [tune.metric] + v for k, v in by_kind.items()}
        for kind in by_kind:
            try:
                parse_metric(tune.metric, kind if kind not in PROTOCOLS else get_protocol(kind).metric_kind)
            except MetarecError as e:
                raise _err(f"{source}: tune.metric", str(e)) from None
    methods = {}
    proto_names = {p["name"] for d in datasets for p in d["protocols"]}
    for mname, m in raw["methods"].items():
        where = f"{source}: methods.{mname}"
        m = m or {}
        if not isinstance(m, dict) or set(m) - {"params", "grid", "protocols", "exclude", "search", "tune", "teacher"}:
            raise _err(where, "valid keys: params, grid, search, tune, protocols, exclude, teacher")
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
        unsupported = [p for p in protos if supported and p not in supported]
        if unsupported:
            raise _err(f"{where}.protocols", f"{mname} does not support {', '.join(unsupported)} (it supports "
                                             f"{', '.join(supported)})")
        if supported and not protos:
            protos = [p for p in supported if p in proto_names]
            if not protos:
                raise _err(where, f"supports protocols {', '.join(supported)}; none is in the grid")
        exclude = m.get("exclude") or []
        if isinstance(exclude, dict):   # each left-out cell with its reason (the report names both)
            bad = [k for k, v in exclude.items() if not isinstance(v, str) or not v.strip()]
            if bad:
                raise _err(f"{where}.exclude.{bad[0]}", "the reason must be a non-empty string")
            exclude = {str(k): v.strip() for k, v in exclude.items()}
        elif isinstance(exclude, list) and all(isinstance(e, str) for e in exclude):
            exclude = dict.fromkeys(exclude, "")
        if not isinstance(exclude, dict) or not all(isinstance(e, str) and e.count("/") <= 1 and all(e.split("/"))
                                                    for e in exclude):
            raise _err(f"{where}.exclude", "must be a list of 'dataset' or 'dataset/protocol' names, or a mapping from "
                                           f"such names to the reason each is left out, got {m.get('exclude')!r}")
        for e in exclude:
            if "/" in e and e.split("/")[1] not in PROTOCOLS:
                raise _err(f"{where}.exclude", f"unknown protocol in {e!r} (valid: {', '.join(sorted(PROTOCOLS))})")
        space = {}
        if tune is not None and m.get("tune", True) is not False:
            if m.get("grid"):
                raise _err(f"{where}.grid", "a tuned grid searches; write the values as search: {param: [...]} "
                                            "(or set tune: false for this method)")
            if "search" in m:   # its errors already name the key (methods.<name>.search.<param>)
                space = check_space(parse_space(m["search"], f"{where}.search", cls.defaults), cls.defaults,
                                    cls.domains, f"{where}.search")
            else:
                try:
                    space = cls.declared_space()
                except MetarecError as e:
                    raise _err(where, str(e)) from None
            space = {k: v for k, v in space.items() if k not in fixed}  # a fixed parameter is not searched
        elif "search" in m:
            raise _err(f"{where}.search", "needs the grid's tune: block (or remove tune: false)")
        if m.get("tune", True) not in (True, False):
            raise _err(f"{where}.tune", f"must be true or false, got {m['tune']!r}")
        teacher = m.get("teacher")
        if teacher is not None:
            if not getattr(cls, "uses_teacher", False):
                raise _err(f"{where}.teacher", f"{mname} does not learn from a teacher")
            # one teacher everywhere, or one per protocol (a score-matrix teacher such as mf-bpr has no logits at
            # sequence prefixes, so the sequential cells keep a sequence teacher)
            if isinstance(teacher, str):
                teacher = {p: teacher for p in protos}
            elif not isinstance(teacher, dict) or not all(isinstance(v, str) for v in teacher.values()):
                raise _err(f"{where}.teacher", f"must be a method name or a mapping protocol -> method name, got "
                                               f"{teacher!r}")
            elif sorted(teacher) != sorted(protos):
                raise _err(f"{where}.teacher", f"a mapping names one teacher for each protocol {mname} runs on "
                                               f"({', '.join(protos)}), got {', '.join(map(str, teacher)) or 'none'}")
        methods[str(mname)] = {"configs": configs, "protocols": protos, "exclude": exclude, "space": space,
                               "fixed": fixed, "teacher": teacher}
    for mname, m in methods.items():   # teacher: another method of this grid, tuned, on every cell of the student
        for proto, t in (m["teacher"] or {}).items():
            where = f"{source}: methods.{mname}.teacher"
            if t not in methods:
                raise _err(where, f"{t!r} is not one of the grid's methods ({', '.join(methods)})")
            if tune is None or not methods[t]["space"] or not m["space"]:
                raise _err(where, "needs a tuned grid with both methods tuned: the teacher is the configuration its "
                                  "study selects")
            try:
                get_method(mname).teacher_fixed(t, methods[t]["fixed"], m["fixed"])   # the pair is possible at all
            except MetarecError as e:
                raise _err(where, str(e)) from None
            if proto not in methods[t]["protocols"]:
                raise _err(where, f"{t} does not run on {proto}, where {mname} runs")
    summaries = raw.get("summaries") or []
    if not isinstance(summaries, list) or not all(isinstance(x, str) for x in summaries):
        raise _err(f"{source}: summaries", f"must be a list of summary names, got {summaries!r}")
    from metarec.report.summaries import get_summary

    for i, sname in enumerate(summaries):
        try:
            get_summary(sname)
        except MetarecError as e:
            raise _err(f"{source}: summaries[{i}]", str(e)) from None
    repeats = raw.get("inference_repeats", 0)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 0:
        raise _err(f"{source}: inference_repeats", f"must be a non-negative integer, got {repeats!r}")
    tracking = raw.get("tracking", "none")
    if tracking not in TRACKING:
        raise _err(f"{source}: tracking", f"must be one of {', '.join(TRACKING)}, got {tracking!r}")
    from metarec.bench.artifacts import KEEPABLE

    keep = raw.get("keep_artifacts") or []
    if not isinstance(keep, list) or not all(isinstance(k, str) and k in KEEPABLE for k in keep):
        raise _err(f"{source}: keep_artifacts", f"must be a list of artifact kinds among {', '.join(KEEPABLE)}, "
                   f"got {keep!r}")
    reference = raw.get("reference")
    if "vs_reference" in summaries and reference is None:
        raise _err(f"{source}: summaries", "vs_reference needs the grid's reference: method")
    if reference is not None and reference not in methods:
        raise _err(f"{source}: reference", f"must be one of the grid's methods ({', '.join(methods)}), got {reference!r}")
    return Grid(name=name, path=path, seeds=seeds, metrics=[str(m) for m in metrics], metrics_by_kind=by_kind,
                valid_metric=valid_metric,
                eval_mode=eval_mode, datasets=datasets, methods=methods, split_seed=split_seed, threads=threads,
                reference=reference, tune=tune, summaries=summaries, inference_repeats=repeats, tracking=tracking,
                ties=ties, also_eval=tuple(also_eval), keep_artifacts=tuple(keep), raw=raw)


def _parse_tune(raw: Any, source: str, seeds: list[int], valid_metric: str) -> TuneSpec | None:
    from metarec.eval.metrics import parse_metric

    if raw is None or raw is False:
        return None
    where = f"{source}: tune"
    if not isinstance(raw, dict):
        raise _err(where, "a mapping with trials and/or budget_s, seeds, metric, pruner ...")
    unknown = sorted(set(raw) - TUNE_KEYS)
    if unknown:
        raise _err(where, f"unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(TUNE_KEYS))}")

    def positive(key, kind=int, default=None):
        v = raw.get(key, default)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float) if kind is float else int) or v <= 0:
            raise _err(f"{where}.{key}", f"must be a positive {'number' if kind is float else 'integer'}, got {v!r}")
        return kind(v)

    trials = positive("trials")
    budget = positive("budget_s", float)
    if trials is None and budget is None:
        raise _err(where, "give trials, budget_s or both: every study needs a budget that ends")
    tseeds = raw.get("seeds", [max(seeds) + 1000])
    if not isinstance(tseeds, list) or not tseeds or not all(is_seed(s) for s in tseeds) \
            or len(set(tseeds)) != len(tseeds):
        raise _err(f"{where}.seeds", f"must be a non-empty list of distinct integers in 0..2**32-1, got {tseeds!r}")
    shared = sorted(set(tseeds) & set(seeds))
    if shared:
        raise _err(f"{where}.seeds", f"tuning seeds must differ from the evaluation seeds (shared: {shared}): "
                                     "a configuration chosen on a split must not be scored on the same split")
    metric = str(raw.get("metric", valid_metric))
    try:
        parse_metric(metric)
    except MetarecError as e:
        raise _err(f"{where}.metric", str(e)) from None
    pruner = raw.get("pruner", "median")
    if pruner not in PRUNERS:
        raise _err(f"{where}.pruner", f"must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    sampler_seed = raw.get("sampler_seed", 0)
    if not is_seed(sampler_seed):
        raise _err(f"{where}.sampler_seed", f"must be an integer in 0..2**32-1, got {sampler_seed!r}")
    startup = raw.get("startup_trials", min(10, max(1, (trials or 20) // 2)))
    if not isinstance(startup, int) or isinstance(startup, bool) or startup < 0:
        raise _err(f"{where}.startup_trials", f"must be a non-negative integer, got {startup!r}")
    parallel = positive("parallel", default=1)
    clock = raw.get("budget_clock", "wall")
    if clock not in CLOCKS:
        raise _err(f"{where}.budget_clock", f"must be one of {', '.join(CLOCKS)}, got {clock!r}")
    share = raw.get("share", {})
    if not isinstance(share, dict) or not all(isinstance(k, str) for k in share):
        raise _err(f"{where}.share", f"must map protocol parameters to the setting tuned on, e.g. {{k_shot: 5}}, "
                                     f"got {share!r}")
    reuse = raw.get("reuse", [])
    if not isinstance(reuse, list) or not all(isinstance(r, str) and r for r in reuse):
        raise _err(f"{where}.reuse", f"must be a list of grid YAML paths, got {reuse!r}")
    return TuneSpec(clock=clock, trials=trials, budget_s=budget, seeds=tuple(tseeds), metric=metric, pruner=pruner,
                    sampler_seed=sampler_seed, startup_trials=startup, parallel=parallel, share=dict(share),
                    reuse=tuple(reuse))
