"""Run folders and the tidy results table.

    <home>/grids/<grid>/runs/<key>/        config.json, result.json, per_user_<stage>.parquet, log.txt, work/
    <home>/grids/<grid>/failed/<key>.json  reason + traceback of a failed run
    <home>/grids/<grid>/results.{parquet,csv}  tidy: one row per run x stage x metric

A run folder appears only complete: it is written under a temporary name and renamed in one step, so a killed grid
leaves either a finished run or nothing (stale temporaries are removed on the next start).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from metarec.errors import DataError
from metarec.utils import atomic_write_json, atomic_write_text, home

RESULT = "result.json"


def run_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RunStore:
    def __init__(self, grid_name: str, root: Path | None = None):
        self.root = (root or home()) / "grids" / grid_name
        self.runs = self.root / "runs"
        self.failed = self.root / "failed"

    def prepare(self) -> None:
        self.runs.mkdir(parents=True, exist_ok=True)
        self.failed.mkdir(parents=True, exist_ok=True)
        for stale in self.runs.glob(".tmp-*"):  # a run killed mid-write: its half folder is worthless
            if not _writer_alive(stale.name):    # (another runner on this grid may be writing it right now)
                shutil.rmtree(stale, ignore_errors=True)

    def is_done(self, key: str) -> bool:
        return (self.runs / key / RESULT).is_file()

    def failure(self, key: str) -> dict | None:
        p = self.failed / f"{key}.json"
        return read_json(p, "delete it to forget the failure (the run is then retried)") if p.is_file() else None

    def temp_folder(self, key: str) -> Path:
        tmp = self.runs / f".tmp-{key}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, key: str, tmp: Path) -> Path:
        final = self.runs / key
        if final.exists():  # another executor finished the same run first: results are identical by key
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, final)
        (self.failed / f"{key}.json").unlink(missing_ok=True)
        return final

    def replace_run(self, key: str, tmp: Path) -> Path:
        """Put the finished run folder ``tmp`` in place of run ``key`` (which may exist). The old folder is moved
        aside, the new one renamed in, then the old one deleted: a crash in between leaves the old run beside an
        absent key (the grid retrains it), never a half-written run."""
        final = self.runs / key
        old = self.runs / f".old-{key}-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        (self.failed / f"{key}.json").unlink(missing_ok=True)
        return final

    def record_failure(self, key: str, info: dict) -> None:
        atomic_write_json(self.failed / f"{key}.json", info)

    def load_result(self, key: str) -> dict:
        folder = self.runs / key
        r = read_json(folder / RESULT, f"delete {folder} and rerun the grid to recompute this run")
        missing = [k for k in RESULT_KEYS if k not in r]
        if missing:
            raise DataError(f"run result lacks {', '.join(missing)}: delete {folder} and rerun the grid to "
                            "recompute this run", folder / RESULT)
        return r

    def per_user(self, key: str, stage: str) -> pd.DataFrame | None:
        p = self.runs / key / f"per_user_{stage}.parquet"
        return read_parquet(p, f"delete {p.parent} and rerun the grid to recompute this run") if p.is_file() \
            else None


#: what every finished run's result.json holds (the tidy table and the report read them)
RESULT_KEYS = ("dataset", "protocol", "protocol_params", "method", "config_params", "seed", "num_parameters",
               "timings", "metrics")


def read_json(path: Path, recover: str) -> Any:
    """A JSON file the suite wrote, or one DataError naming it and saying how to recover."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"damaged JSON ({e.msg}, truncated or edited?): {recover}", path, e.lineno) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"unreadable ({e}): {recover}", path) from None


#: the columns every tidy results table has (``tidy_table``)
TIDY_COLUMNS = ("run", "dataset", "protocol", "protocol_params", "method", "params", "seed", "stage", "metric",
                "value")


def read_parquet(path: Path, recover: str, columns=()) -> pd.DataFrame:
    """A Parquet table the suite wrote, or one DataError naming it and saying how to recover (also when it lacks
    one of ``columns``)."""
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise DataError(f"damaged Parquet file ({type(e).__name__}: {str(e)[:120]}): {recover}", path) from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"table lacks column(s) {', '.join(missing)}: {recover}", path)
    return df


def write_run(tmp: Path, config: dict, result: dict, per_user: dict[str, pd.DataFrame]) -> None:
    """Fill a run's temporary folder (its log.txt is already there); the caller then commits it."""
    atomic_write_json(tmp / "config.json", config)
    for stage, frame in per_user.items():
        frame.reset_index().to_parquet(tmp / f"per_user_{stage}.parquet", index=False)
    atomic_write_json(tmp / RESULT, result)  # written last: its presence means the run is complete


