"""Equal-budget tuning: one Optuna study per dataset x protocol x method, then select-then-confirm.

Studies live in one SQLite database per grid (``<store>/tuning.db``, Optuna's RDB storage), so a tuning run killed
at any moment resumes with the trials it had, and pool/Ray workers report to the same study. Each study:

- **Same budget for every method**: at most ``tune.trials`` trials and at most ``tune.budget_s`` seconds of trial
  run time (the sum of the trials' run wall times, so waiting in a queue costs nothing; with
  ``budget_clock: cpu`` their CPU seconds, which other work on the machine does not eat into), whichever ends first. A
  trial started inside the budget runs to its end. Failed and pruned trials count: they were spent. A finite space
  (all categorical or stepped) ends earlier once every configuration has been tried.
- **Trials are runs**: a trial runs the method with its sampled parameters on every tuning seed (split and training
  seed, disjoint from the evaluation seeds) as ordinary run-store runs keyed like any other, so a configuration is
  never trained twice (a re-sampled configuration, or a resumed trial, reads the stored run). Its value is the mean
  validation metric over the tuning seeds.
- **Deterministic**: TPE is re-seeded for each ask from (sampler_seed, trial number); with ``parallel: 1`` a study's
  trial sequence depends on nothing but its own finished trials, so the sequential, pool and Ray executors (and a
  run resumed after SIGKILL) select the same configuration. A trial that was running when its process died is
  re-attached on the next start (same number, same parameters), not re-drawn.
- **Pruning**: the first tuning seed's run reports its validation metric after every validation; Optuna's median
  pruner (which compares only with *completed* trials, so it stays deterministic) may stop it. The pruned run still
  finishes as a run (best weights so far, evaluated); the trial is told PRUNED and is never selected.
- **Confirm**: the best completed trial's parameters are re-run on every evaluation seed; only those runs (and the
  untuned methods' runs) enter the results table. Trials are listed in ``trials.{parquet,csv}``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from metarec.bench.grid import Grid, RunSpec
from metarec.bench.store import RunStore, lower_is_better, run_key
from metarec.protocols import get_protocol

DB_NAME = "tuning.db"


def storage_url(store_root: Path) -> str:
    return f"sqlite:///{Path(store_root).resolve() / DB_NAME}"


def adopt_committed_studies(grid_name: str, store_root: Path, results: Path = Path("results")) -> Path | None:
    """A fresh run store (a new machine) starts from the studies committed with the grid's results
    (``results/<grid>/tuning.db``, written by ``metarec report``): finished trials are not run again."""
    import shutil

    mine, committed = Path(store_root) / DB_NAME, Path(results) / grid_name / DB_NAME
    if mine.exists() or not committed.is_file():
        return None
    mine.parent.mkdir(parents=True, exist_ok=True)
    tmp = mine.with_name(f".{DB_NAME}.tmp")
    shutil.copyfile(committed, tmp)
    tmp.replace(mine)
    return committed


def reused_grids(grid: Grid) -> list[Grid]:
    """The grids ``tune.reuse`` names (paths relative to the grid file), each checked to have given its studies the
    same budget as this grid (else one ConfigError naming the differences)."""
    from metarec.bench.grid import load_grid
    from metarec.errors import ConfigError

    out = []
    here = grid.path.parent if grid.path is not None else Path(".")
    for ref in (grid.tune.reuse if grid.tune is not None else ()):
        other = load_grid(Path(ref) if Path(ref).is_absolute() else here / ref)
        mine, theirs = grid.tune, other.tune
        budget = ("trials", "budget_s", "clock", "pruner", "startup_trials", "parallel")
        if theirs is None or any(getattr(mine, k) != getattr(theirs, k) for k in budget):
            got = "no tune: block" if theirs is None else ", ".join(
                f"{k} {getattr(theirs, k)!r} (here {getattr(mine, k)!r})" for k in budget
                if getattr(mine, k) != getattr(theirs, k))
            raise ConfigError(f"{grid.path}: tune.reuse {ref}: its studies ran under another budget ({got}); "
                              "a reused study must have had the same chance as this grid's")
        out.append(other)
    return out


def _storage(url: str):
    import optuna

    # several processes (the driver, pool/Ray workers reporting intermediate values) share one SQLite file:
    # wait for its lock instead of failing at once
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})


def _pruner(name: str, startup: int):
    import optuna

    if name == "median":
        # no pruning before `startup` trials finished nor in a run's first two validations: early curves of
        # different learning rates cross
        return optuna.pruners.MedianPruner(n_startup_trials=max(1, startup), n_warmup_steps=1)
    return optuna.pruners.NopPruner()


def open_trial(info: dict):
    """In a worker: the live Optuna trial ``info`` names, re-opened from its study's database (for report/prune)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=info["study"], storage=_storage(info["storage"]),
                              pruner=_pruner(info["pruner"], info["startup"]))
    return optuna.trial.Trial(study, info["trial_id"])


