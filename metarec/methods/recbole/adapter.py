"""RecBole 1.2.1 models as metarec methods: trained on metarec's persisted split, scored by metarec's evaluator.

fit(split):
  1. The split is written as RecBole *benchmark* atomic files under ``<workdir>/recbole/data/<name>/``:
     ``<name>.train.inter``, ``.valid.inter``, ``.test.inter`` and an ``<name>.item`` file listing every one of the
     split's ``n_items`` items (so RecBole knows every item, trained on or not). Tokens are metarec's ids as text.
       general     user_id, item_id                           one row per interaction of the frame
       sequential  user_id, item_id_list (token_seq), item_id train: every prefix of a user's train sequence ->
                                                                  next item (last MAX_ITEM_LIST_LENGTH items);
                                                                  valid: the train sequence -> valid item;
                                                                  test: train + valid sequence -> test item
       context     user_id, item_id, label (float)            impressions: train_impressions / valid / test
                                                                  candidate rows; ranking protocols: positives only
                                                                  (RecBole samples one negative per positive).
                                                                  ``.item`` / ``.user`` list every item / user with
                                                                  their category/genres and gender/occupation/age
  2. RecBole runs with ``benchmark_filename: [train, valid, test]``, its own data loaders, trainer and early stopping
     on ``valid_metric`` (NDCG@10; AUC for context-aware models on impressions), then evaluates its best checkpoint
     on the test file.
     Everything it writes (checkpoints, log, tensorboard) goes under ``<workdir>/recbole/``: the process changes into
     that folder while RecBole runs (RecBole's tensorboard writer uses a path relative to the working directory).
     RecBole's own best-valid and test metrics are kept in ``recbole_valid_result`` / ``recbole_test_result``.
score(users): RecBole's ``full_sort_predict`` for the users' RecBole ids; the columns are re-ordered from RecBole's
  item ids (0 = padding, then tokens in order of first appearance) to metarec's item order via
  ``dataset.field2token_id``, so the result is ``[len(users), split.n_items]``. Models without full_sort_predict
  (NeuMF) predict every (user, item) pair, as RecBole's trainer does for them. Context-aware models score
  (user, item) pairs with ``predict`` (``score_pairs``); their ``score`` predicts every item for each user.
  Users RecBole never saw (no row in any of the three files) and, for sequence models, users with an empty history
  get the training-popularity row (train counts) and are counted in ``unknown_users_scored``.

Sequence models read a user's history at scoring time from ``split.known(stage)`` in order (valid: train; test:
train + valid), exactly the sequences written to the valid/test files. The stage is the one the
``metarec.eval.Evaluator`` sets (``Method.set_stage``) around every evaluation; outside it, 'test'.

All calls into RecBole run inside ``metarec.compat.recbole_runtime`` (see there for the shims).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import yaml

from metarec.data.schema import ITEM, LABEL, USER
from metarec.errors import ConfigError
from metarec.methods.base import Method, as_user_tensor

#: RecBole model -> kind. The registry names are ``recbole:<Model>``.
MODELS: dict[str, str] = {
    "Pop": "general", "ItemKNN": "general", "BPR": "general", "NeuMF": "general", "LightGCN": "general",
    "MultiVAE": "general",
    "GRU4Rec": "sequential", "SASRec": "sequential", "BERT4Rec": "sequential",
    "FM": "context", "DeepFM": "context", "WideDeep": "context",
}
#: protocols each kind runs on by default (a grid picks these) and the ones it accepts; sequence models also accept
#: any split whose meta says ``ordered``. Context-aware models: labelled impressions (AUC), or, on ranking
#: protocols, RecBole's usual implicit set-up (one sampled negative per positive, full ranking via ``predict``).
KIND_PROTOCOLS = {"general": ("general", "given", "temporal"), "sequential": ("sequential",),
                  "context": ("impressions", "general", "given", "temporal")}
ACCEPTED_PROTOCOLS = {**KIND_PROTOCOLS, "general": ("general", "given", "temporal", "sequential")}
#: each model's defaults and search space, shipped as package data (metarec/methods/recbole/configs/<Model>.yaml)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

UID, IID, SEQ, SEQ_LEN = "user_id", "item_id", "item_id_list", "item_length"
#: side information written for context-aware models (list-valued columns become token_seq fields)
ITEM_FEATURES = ("category", "subcategory", "genres")
USER_FEATURES = ("gender", "occupation", "age")
#: context-aware models on a ranking protocol: these replace the (impression-oriented) YAML defaults
CONTEXT_RANKING = {"train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}, "valid_metric": "NDCG@10"}
RANKING_METRICS = ["Recall", "MRR", "NDCG", "Hit", "Precision"]
RANKING_TOPK = [10, 20]

#: parameters every RecBole method accepts (besides its model's own, from configs/<Model>.yaml).
#: RecBole config keys pass through unchanged; ``device``, ``show_progress``, ``verbose`` and ``config`` are ours.
COMMON_DEFAULTS: dict[str, Any] = {
    "epochs": 300,
    "stopping_step": 10,
    "eval_step": 1,
    "learning_rate": 0.001,
    "train_batch_size": 2048,
    "eval_batch_size": 4096,
    "weight_decay": 0.0,
    "valid_metric": "NDCG@10",
    "device": "cpu",           # 'cuda', 'cuda:0', ... : RecBole's device (CPU is the reproducible default)
    "show_progress": None,     # None: RecBole's progress bars only when stderr is a terminal
    "verbose": False,          # also echo RecBole's log to stderr (it always goes to <workdir>/recbole/log/)
    "config": None,            # dict of further RecBole config keys, passed through as is
}
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "general": {"eval_batch_size": 4096000},      # full-sort batches hold eval_batch_size // n_items users
    "sequential": {"MAX_ITEM_LIST_LENGTH": 50, "eval_batch_size": 2048},
    "context": {"valid_metric": "AUC", "eval_batch_size": 40960},
}
OURS = ("device", "show_progress", "verbose", "config")


def load_model_yaml(model: str, config_dir: Path | None = None) -> dict[str, Any]:
    """``configs/<Model>.yaml``: {'params': {...}, 'search': {...}, ...}. A missing or malformed file is an error
    naming it: a RecBole model silently running on RecBole's own defaults would not be the model the docs describe."""
    path = (config_dir or CONFIG_DIR) / f"{model}.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: RecBole config for {model} not found (every registered RecBole model ships one)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML") from None
    if not isinstance(data, dict) or not isinstance(data.get("params", {}), dict) \
            or not isinstance(data.get("search", {}) or {}, dict):
        raise ConfigError(f"{path}: expected a mapping with 'params' and 'search' mappings")
    return data