def tidy_table(store: RunStore, keys: list[str]) -> pd.DataFrame:
    """One row per (run, stage, metric) for the given run keys (finished ones)."""
    rows = []
    for key in keys:
        if not store.is_done(key):
            continue
        r = store.load_result(key)
        base = {"run": key, "dataset": r["dataset"], "protocol": r["protocol"],
                "protocol_params": json.dumps(r["protocol_params"], sort_keys=True), "method": r["method"],
                "family": r.get("family", ""), "params": json.dumps(r["config_params"], sort_keys=True),
                "seed": r["seed"], "num_parameters": r["num_parameters"], "fit_s": r["timings"]["fit_s"],
                "score_s": r["timings"].get("score_test_s", float("nan")),
                "infer_s": r["timings"].get("infer_test_s", float("nan")), "eval_mode": r.get("eval_mode", "full"),
                # cold start: milliseconds of adaptation per test user (support set -> scores), NaN where none
                "adapt_ms": (1e3 * r["timings"]["adapt_test_s"] / r["test_users"]
                             if r["timings"].get("adapt_test_s") and r.get("test_users") else float("nan")),
                # item-text encoder throughput (items/s encoding the dataset's texts), NaN without one
                "encode_items_per_s": float(r.get("text_info", {}).get("items_per_s") or float("nan")),
                "encoder_parameters": float(r.get("text_info", {}).get("parameters") or float("nan")),
                # the CPU that ran it: timings (fit, latency, throughput) compare only between runs of one model
                "cpu": (r.get("machine") or {}).get("cpu", "unknown")}
        for stage, metrics in r["metrics"].items():
            for metric, value in metrics.items():
                rows.append({**base, "stage": stage, "metric": metric, "value": value})
    cols = ["run", "dataset", "protocol", "protocol_params", "method", "family", "params", "seed", "stage", "metric", "value",
            "num_parameters", "fit_s", "score_s", "infer_s", "eval_mode", "adapt_ms", "encode_items_per_s",
            "encoder_parameters", "cpu"]
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values(["dataset", "protocol", "method", "params", "seed", "stage", "metric"],
                          kind="stable").reset_index(drop=True)


def lower_is_better(metric: str) -> bool:
    """Error-type metrics are minimised; the registry says which (task prefixes such as ``rating/`` allowed)."""
    from metarec.eval.registry import lower_is_better as registered

    return registered(metric)


def select_configs(tidy: pd.DataFrame, valid_metric: str) -> pd.DataFrame:
    """Model selection on the validation stage: per (dataset, protocol, method) the parameter set with the best
    mean valid metric over seeds. Adds a boolean ``selected`` column. A cell with one configuration is selected
    trivially; one with several and no validation stage is an error (never a fallback to test)."""
    tidy = tidy.copy()
    tidy["selected"] = False
    if tidy.empty:
        return tidy
    val = tidy[(tidy.stage == "valid") & (tidy.metric == valid_metric)]
    cell = ["dataset", "protocol", "protocol_params", "method"]
    # never select on test: a cell with several configurations and no validation values cannot be selected
    has_valid = set(map(tuple, tidy[tidy.stage == "valid"][cell].drop_duplicates().to_numpy()))
    for key, params in tidy.groupby(cell, sort=True)["params"]:
        if tuple(key) not in has_valid and params.nunique() > 1:
            from metarec.errors import ConfigError

            raise ConfigError(f"{'/'.join(map(str, key[:2]))} {key[3]}: {params.nunique()} configurations but the "
                              "split has no validation stage to select among them (selecting on test would report "
                              "the best test score as if it were chosen blind); give this method one configuration "
                              "here or use a protocol with a validation stage")
    means = val.groupby(cell + ["params"], sort=True)["value"].mean().reset_index()
    best = means.sort_values("value", ascending=lower_is_better(valid_metric), kind="stable").drop_duplicates(cell)
    chosen = set(map(tuple, best[cell + ["params"]].to_numpy()))
    # a method that does not report the validation metric (e.g. pop under valid_metric: query/mae) cannot be
    # selected on it: keep it, with its first configuration, rather than dropping it from every table
    scored = set(map(tuple, best[cell].to_numpy()))
    for key, params in tidy.groupby(cell, sort=True)["params"]:
        if tuple(key) not in scored:
            chosen.add((*key, sorted(params.unique())[0]))
    tidy["selected"] = [t in chosen for t in zip(tidy.dataset, tidy.protocol, tidy.protocol_params, tidy.method,
                                                  tidy.params)]
    return tidy