#: What one CPU second of a CPU model (``/proc/cpuinfo``'s model name, as a run records it in ``machine.cpu``) is worth
#: in a study's budget (``budget_clock: cpu``), in CPU seconds of the reference machine: the Intel Xeon that ran every
#: study before 2026-12-03 (a trial recorded without ``cpu_model`` ran there). A grid resumed over several working
#: days may land on another CPU, where the same trial costs more (or fewer) CPU seconds; counted raw, a study finished
#: there would get fewer (or more) trials than its neighbours finished on the reference machine. Each factor is
#: measured by ``benchmarks/cpu_speed.py`` (committed trials rerun as they were; results/cpu_speed/). A model not
#: listed counts 1.0, and the grid says so when it starts: measure it before a budget is split across machines.
REFERENCE_CPU = "Intel(R) Xeon(R) Processor"
CPU_SPEED = {REFERENCE_CPU: 1.0,
             # 2026-12-03, results/cpu_speed/AMD_EPYC.json: two distill_text trials rerun as they were, 0.544 and
             # 0.493 (the median of the two)
             "AMD EPYC": 0.518}


def cpu_speed(model: str | None) -> float:
    """``CPU_SPEED`` of a CPU model (None: a trial recorded before models were, on the reference machine)."""
    return CPU_SPEED.get(model or REFERENCE_CPU, 1.0)


@dataclass
class PendingTrial:
    number: int
    trial_id: int
    params: dict
    seed_index: int = 0
    values: list = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    cpu_model: str | None = None   # the CPU its runs ran on (``cpu_speed``)
    keys: list = field(default_factory=list)


@dataclass
class StudyRun:
    """The driver's view of one study."""

    name: str
    dataset: dict
    protocol: dict
    method: str
    fixed: dict
    space: dict
    study: Any
    inflight: dict = field(default_factory=dict)   # trial number -> PendingTrial
    confirmed: bool = False
    note: str = ""
    #: the protocol settings its selection is confirmed on (``tune.share``: several; else its own)
    confirm_protocols: list = field(default_factory=list)

    @property
    def cell(self) -> tuple[str, str, str]:
        return self.dataset["name"], self.protocol["name"], self.method


def tuning_protocol(grid: Grid, d: dict, proto: dict, method: str, cells) -> dict:
    """The protocol setting a cell's study tunes on: its own, or with ``tune.share`` the grid's setting of the
    same protocol whose shared parameters take the given values (it must be one of the method's cells)."""
    from metarec.errors import ConfigError

    share = grid.tune.share
    if not share or not set(share) <= set(proto["params"]):
        return proto
    want = {**proto["params"], **share}
    for d2, p2, m2 in cells:
        if d2["name"] == d["name"] and m2 == method and p2["name"] == proto["name"] and p2["params"] == want:
            return p2
    raise ConfigError(f"tune.share {share}: dataset {d['name']} has no {proto['name']} setting with "
                      f"{json.dumps(want, sort_keys=True)} for {method} to tune on (it shares the study of "
                      f"{json.dumps(proto['params'], sort_keys=True)})")