def search_space(model: str) -> dict[str, Any]:
    """The declared search space of ``recbole:<model>`` (its YAML's ``search:`` block, raw)."""
    return dict(load_model_yaml(model).get("search") or {})


# ---------------------------------------------------------------------------------------------------------------
# atomic files
# ---------------------------------------------------------------------------------------------------------------
def dataset_token(split) -> str:
    """RecBole dataset name for a split. Never a name RecBole special-cases (it redirects 'ml-100k' to its own copy)."""
    return "mr_" + re.sub(r"[^A-Za-z0-9_]", "_", str(split.dataset))


def _tokens(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64).astype(str)


def _write_table(path: Path, header: list[str], columns: list[np.ndarray]) -> int:
    n = len(columns[0]) if columns else 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(header) + "\n")
        if n:
            body = columns[0].astype(object)
            for col in columns[1:]:
                body = body + "\t" + col.astype(object)
            f.write("\n".join(body.tolist()) + "\n")
    return n


def _clean_token(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return re.sub(r"\s+", "_", str(v).strip())


def _feature_column(values: pd.Series) -> tuple[str, np.ndarray]:
    """A side-information column as RecBole text: ('token', one token per row; missing -> 'none') or, for
    list-valued columns, ('token_seq', space-separated tokens; missing -> empty)."""
    vals = values.tolist()
    if any(isinstance(v, (list, tuple, np.ndarray)) for v in vals):
        out = [" ".join(t for t in map(_clean_token, v) if t) if isinstance(v, (list, tuple, np.ndarray)) else
               _clean_token(v) for v in vals]
        return "token_seq", np.asarray(out, dtype=object)
    out = [_clean_token(v) or "none" for v in vals]
    return "token", np.asarray(out, dtype=object)


def _features(frame: pd.DataFrame | None, n: int, names) -> list[tuple[str, str, np.ndarray]]:
    if frame is None or len(frame) != n:
        return []
    frame = frame.reset_index(drop=True)
    return [(c, *_feature_column(frame[c])) for c in names if c in frame.columns]


def _user_sequences(frame: pd.DataFrame) -> dict[int, np.ndarray]:
    """user -> items in frame order (frames of ordered splits are chronological within each user)."""
    if not len(frame):
        return {}
    users = frame[USER].to_numpy(np.int64)
    items = frame[ITEM].to_numpy(np.int64)
    order = np.argsort(users, kind="stable")
    u, it = users[order], items[order]
    starts = np.r_[0, np.flatnonzero(np.diff(u)) + 1]
    ends = np.r_[starts[1:], len(u)]
    return {int(u[s]): it[s:e] for s, e in zip(starts, ends)}


def _seq_text(items: np.ndarray, max_len: int) -> str:
    return " ".join(map(str, items[-max_len:].tolist()))


def write_atomic_files(split, kind: str, folder: Path, name: str, max_len: int = 50) -> dict[str, int]:
    """Write the split as RecBole benchmark files into ``folder``; returns rows per file."""
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    all_items = np.arange(split.n_items)
    if kind == "general":
        for stage in ("train", "valid", "test"):
            f = split.frames[stage]
            rows[stage] = _write_table(folder / f"{name}.{stage}.inter", [f"{UID}:token", f"{IID}:token"],
                                       [_tokens(f[USER]), _tokens(f[ITEM])])
        rows["item"] = _write_table(folder / f"{name}.item", [f"{IID}:token"], [_tokens(all_items)])
    elif kind == "sequential":
        header = [f"{UID}:token", f"{SEQ}:token_seq", f"{IID}:token"]
        train_seq = _user_sequences(split.train)
        us, hs, ts = [], [], []
        for u, seq in train_seq.items():
            for j in range(1, len(seq)):
                us.append(u)
                hs.append(_seq_text(seq[max(0, j - max_len):j], max_len))
                ts.append(seq[j])
        rows["train"] = _write_table(folder / f"{name}.train.inter", header,
                                     [_tokens(us), np.asarray(hs, dtype=object), _tokens(ts)])
        valid_seq = _user_sequences(split.valid)
        for stage in ("valid", "test"):
            f = split.frames[stage]
            us, hs, ts = [], [], []
            for u, i in zip(f[USER].to_numpy(np.int64), f[ITEM].to_numpy(np.int64)):
                hist = train_seq.get(int(u), np.zeros(0, np.int64))
                if stage == "test":
                    hist = np.r_[hist, valid_seq.get(int(u), np.zeros(0, np.int64))]
                if not len(hist):
                    continue  # RecBole cannot encode an empty sequence; metarec scores such users by popularity
                us.append(u)
                hs.append(_seq_text(hist, max_len))
                ts.append(i)
            if not us:  # RecBole cannot read a token_seq file without rows
                raise ConfigError(f"sequential RecBole models need {stage} rows with a history; the split's {stage} "
                                  f"frame has none (use the 'sequential' protocol)")
            rows[stage] = _write_table(folder / f"{name}.{stage}.inter", header,
                                       [_tokens(us), np.asarray(hs, dtype=object), _tokens(ts)])
        rows["item"] = _write_table(folder / f"{name}.item", [f"{IID}:token"], [_tokens(all_items)])
    elif kind == "context":
        if split.is_impressions:  # labelled candidate rows
            header = [f"{UID}:token", f"{IID}:token", f"{LABEL}:float"]
            for stage, frame in (("train", "train_impressions"), ("valid", "valid"), ("test", "test")):
                f = split.frames[frame]
                if LABEL not in f.columns:
                    raise ConfigError(f"context-aware RecBole models need labelled rows; split frame {frame!r} has "
                                      f"no {LABEL!r} column")
                rows[stage] = _write_table(folder / f"{name}.{stage}.inter", header,
                                           [_tokens(f[USER]), _tokens(f[ITEM]),
                                            f[LABEL].to_numpy().astype(np.float64).astype(str)])
        else:  # positives only: RecBole samples the negatives (and labels) itself
            for stage in ("train", "valid", "test"):
                f = split.frames[stage]
                rows[stage] = _write_table(folder / f"{name}.{stage}.inter", [f"{UID}:token", f"{IID}:token"],
                                           [_tokens(f[USER]), _tokens(f[ITEM])])
        for source, ids, field, feats in (("item", all_items, IID, _features(split.item_features, split.n_items,
                                                                               ITEM_FEATURES)),
                                          ("user", np.arange(split.n_users), UID,
                                           _features(split.user_features, split.n_users, USER_FEATURES))):
            rows[source] = _write_table(folder / f"{name}.{source}",
                                        [f"{field}:token"] + [f"{c}:{t}" for c, t, _ in feats],
                                        [_tokens(ids)] + [v for _, _, v in feats])
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return rows


# ---------------------------------------------------------------------------------------------------------------
# logging / working folder
# ---------------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def recbole_session(root: Path, model: str, verbose: bool = False):
    """RecBole's log goes to ``root/log/<model>-<time>.log`` (and stderr if ``verbose``); the working directory is
    ``root`` while RecBole runs. Everything is undone on exit, also after an exception."""
    from recbole.utils.logger import RemoveColorFilter

    log_dir = root / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    fh = logging.FileHandler(path)
    fh.setFormatter(logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s", "%a %d %b %Y %H:%M:%S"))
    fh.addFilter(RemoveColorFilter())
    handlers = [fh]
    if verbose:
        sh = logging.StreamHandler(sys.stderr)
        sh.addFilter(RemoveColorFilter())
        handlers.append(sh)
    logger = logging.getLogger()
    old_level = logger.level
    for h in handlers:
        logger.addHandler(h)
    logger.setLevel(logging.INFO)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        yield path
    finally:
        os.chdir(cwd)
        for h in handlers:
            logger.removeHandler(h)
        fh.close()
        logger.setLevel(old_level)


# ---------------------------------------------------------------------------------------------------------------
# the method
# ---------------------------------------------------------------------------------------------------------------
class _Pruned(Exception):
    """Raised from RecBole's per-validation callback to stop its training loop (pruned tuning trial)."""


class RecBoleMethod(Method):
    """A RecBole model trained by RecBole's trainer on the split's benchmark files."""

    model_name: ClassVar[str] = ""
    kind: ClassVar[str] = "general"

    def __init__(self, **params):
        if isinstance(params.get("config"), str):  # --param config='{...}' arrives as YAML text
            params["config"] = yaml.safe_load(params["config"])
        super().__init__(**params)
        if self.params["config"] is not None and not isinstance(self.params["config"], dict):
            raise ConfigError(f"method {self.name!r}: 'config' must be a mapping of RecBole config keys")
        self._model = self._dataset = None
        self.recbole_valid_result: dict[str, float] = {}
        self.recbole_test_result: dict[str, float] = {}
        self.unknown_users_scored = 0

    # ---- configuration ------------------------------------------------------------------------------------------
    def _config_dict(self, split, seed: int, root: Path, name: str) -> dict[str, Any]:
        p = dict(self.params)
        extra = p.pop("config") or {}
        show = p.pop("show_progress")
        device = str(p.pop("device"))
        p.pop("verbose")
        cfg: dict[str, Any] = {
            "data_path": str(root / "data"),
            "checkpoint_dir": str(root / "saved"),
            "benchmark_filename": ["train", "valid", "test"],
            "USER_ID_FIELD": UID, "ITEM_ID_FIELD": IID,
            "seed": int(seed), "reproducibility": True,
            "show_progress": bool(sys.stderr.isatty()) if show is None else bool(show),
            "device": device, "gpu_id": "", "worker": 0,
            "state": "INFO", "metric_decimal_place": 10,
            "save_dataset": False, "save_dataloaders": False, "log_wandb": False,
        }
        if self.kind == "general":
            cfg.update({"load_col": {"inter": [UID, IID], "item": [IID]},
                        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO",
                                      "mode": "full"},
                        "metrics": RANKING_METRICS, "topk": RANKING_TOPK})
        elif self.kind == "sequential":
            cfg.update({"load_col": {"inter": [UID, SEQ, IID], "item": [IID]}, "alias_of_item_id": [SEQ],
                        "eval_args": {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO",
                                      "mode": "full"},
                        "metrics": RANKING_METRICS, "topk": RANKING_TOPK, "repeatable": True})
        else:
            load = {"item": [IID] + [c for c, _, _ in _features(split.item_features, split.n_items, ITEM_FEATURES)],
                    "user": [UID] + [c for c, _, _ in _features(split.user_features, split.n_users, USER_FEATURES)]}
            cfg.update({"LABEL_FIELD": LABEL, "threshold": None})
            if split.is_impressions:
                cfg.update({"load_col": {"inter": [UID, IID, LABEL], **load},
                            "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": None, "order": "RO",
                                          "mode": "labeled"},
                            "metrics": ["AUC", "LogLoss"]})
            else:
                cfg.update({"load_col": {"inter": [UID, IID], **load},
                            "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO",
                                          "mode": "full"},
                            "metrics": RANKING_METRICS, "topk": RANKING_TOPK})
                for key, value in CONTEXT_RANKING.items():  # unless the caller chose otherwise
                    if p.get(key) == type(self).defaults.get(key):
                        p[key] = value
        cfg.update(p)
        cfg.update(extra)
        return cfg

    def _check_split(self, split) -> None:
        accepted = ACCEPTED_PROTOCOLS[self.kind]
        ok = split.protocol in accepted or (self.kind == "sequential" and split.meta.get("ordered"))
        if not ok:
            raise ConfigError(f"method {self.name!r} ({self.kind}) does not support the {split.protocol!r} protocol; "
                              f"use one of: {', '.join(accepted)}")
        if not len(split.train):
            raise ConfigError(f"method {self.name!r}: empty train frame")

    # ---- fit ----------------------------------------------------------------------------------------------------
    def fit(self, split, *, seed: int = 0, workdir: str | Path | None = None) -> "RecBoleMethod":
        from metarec.compat import recbole_runtime

        self._check_split(split)
        self.n_users, self.n_items = split.n_users, split.n_items
        self._split = split
        tmp = None
        if workdir is None:
            tmp = Path(tempfile.mkdtemp(prefix=f"metarec-recbole-{self.model_name}-"))
            root = tmp
        else:
            root = Path(workdir).resolve() / "recbole"
        root.mkdir(parents=True, exist_ok=True)
        name = dataset_token(split)
        max_len = int(self.params.get("MAX_ITEM_LIST_LENGTH") or 50)
        t0 = time.perf_counter()
        self.file_rows = write_atomic_files(split, self.kind, root / "data" / name, name, max_len)
        self.timings = {"write_files_s": time.perf_counter() - t0}
        cfg = self._config_dict(split, seed, root, name)
        try:
            with recbole_runtime(str(self.params["device"])), recbole_session(root, self.model_name,
                                                                               bool(self.params["verbose"])) as log:
                self.log_file = None if tmp else log
                self._run(cfg, name)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        self._build_maps(split)
        return self

    def _run(self, cfg: dict, name: str) -> None:
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.utils import get_model, get_trainer, init_seed

        t0 = time.perf_counter()
        config = Config(model=self.model_name, dataset=name, config_dict=cfg)
        init_seed(config["seed"], config["reproducibility"])
        logging.getLogger().info(config)
        dataset = create_dataset(config)
        train_data, valid_data, test_data = data_preparation(config, dataset)
        self.timings["load_s"] = time.perf_counter() - t0
        init_seed(config["seed"], config["reproducibility"])
        model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        self.epoch_times: list[float] = []
        self.valid_history: list[tuple[int, float]] = []
        orig_train, orig_valid = trainer._train_epoch, trainer._valid_epoch
        self.valid_times: list[float] = []

        def timed_train(*a, **k):
            t = time.perf_counter()
            out = orig_train(*a, **k)
            self.epoch_times.append(time.perf_counter() - t)
            return out

        def timed_valid(*a, **k):
            t = time.perf_counter()
            out = orig_valid(*a, **k)
            self.valid_times.append(time.perf_counter() - t)
            return out

        trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
        show = bool(config["show_progress"])
        t0 = time.perf_counter()
        self.valid_curve: list[tuple[int, float, float]] = []   # (epoch, valid score, seconds since training began)
        train_t0 = time.perf_counter()

        def after_validation(epoch: int, score: float) -> None:
            self.valid_history.append((epoch, float(score)))
            self.valid_curve.append((epoch, float(score), time.perf_counter() - train_t0))
            if self.report(epoch, float(score)):  # a tuner's pruner stopped this trial
                raise _Pruned

        try:
            try:
                best_score, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=show,
                                                     callback_fn=after_validation)
            except _Pruned:  # RecBole saved the best checkpoint before calling back: finish from it as usual
                best_score, best_valid = trainer.best_valid_score, trainer.best_valid_result
            self.timings["train_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=show) if len(test_data) \
                else None
            self.timings["recbole_test_s"] = time.perf_counter() - t0
        finally:
            trainer.tensorboard.close()
        logging.getLogger().info(f"best valid: {best_valid}\ntest result: {test_result}")
        self.recbole_valid_result = {k: float(v) for k, v in (best_valid or {}).items()}
        self.recbole_test_result = {k: float(v) for k, v in (test_result or {}).items()}
        self.best_valid = float(best_score) if best_valid is not None else None
        self.epochs_trained = len(self.epoch_times)
        if self.valid_history:
            bigger = config["valid_metric_bigger"]
            vals = np.array([v for _, v in self.valid_history])
            self.best_epoch = int(self.valid_history[int(np.argmax(vals) if bigger else np.argmin(vals))][0])
        else:
            self.best_epoch = self.epochs_trained - 1
        self.valid_metric_name = str(config["valid_metric"])
        self.checkpoint = str(trainer.saved_model_file)
        self.recbole_config = {k: config[k] for k in ("model", "dataset", "learning_rate", "train_batch_size",
                                                       "epochs", "stopping_step", "valid_metric", "seed")}
        model.eval()
        self._model, self._dataset, self._config = model, dataset, config
        self._device = config["device"]

    # ---- id maps ------------------------------------------------------------------------------------------------
    def _build_maps(self, split) -> None:
        ds = self._dataset
        item_t2i = ds.field2token_id[IID]
        missing = [i for i in range(split.n_items) if str(i) not in item_t2i]
        if missing:  # cannot happen: the .item file lists every item
            raise RuntimeError(f"RecBole lost {len(missing)} item(s), e.g. {missing[:5]}")
        self._item_cols = torch.as_tensor([item_t2i[str(i)] for i in range(split.n_items)], dtype=torch.long)
        self._n_rb_items = len(ds.field2id_token[IID])
        user_rb = np.full(split.n_users, -1, dtype=np.int64)
        for tok, idx in ds.field2token_id[UID].items():
            if tok != "[PAD]":
                user_rb[int(tok)] = idx
        self._user_rb = torch.from_numpy(user_rb)
        counts = np.bincount(split.train[ITEM].to_numpy(np.int64), minlength=split.n_items).astype(np.float32)
        self._popularity = torch.from_numpy(counts)
        self._histories: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _history(self, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        """[n_users, L] RecBole item ids (left-aligned, 0-padded; the last L known items) and [n_users] lengths."""
        if stage not in self._histories:
            width = int(self._dataset.field2seqlen[SEQ])
            seq = np.zeros((self.n_users, width), dtype=np.int64)
            length = np.zeros(self.n_users, dtype=np.int64)
            item_cols = self._item_cols.numpy()
            for u, items in _user_sequences(self._split.known(stage)).items():
                last = item_cols[items[-width:]]
                seq[u, :len(last)] = last
                length[u] = len(last)
            self._histories[stage] = (torch.from_numpy(seq), torch.from_numpy(length))
        return self._histories[stage]

    # ---- scoring ------------------------------------------------------------------------------------------------
    def _require_fit(self):
        if self._model is None:
            raise RuntimeError(f"{self.name}: call fit() before scoring")

    def score(self, users) -> torch.Tensor:
        self._require_fit()
        from metarec.compat import recbole_runtime
        from recbole.data.interaction import Interaction

        users = as_user_tensor(users)
        out = self._popularity.unsqueeze(0).repeat(len(users), 1)
        rb = self._user_rb[users]
        ok = rb >= 0
        if self.kind == "sequential":
            stage = self.stage or "test"   # set by the evaluator (Method.set_stage)
            seq, length = self._history(stage)
            ok &= length[users] > 0
        self.unknown_users_scored += int((~ok).sum())
        rows = torch.nonzero(ok, as_tuple=True)[0]
        if not len(rows):
            return out
        dev = self._device
        with recbole_runtime(str(dev)), torch.no_grad():
            s = None
            if self.kind != "context":
                fields = {UID: rb[rows]}
                if self.kind == "sequential":
                    fields[SEQ] = seq[users[rows]]
                    fields[SEQ_LEN] = length[users[rows]]
                try:
                    s = self._model.full_sort_predict(Interaction(fields).to(dev)).view(len(rows), self._n_rb_items)
                    s = s[:, self._item_cols.to(s.device)].float().cpu()
                except NotImplementedError:  # e.g. NeuMF: as RecBole's trainer, predict every (user, item) pair
                    s = None
            if s is None:
                n = len(rows)
                s = self._predict_pairs(rb[rows].repeat_interleave(self.n_items), self._item_cols.repeat(n))
                s = s.view(n, self.n_items).float().cpu()
        out[rows] = s
        return out

    def _predict_pairs(self, rb_users: torch.Tensor, rb_items: torch.Tensor) -> torch.Tensor:
        from recbole.data.interaction import Interaction

        chunk = min(int(self.params["eval_batch_size"]), 1 << 18)  # pairs per predict call (memory bound)
        res = []
        for lo in range(0, len(rb_users), chunk):
            inter = Interaction({UID: rb_users[lo:lo + chunk], IID: rb_items[lo:lo + chunk]})
            inter = self._dataset.join(inter).to(self._device)
            res.append(self._model.predict(inter).reshape(-1))
        return torch.cat(res) if res else torch.zeros(0)

    def score_pairs(self, users, items) -> torch.Tensor:
        if self.kind != "context":
            return super().score_pairs(users, items)
        self._require_fit()
        from metarec.compat import recbole_runtime

        users, items = as_user_tensor(users), as_user_tensor(items)
        rb_u = self._user_rb[users]
        out = self._popularity[items].clone()
        ok = rb_u >= 0
        self.unknown_users_scored += int((~ok).sum())
        if ok.any():
            with recbole_runtime(str(self._device)), torch.no_grad():
                out[ok] = self._predict_pairs(rb_u[ok], self._item_cols[items[ok]]).float().cpu()
        return out

    def num_parameters(self) -> int:
        if self._model is None:
            return 0
        return int(sum(p.numel() for p in self._model.parameters() if p.requires_grad))


def make_method(model: str, kind: str) -> type[RecBoleMethod]:
    """The Method subclass for one RecBole model; defaults = common + kind + configs/<Model>.yaml params."""
    spec = load_model_yaml(model)
    defaults = {**COMMON_DEFAULTS, **KIND_DEFAULTS[kind], **(spec.get("params") or {})}
    doc = spec.get("description") or f"RecBole {model} ({kind}), trained by RecBole on the metarec split"
    return type(f"RecBole{model}", (RecBoleMethod,), {
        "__doc__": doc, "model_name": model, "kind": kind, "defaults": defaults,
        "protocols": KIND_PROTOCOLS[kind], "search_space": dict(spec.get("search") or {}),
        "__module__": __name__,
    })