def write_table(df: pd.DataFrame, folder: Path, stem: str = "results") -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    pq, csv = folder / f"{stem}.parquet", folder / f"{stem}.csv"
    tmp = folder / f".{stem}.parquet.tmp"
    df.to_parquet(tmp, index=False)
    os.replace(tmp, pq)
    atomic_write_text(csv, df.to_csv(index=False))
    return pq, csv


def _writer_alive(temp_name: str) -> bool:
    """Whether the process that named ``.tmp-<key>-<pid>`` is still running on this machine."""
    try:
        pid = int(temp_name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # exists, owned by someone else
        return True
    return True


# ---- a grid's finished runs, committed with its results (a new machine resumes from them) ------------------------------
RUNS_FILE = "runs.jsonl.gz"


def export_runs(store: RunStore, keys: list[str], out: Path, name: str = RUNS_FILE,
                per_user_name: str | None = None) -> Path:
    """``out/<name>`` (``runs.jsonl.gz``): one line per run (key, resolved config, result). Its per-user test
    metrics are the rows of a per-user table with a ``run`` column: the report's ``per_user.parquet`` (written by
    the report), or ``out/<per_user_name>`` written here. That is all ``adopt_committed_runs`` needs to put them
    back."""
    import gzip

    lines, frames = [], []
    for key in sorted(set(keys)):
        folder = store.runs / key
        config = read_json(folder / "config.json", f"delete {folder} and rerun the grid") \
            if (folder / "config.json").is_file() else {}
        pu = store.per_user(key, "test")
        if pu is not None and per_user_name:
            frames.append(pu.assign(run=key))
        lines.append(json.dumps({"key": key, "config": config, "result": store.load_result(key),
                                 "per_user_columns": None if pu is None else list(pu.columns)},
                                sort_keys=True, default=str))
    Path(out).mkdir(parents=True, exist_ok=True)
    if per_user_name:
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({"run": []})
        tmp_pu = Path(out) / f".{per_user_name}.tmp"
        table.to_parquet(tmp_pu, index=False)
        os.replace(tmp_pu, Path(out) / per_user_name)
    path = Path(out) / name
    tmp = path.with_name(f".{name}.tmp")
    with open(tmp, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:  # mtime 0: same bytes, same file
        gz.write(("\n".join(lines) + "\n").encode())
    os.replace(tmp, path)
    return path


#: (runs file, per-user table) pairs a results folder may hold: the report's tables, and a running grid's finished
#: runs saved with its studies (``metarec report --studies-only``)
COMMITTED_RUNS = ((RUNS_FILE, "per_user.parquet"), ("runs_so_far.jsonl.gz", "per_user_so_far.parquet"))


def adopt_committed_runs(store: RunStore, results: Path) -> int:
    """Put the runs committed in ``results`` (``COMMITTED_RUNS``: written by ``metarec report``, with or without
    ``--studies-only``) back into a store that lacks them, so a grid on a new machine does not recompute its
    finished cells. A restored run has its result and its per-user test metrics (what the tables and statistics
    read), not its checkpoints or validation per-user metrics; its result says ``restored_from``. Returns how many
    were restored."""
    restored = 0
    for runs_file, per_user_file in COMMITTED_RUNS:
        restored += _restore(store, Path(results) / runs_file, Path(results) / per_user_file, results)
    return restored


def read_committed_runs(path: Path) -> list[dict]:
    """The entries (key, config, result, per_user_columns) of a committed runs file (``export_runs``); a damaged
    file or line is one DataError naming it."""
    import gzip

    try:
        with gzip.open(path, "rt") as f:
            lines = f.read().splitlines()
    except (OSError, EOFError) as e:
        raise DataError(f"damaged ({e}): rerun `metarec report` to rewrite it", path) from None
    entries = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            entry["key"], entry["config"], entry["result"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise DataError(f"not a committed run ({type(e).__name__}: {e}): rerun `metarec report` to rewrite "
                            "it", path, n) from None
        entries.append(entry)
    return entries


def _restore(store: RunStore, path: Path, per_user_path: Path, results: Path) -> int:
    if not path.is_file():
        return 0
    per_user = read_parquet(per_user_path, "rerun `metarec report` to rewrite it", ["run"]) \
        if per_user_path.is_file() else None
    restored = 0
    for entry in read_committed_runs(path):
        key, config, result = entry["key"], entry["config"], entry["result"]
        if store.is_done(key):
            continue
        frames, columns = {}, entry.get("per_user_columns")
        if per_user is not None and columns:
            mine = per_user.loc[per_user.run == key, columns]   # the run's own columns, in its order
            if len(mine):
                frames["test"] = mine.set_index(columns[0])
        tmp = store.temp_folder(key)
        write_run(tmp, config, {**result, "restored_from": str(results)}, frames)
        store.commit(key, tmp)
        restored += 1
    return restored


# ---- runs already finished elsewhere: another grid's, or this grid's under a longer metric list --------------------
#: what a run's config.json holds beside its identity (the run key hashes the identity alone)
CONFIG_EXTRAS = ("resolved_params", "threads")


def training_key(identity: dict[str, Any]) -> str:
    """What a run trains, on which split, and how it ranks: its identity without the list of metrics it reports."""
    return run_key({k: v for k, v in identity.items() if k != "metrics"})


class RunDonors:
    """Finished runs that trained exactly what a planned run trains (the same identity but for the metric list) and
    reported at least its metrics. The planned run *is* such a run restricted to its metrics (each metric is
    computed on its own from the same ranked lists), so it is copied instead of trained again: a grid that reuses
    other grids' studies (``tune.reuse``) also takes their finished confirm runs, and a grid that shortens its metric
    list keeps its finished runs.

    Sources, in order: this grid's own store, then the stores of the grids it reuses. A donor must prove what it is:
    its config.json, stripped of ``CONFIG_EXTRAS``, must hash to its folder name (an unreadable or older-layout run
    is not a donor; the planned run then simply trains)."""

    def __init__(self, sources: list[tuple[str, RunStore]]):
        self.index: dict[str, list[tuple[str, RunStore, str, frozenset]]] = {}
        for label, store in sources:
            for config_path in sorted(store.runs.glob("*/config.json")):
                key = config_path.parent.name
                if not store.is_done(key):
                    continue
                try:
                    config = json.loads(config_path.read_text())
                except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                    continue
                identity = {k: v for k, v in config.items() if k not in CONFIG_EXTRAS}
                if not isinstance(identity.get("metrics"), list) or run_key(identity) != key:
                    continue
                self.index.setdefault(training_key(identity), []).append(
                    (label, store, key, frozenset(identity["metrics"])))

    def __len__(self) -> int:
        return sum(map(len, self.index.values()))

    def adopt(self, store: RunStore, key: str, identity: dict[str, Any]) -> str | None:
        """Copy a donor into ``store`` as run ``key`` (its identity ``identity``); returns the donor's grid, or None
        when there is none."""
        want = set(identity["metrics"])
        for label, donor, donor_key, have in self.index.get(training_key(identity), []):
            if want <= have and (donor.root, donor_key) != (store.root, key):
                copy_run(donor, donor_key, store, key, identity, label)
                return label
        return None


def copy_run(src: RunStore, src_key: str, dst: RunStore, key: str, identity: dict[str, Any], label: str,
             replace: bool = False) -> Path:
    """``src``'s run ``src_key`` written into ``dst`` as run ``key`` with identity ``identity``: the metrics of
    ``src``'s list that ``identity`` does not ask for are left out of its result and per-user tables (a method's own
    task metrics, not on any list, stay); its result says ``copied_from``. Written like any run (temporary folder,
    one rename); ``replace``: in place of an existing copy (its donor was retrained)."""
    folder = src.runs / src_key
    recover = f"delete {folder} and rerun its grid"
    config = read_json(folder / "config.json", recover)
    result = src.load_result(src_key)
    drop = set(config.get("metrics", ())) - set(identity["metrics"])
    tmp = dst.temp_folder(key)
    if (folder / "log.txt").is_file():
        shutil.copyfile(folder / "log.txt", tmp / "log.txt")
    atomic_write_json(tmp / "config.json", {**identity, **{k: config[k] for k in CONFIG_EXTRAS if k in config}})
    for table in sorted(folder.glob("per_user_*.parquet")):
        frame = read_parquet(table, recover)
        frame.drop(columns=[c for c in frame.columns if c in drop]).to_parquet(tmp / table.name, index=False)
    metrics = {stage: {m: v for m, v in values.items() if m not in drop} for stage, values in result["metrics"].items()}
    atomic_write_json(tmp / RESULT, {**result, "key": key, "metrics": metrics,
                                     "copied_from": {"grid": label, "run": src_key}})
    return dst.replace_run(key, tmp) if replace else dst.commit(key, tmp)