def study_name(grid: Grid, d: dict, proto: dict, method: str, m: dict) -> str:
    """Readable cell + a hash of everything that defines the study: change the space, the fixed parameters,
    the tuning seeds or the metric and a new study starts (an old one is never mixed with a new space)."""
    from metarec.methods import build_method

    t = grid.tune
    # every parameter the trials do not search, defaults included: a changed default starts a new study
    fixed = {k: v for k, v in build_method(method, dict(m["fixed"])).params.items() if k not in m["space"]}
    ident = {"dataset": d["name"], "preprocess": d["preprocess"], "protocol": proto["name"],
             "protocol_params": proto["params"], "method": method, "fixed": fixed,
             "space": {k: v.__dict__ for k, v in sorted(m["space"].items())}, "seeds": list(t.seeds),
             "metric": t.metric, "sampler_seed": t.sampler_seed, "startup": t.startup_trials,
             "eval_mode": grid.eval_mode, "split_seed": grid.split_seed}
    version = get_protocol(proto["name"]).version
    if version != 1:   # a changed split algorithm starts new studies (trials on the old splits stay apart)
        ident["protocol_version"] = version
    if grid.ties != "expected":
        # (studies begun before tie-aware metrics ranked ties by item id; they continue under the default:
        # selection only, the confirm runs that make the tables are keyed and evaluated with ``ties``)
        ident["ties"] = grid.ties
    return f"{d['name']}/{proto['name']}/{method}/{run_key(ident)[:10]}"


class Tuner:
    """Plans trial runs and confirm runs; the runner executes them and hands every outcome back."""

    def __init__(self, grid: Grid, store: RunStore, key_of, probe: bool = False):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.grid, self.store, self.key_of = grid, store, key_of
        self.spec_t = grid.tune
        self.url = storage_url(store.root)
        self.storage = _storage(self.url)
        self.direction = "minimize" if lower_is_better(self.spec_t.metric) else "maximize"
        self.studies: list[StudyRun] = []
        self.confirm_keys: list[str] = []
        #: measure only: each study's first trial when it has none, never more, never a confirm run (run_grid)
        self.probe = probe
        cells = grid.cells()
        by_name: dict[str, StudyRun] = {}
        self.adopted: dict[str, str] = {}   # study name -> the grid it was adopted from (tune.reuse)
        self._sources = self._reuse_sources()
        self._cells, self._by_name = cells, by_name
        #: teacher study name -> the student cells whose study starts once that study has selected (grid key
        #: ``teacher:``: the student's teacher is the teacher study's selected configuration, on the same cell)
        self.pending: dict[str, list] = {}
        self.unresolved: list[str] = []
        students = []
        for d, proto, mname in cells:
            if grid.is_tuned(mname):
                if grid.methods[mname].get("teacher"):
                    students.append((d, proto, mname))
                else:
                    self._open(d, proto, mname, grid.methods[mname]["fixed"])
        all_cells = dataclasses.replace(grid, only={}).cells() if grid.only else cells
        for d, proto, mname in students:
            teacher = grid.methods[mname]["teacher"][proto["name"]]
            if (d, proto, teacher) not in all_cells:
                self.unresolved.append(f"{mname} on {d['name']}/{proto['name']}: {teacher} does not run there")
                continue
            t_on = tuning_protocol(grid, d, proto, teacher, all_cells)
            t_name = study_name(grid, d, t_on, teacher, grid.methods[teacher])
            t_study = by_name.get(t_name) or self._existing(d, t_on, teacher, t_name)
            if t_study is not None and self._selected(t_study) is not None:
                self._open_student(d, proto, mname, t_study)
            elif t_name in by_name:
                self.pending.setdefault(t_name, []).append((d, proto, mname))
            else:   # the teacher's cells are left out of this run (--only) and its study has not selected yet
                self.unresolved.append(f"{mname} on {d['name']}/{proto['name']}: its teacher's study {t_name} has "
                                       f"not selected yet (run {teacher}'s cells first)")

    def _open(self, d: dict, proto: dict, mname: str, fixed: dict) -> StudyRun:
        """The study of a cell (created, adopted from a reused grid, or continued), or the one it shares."""
        import optuna

        m = {**self.grid.methods[mname], "fixed": fixed}
        tune_on = tuning_protocol(self.grid, d, proto, mname, self._cells)
        name = study_name(self.grid, d, tune_on, mname, m)
        if name in self._by_name:   # a setting that shares its study (tune.share): confirmed there too
            self._by_name[name].confirm_protocols.append(proto)
            return self._by_name[name]
        if self._sources:
            self._adopt(name, self._sources, m["space"])
        study = optuna.create_study(study_name=name, storage=self.storage, direction=self.direction,
                                    load_if_exists=True, pruner=_pruner(self.spec_t.pruner, self.spec_t.startup_trials))
        study.set_user_attr("cell", [d["name"], tune_on["name"], mname])
        s = self._by_name[name] = StudyRun(name, d, tune_on, mname, fixed, m["space"], study,
                                           confirm_protocols=[proto])
        self.studies.append(s)
        return s

    def _existing(self, d: dict, tune_on: dict, method: str, name: str) -> StudyRun | None:
        """A study of a cell this run leaves out (--only), read from the database (or a reused grid's) if it is
        there; never created or run here."""
        import optuna

        if self._sources:
            self._adopt(name, self._sources, self.grid.methods[method]["space"])
        try:
            study = optuna.load_study(study_name=name, storage=self.storage)
        except KeyError:
            return None
        m = self.grid.methods[method]
        return StudyRun(name, d, tune_on, method, m["fixed"], m["space"], study)

    def _selected(self, s: StudyRun) -> dict | None:
        """A finished study's selected configuration (fixed + best trial's), or None while it may still change."""
        from optuna.trial import TrialState

        if s.inflight or self.budget_left(s) or s.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            return None
        try:
            return {**s.fixed, **s.study.best_trial.params}
        except ValueError:   # no completed trial
            return None

    def _open_student(self, d: dict, proto: dict, mname: str, teacher_study: StudyRun,
                      teacher_config: dict | None = None) -> StudyRun:
        """The student's study, its teacher fixed to ``teacher_config`` (default: the teacher study's selection)."""
        from metarec.methods import get_method

        fixed = self.grid.methods[mname]["fixed"]
        config = teacher_config if teacher_config is not None else self._selected(teacher_study)
        resolved = get_method(mname).teacher_fixed(teacher_study.method, config, fixed)
        return self._open(d, proto, mname, {**fixed, **resolved})

    def _start_students(self, teacher: StudyRun, teacher_config: dict) -> list:
        """Open the studies of the students waiting on ``teacher`` (taught by ``teacher_config``); the first jobs of
        each study that is new."""
        jobs = []
        for d, proto, mname in self.pending.pop(teacher.name, []):
            before = len(self.studies)
            student = self._open_student(d, proto, mname, teacher, teacher_config)
            if len(self.studies) > before:
                jobs += self.start_study(student)
        return jobs

    def _reuse_sources(self) -> list[tuple[str, Any]]:
        """(grid name, storage) of each ``tune.reuse`` grid with studies; its budget must equal this grid's."""
        out = []
        for other in reused_grids(self.grid):
            db = self.store.root.parent / other.name / DB_NAME
            committed = Path("results") / other.name / DB_NAME
            for candidate in (db, committed):
                if candidate.is_file():
                    out.append((other.name, _storage(f"sqlite:///{candidate.resolve()}")))
                    break
        return out

    def _adopt(self, name: str, sources: list[tuple[str, Any]], space: dict) -> None:
        """Copy study ``name`` from a reused grid when this grid has no trial of it and the other grid finished it
        (no trial running, budget spent): the same study, so its trials need not run again. A study still running
        there is left alone (it would fork): run that grid first."""
        import optuna
        from optuna.trial import TrialState

        try:   # one study looked up, not every study of the database listed (this runs once per cell)
            mine = optuna.load_study(study_name=name, storage=self.storage)
        except KeyError:
            mine = None
        if mine is not None and mine.get_trials(deepcopy=False):
            return
        for grid_name, storage in sources:
            try:
                theirs = optuna.load_study(study_name=name, storage=storage)
            except KeyError:
                continue
            trials = theirs.get_trials(deepcopy=False)
            probe = StudyRun(name, {}, {}, "", {}, space, theirs)
            if any(t.state == TrialState.RUNNING for t in trials) or self.budget_left(probe):
                continue
            if mine:
                optuna.delete_study(study_name=name, storage=self.storage)
            optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=self.storage)
            optuna.load_study(study_name=name, storage=self.storage).set_user_attr("adopted_from", grid_name)
            self.adopted[name] = grid_name
            return

    # ---- budget --------------------------------------------------------------------------------------------
    def spent(self, s: StudyRun) -> tuple[int, float]:
        """(trials started, seconds of trial run time spent) so far."""
        trials = s.study.get_trials(deepcopy=False)
        if self.spec_t.clock == "cpu":   # trials recorded before cpu_s existed count their wall time
            return len(trials), sum(float(t.user_attrs.get("cpu_s", t.user_attrs.get("wall_s", 0.0)))
                                    * cpu_speed(t.user_attrs.get("cpu_model")) for t in trials)
        return len(trials), sum(float(t.user_attrs.get("wall_s", 0.0)) for t in trials)

    def budget_left(self, s: StudyRun) -> bool:
        """Within both budgets, and some configuration not tried yet (a finite space, e.g. all categorical, is
        exhausted once every configuration was tried: further trials would only re-read stored runs)."""
        from metarec.methods.space import space_size

        n, secs = self.spent(s)
        t = self.spec_t
        tried = {json.dumps(tr.params, sort_keys=True, default=str) for tr in s.study.get_trials(deepcopy=False)}
        return (t.trials is None or n < t.trials) and (t.budget_s is None or secs < t.budget_s) \
            and len(tried) < space_size(s.space)

    # ---- planning ------------------------------------------------------------------------------------------
    def _spec(self, s: StudyRun, params: dict, seed: int) -> RunSpec:
        return self.grid.spec(s.dataset, s.protocol, s.method, params, seed)

    def _trial_job(self, s: StudyRun, p: PendingTrial):
        from metarec.bench.executors import Job

        seed = self.spec_t.seeds[p.seed_index]
        spec = self._spec(s, {**s.fixed, **p.params}, seed)
        if p.seed_index == 0:
            info = {"storage": self.url, "study": s.name, "trial_id": p.trial_id, "number": p.number,
                    "pruner": self.spec_t.pruner, "startup": self.spec_t.startup_trials,
                    "metric": self.spec_t.metric}
        else:
            info = {"study": s.name, "number": p.number, "pruner": "none"}
        return Job(spec, self.key_of(spec), info, tag=("trial", s.name, p.number))

    def _sampler(self, number: int):
        from optuna.samplers import TPESampler

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate TPE is 'experimental'
            return TPESampler(seed=(self.spec_t.sampler_seed * 1_000_003 + number) % (2**31),
                              n_startup_trials=self.spec_t.startup_trials, multivariate=True,
                              constant_liar=self.spec_t.parallel > 1)

    def _ask(self, s: StudyRun) -> PendingTrial:
        number = len(s.study.get_trials(deepcopy=False))
        s.study.sampler = self._sampler(number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = s.study.ask({k: d.to_optuna() for k, d in s.space.items()})
        return PendingTrial(trial.number, trial._trial_id, dict(trial.params))

    def _reattach(self, s: StudyRun, frozen) -> PendingTrial:
        """A trial left RUNNING by a killed process. Killed inside ask(), it may lack some parameters: draw them
        again exactly as that ask did (the same per-number seed over the same finished trials; the ones already
        written are kept)."""
        import optuna

        params = dict(frozen.params)
        if set(params) != set(s.space):
            s.study.sampler = self._sampler(frozen.number)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trial = optuna.trial.Trial(s.study, frozen._trial_id)
                for name, dist in s.space.items():
                    trial._suggest(name, dist.to_optuna())
            params = dict(trial.params)
        return PendingTrial(frozen.number, frozen._trial_id, params)

    def start(self) -> list:
        """Jobs to run first: re-attached trials of a killed run, then each study's first trials."""
        jobs = []
        for s in list(self.studies):   # (a confirm can open a student's study: it starts there)
            if s.confirmed:
                continue
            jobs += self.start_study(s)
        if self.probe:   # teachers probed earlier: their students can be measured now
            for s in list(self.studies):
                jobs += self._probe_students(s)
        return jobs

    def _probe_students(self, teacher: StudyRun) -> list:
        """probe: what a student's trial costs does not hang on which configuration teaches it, so its study opens
        on the teacher study's best trial so far (if the teacher's final selection differs, the student's real
        study is another one and this trial only measured)."""
        if teacher.name not in self.pending:
            return []
        try:
            best = {**teacher.fixed, **teacher.study.best_trial.params}
        except ValueError:   # no completed trial yet
            return []
        return self._start_students(teacher, best)

    def start_study(self, s: StudyRun) -> list:
        """Re-attached trials of a killed run, then the study's next trials (or its confirm runs)."""
        from optuna.trial import TrialState

        jobs = []
        for t in s.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            p = self._reattach(s, t)
            s.inflight[p.number] = p
            jobs.append(self._trial_job(s, p))
        return jobs + self._more(s)

    def _more(self, s: StudyRun) -> list:
        jobs = []
        if self.probe:
            if not s.inflight and not s.study.get_trials(deepcopy=False) and self.budget_left(s):
                p = self._ask(s)
                s.inflight[p.number] = p
                jobs.append(self._trial_job(s, p))
            return jobs
        while len(s.inflight) < self.spec_t.parallel and self.budget_left(s):
            p = self._ask(s)
            s.inflight[p.number] = p
            jobs.append(self._trial_job(s, p))
        if not s.inflight and not s.confirmed:
            jobs += self._confirm(s)
        return jobs

    def _confirm(self, s: StudyRun) -> list:
        from metarec.bench.executors import Job

        s.confirmed = True
        try:
            best = s.study.best_trial
        except ValueError:  # no completed trial
            s.note = "no trial completed: nothing to confirm"
            return []
        params = {**s.fixed, **best.params}
        jobs = []
        for proto in s.confirm_protocols or [s.protocol]:
            for seed in self.grid.seeds:
                spec = self.grid.spec(s.dataset, proto, s.method, params, seed)
                key = self.key_of(spec)
                self.confirm_keys.append(key)
                jobs.append(Job(spec, key, None, tag=("confirm", s.name)))
        return jobs + self._start_students(s, params)   # its students' studies can start now

    def on_done(self, job, outcome: dict) -> list:
        """Record a trial run's outcome; returns the follow-up jobs (next seed, next trials, confirm runs)."""
        from optuna.trial import TrialState

        kind, name = job.tag[0], job.tag[1]
        if kind != "trial":
            return []
        s = next(x for x in self.studies if x.name == name)
        p = s.inflight[job.tag[2]]
        p.keys.append(job.key)
        if outcome["status"] == "failed":   # what it ran before failing counts against the budget
            from metarec.utils import machine

            p.wall_s += float(outcome.get("wall_s", 0.0))
            p.cpu_s += float(outcome.get("cpu_s", outcome.get("wall_s", 0.0)))
            p.cpu_model = outcome.get("cpu") or machine()["cpu"]
            self._tell(s, p, TrialState.FAIL, reason=outcome.get("reason", ""))
            return self._more(s)
        result = self.store.load_result(job.key)
        p.wall_s += float(result.get("wall_s", 0.0))
        p.cpu_s += float(result.get("cpu_s", result.get("wall_s", 0.0)))
        p.cpu_model = (result.get("machine") or {}).get("cpu") or p.cpu_model
        value = result.get("metrics", {}).get("valid", {}).get(self.spec_t.metric)
        if value is None or not math.isfinite(float(value)):
            self._tell(s, p, TrialState.FAIL, reason=f"no finite valid {self.spec_t.metric} (the split needs a "
                                                      f"validation stage to tune on)")
            return self._more(s)
        p.values.append(float(value))
        if result.get("pruned"):
            self._tell(s, p, TrialState.PRUNED)
            return self._more(s)
        if p.seed_index + 1 < len(self.spec_t.seeds):
            p.seed_index += 1
            return [self._trial_job(s, p)]
        self._tell(s, p, TrialState.COMPLETE, value=sum(p.values) / len(p.values))
        return self._more(s) + (self._probe_students(s) if self.probe else [])

    def _tell(self, s: StudyRun, p: PendingTrial, state, value: float | None = None, reason: str = "") -> None:
        import optuna

        trial = optuna.trial.Trial(s.study, p.trial_id)
        trial.set_user_attr("wall_s", p.wall_s)
        trial.set_user_attr("cpu_s", p.cpu_s)
        if p.cpu_model:
            trial.set_user_attr("cpu_model", p.cpu_model)
        trial.set_user_attr("runs", p.keys)
        trial.set_user_attr("seed_values", p.values)
        if reason:
            trial.set_user_attr("reason", reason[:500])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            s.study.tell(p.number, values=value if state == optuna.trial.TrialState.COMPLETE else None,
                         state=state)
        del s.inflight[p.number]

    # ---- tables --------------------------------------------------------------------------------------------
    def trials_table(self) -> pd.DataFrame:
        rows = []
        for s in self.studies:
            best_number = None
            try:
                best_number = s.study.best_trial.number
            except ValueError:
                pass
            for t in s.study.get_trials(deepcopy=False):
                rows.append({"study": s.name, "dataset": s.dataset["name"], "protocol": s.protocol["name"],
                             "protocol_params": json.dumps(s.protocol["params"], sort_keys=True),
                             "method": s.method, "number": t.number, "state": t.state.name,
                             "value": t.value if t.value is not None else float("nan"),
                             "params": json.dumps({**s.fixed, **t.params}, sort_keys=True, default=str),
                             "searched": json.dumps(t.params, sort_keys=True, default=str),
                             "wall_s": float(t.user_attrs.get("wall_s", float("nan"))),
                             "cpu_s": float(t.user_attrs.get("cpu_s", float("nan"))),
                             "selected": t.number == best_number, "metric": self.spec_t.metric,
                             "adopted_from": s.study.user_attrs.get("adopted_from", ""),
                             "direction": self.direction, "reason": t.user_attrs.get("reason", ""),
                             "space": json.dumps({k: v.describe() for k, v in s.space.items()}, sort_keys=True)})
        cols = ["study", "dataset", "protocol", "protocol_params", "method", "number", "state", "value", "params",
                "searched", "wall_s", "cpu_s", "selected", "metric", "adopted_from", "direction", "reason",
                "space"]
        return pd.DataFrame(rows, columns=cols)
