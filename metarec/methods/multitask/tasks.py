"""Task definitions for multi-task recommenders, built from a Split's real data.

A task is one prediction head. Each kind of task draws its training labels from the split:

    interaction   ranking  every train (user, item) pair is a positive, ranked above one uniformly sampled
                           unobserved item (fresh each epoch; BPR, as mf-bpr). The task the main evaluator ranks
                           through ``score(users)``.
    rating        regress  the train pair's explicit rating (MSE); negatives carry no rating label.
    like          binary   rating >= ``like_threshold`` (4 on MovieLens) on the rated train pairs.
    click         binary   the click label of every train impression candidate (impressions protocol, MIND).
    category      classes  the candidate news item's category, where the dataset knows it (MIND sample: ~4% of
                           the news referenced in behaviours have a category; rows without one carry no label
                           and are simply masked out of this task's loss and metrics).
    domain:<name> ranking  multi-domain: the interaction task restricted to one domain's users and items of a
                           combined dataset (``metarec.data.combine``); negatives are sampled inside that domain.

Which tasks a dataset gets by default is declared in ``DATASET_TASKS`` (first matching glob wins); a method's
``tasks`` parameter overrides it.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from metarec.data.schema import ITEM, LABEL, RATING, USER
from metarec.errors import ConfigError
from metarec.methods.classic.mf_bpr import sample_negatives

#: default task sets per dataset name (globs, first match wins); the multi-domain helper names its datasets
#: ``multidomain:...`` and gets one interaction task per domain.
DATASET_TASKS: list[tuple[str, tuple[str, ...]]] = [
    ("ml-*", ("interaction", "rating", "like")),
    ("amazon2018-multidomain", ("domains",)),   # the derived card (before the amazon2018-* glob)
    ("amazon2018-*", ("interaction", "rating")),
    ("mind-*", ("click", "category")),
    ("multidomain:*", ("domains",)),
]
RANKING, BINARY, REGRESSION, MULTICLASS = "ranking", "binary", "regression", "multiclass"
MAIN_TASKS = ("interaction", "click")  # the task scored by score()/score_pairs, in order of preference
USER_CATEGORICAL = ("gender", "occupation")
AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens-1M age groups, applied to ml-100k's raw ages


@dataclass
class Task:
    name: str
    kind: str                      # ranking | binary | regression | multiclass
    n_classes: int = 1             # output width
    classes: list[str] = field(default_factory=list)  # multiclass: class names (index = label)
    domain: int | None = None      # domain:<name> tasks: domain index


def default_tasks(split) -> list[str]:
    for pattern, names in DATASET_TASKS:
        if fnmatch.fnmatch(split.dataset, pattern):
            return list(names)
    if split.is_impressions:
        return ["click"]
    return ["interaction", "rating"] if RATING in split.train.columns else ["interaction"]


def item_categories(split) -> tuple[np.ndarray, list[str]]:
    """Per-item category index (-1 where unknown) and the sorted class names, from item_features['category']."""
    feats = split.item_features
    if feats is None or "category" not in feats.columns or len(feats) != split.n_items:
        return np.full(split.n_items, -1, dtype=np.int64), []
    raw = feats["category"].map(lambda v: v if isinstance(v, str) else "").to_numpy(dtype=object)
    classes = sorted({c for c in raw if c})
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(c, -1) for c in raw], dtype=np.int64), classes


def item_domains(split) -> tuple[np.ndarray, list[str]] | None:
    """Per-item domain index and names for a combined multi-domain split (item_features['domain'])."""
    feats = split.item_features
    if feats is None or "domain" not in feats.columns:
        return None
    names = sorted(set(feats["domain"]))
    index = {d: i for i, d in enumerate(names)}
    return feats["domain"].map(index).to_numpy(np.int64), names


def resolve_tasks(split, names, like_threshold: float) -> list[Task]:
    """Validate the requested task names against what the split's data can label."""
    names = list(names) if names else default_tasks(split)
    has_rating = RATING in split.train.columns and split.train[RATING].notna().any()
    out: list[Task] = []
    for name in names:
        if name == "interaction":
            if split.is_impressions:
                raise ConfigError("task 'interaction' is for ranking protocols; use 'click' under impressions")
            out.append(Task(name, RANKING))
        elif name in ("rating", "like"):
            if not has_rating or split.is_impressions:
                raise ConfigError(f"task {name!r} needs explicit ratings; dataset {split.dataset!r} has none")
            out.append(Task(name, REGRESSION if name == "rating" else BINARY))
        elif name == "click":
            if "train_impressions" not in split.frames:
                raise ConfigError("task 'click' needs the impressions protocol (train_impressions frame)")
            out.append(Task(name, BINARY))
        elif name == "category":
            cats, classes = item_categories(split)
            if len(classes) < 2:
                raise ConfigError(f"task 'category' needs item categories; dataset {split.dataset!r} has "
                                  f"{len(classes)} known class(es)")
            out.append(Task(name, MULTICLASS, n_classes=len(classes), classes=classes))
        elif name == "domains":
            dom = item_domains(split)
            if dom is None:
                raise ConfigError("task 'domains' needs a combined multi-domain dataset "
                                  "(metarec.methods.multitask.multidomain)")
            out += [Task(f"domain:{d}", RANKING, domain=i) for i, d in enumerate(dom[1])]
        else:
            raise ConfigError(f"unknown task {name!r}; valid: interaction, rating, like, click, category, domains")
    if len({t.name for t in out}) != len(out):
        raise ConfigError(f"task listed twice in {names}")
    if not out:
        raise ConfigError("no tasks")
    return out


def main_task(tasks: list[Task]) -> int | None:
    """Index of the task the main evaluator ranks by (None: multi-domain, every domain task ranks its items)."""
    for name in MAIN_TASKS:
        for i, t in enumerate(tasks):
            if t.name == name:
                return i
    return None


# ---- side information ------------------------------------------------------------------------------------------
@dataclass
class SideInfo:
    """Categorical side features as index tensors. ``user_fields``: [n_users, F_u] int64 (0 = unknown, so every
    table has a padding row); ``item_bags``: per item a bag of feature ids (genres: several) as a padded
    [n_items, L] int64 matrix, 0 = padding; sizes give each table's number of rows."""

    user_fields: np.ndarray
    user_sizes: list[int]
    user_names: list[str]
    item_bags: list[np.ndarray]
    item_sizes: list[int]
    item_names: list[str]


def _codes(values) -> tuple[np.ndarray, int]:
    vals = pd.Series(values).map(lambda v: v if isinstance(v, str) and v else None)
    cats = sorted(set(vals.dropna()))
    index = {c: i + 1 for i, c in enumerate(cats)}
    return vals.map(lambda v: index.get(v, 0)).to_numpy(np.int64), len(cats) + 1


def _bag(values) -> tuple[np.ndarray, int]:
    def parts(v):
        if isinstance(v, str):
            return [p for p in v.split("|") if p]
        if isinstance(v, (list, tuple, np.ndarray)):
            return [str(p) for p in v if str(p)]
        return []

    lists = [parts(v) for v in values]
    vocab = sorted({p for ps in lists for p in ps})
    index = {c: i + 1 for i, c in enumerate(vocab)}
    width = max(1, max((len(ps) for ps in lists), default=1))
    mat = np.zeros((len(lists), width), dtype=np.int64)
    for r, ps in enumerate(lists):
        mat[r, :len(ps)] = [index[p] for p in ps]
    return mat, len(vocab) + 1


def side_info(split, tasks: list[Task], use: bool = True) -> SideInfo:
    """User age (bucketed) / gender / occupation; item genres (bag), category (unless a task predicts it) and
    domain. Columns absent from the dataset are skipped."""
    ufields, usizes, unames = [], [], []
    bags, isizes, inames = [], [], []
    uf, itf = split.user_features, split.item_features
    if use and uf is not None and len(uf) == split.n_users:
        if "age" in uf.columns:
            age = pd.to_numeric(uf["age"], errors="coerce").to_numpy(float)
            code = np.where(np.isnan(age), 0, np.searchsorted(AGE_EDGES, np.nan_to_num(age), side="right") + 1)
            ufields.append(code.astype(np.int64))
            usizes.append(len(AGE_EDGES) + 2)
            unames.append("age")
        for col in USER_CATEGORICAL:
            if col in uf.columns:
                c, n = _codes(uf[col])
                ufields.append(c)
                usizes.append(n)
                unames.append(col)
    predicted = {t.name for t in tasks}
    if use and itf is not None and len(itf) == split.n_items:
        for col in ("genres", "category", "domain"):
            if col not in itf.columns or (col == "category" and "category" in predicted):
                continue  # never feed a model the label it predicts
            mat, n = _bag(itf[col])
            if n > 1:
                bags.append(mat)
                isizes.append(n)
                inames.append(col)
    user_fields = np.stack(ufields, 1) if ufields else np.zeros((split.n_users, 0), dtype=np.int64)
    return SideInfo(user_fields, usizes, unames, bags, isizes, inames)


# ---- training examples -------------------------------------------------------------------------------------------
class TaskData:
    """Training rows for all tasks at once: one row per labelled (user, item) of the train stage (train pairs, or
    train impression candidates), a label and a mask column per task (mask False = no label for that task), and per
    epoch one fresh negative item per row for the ranking tasks."""

    def __init__(self, split, tasks: list[Task], like_threshold: float):
        self.tasks, self.n_items = tasks, split.n_items
        self.T = len(tasks)
        frame = split.frames["train_impressions"] if split.is_impressions else split.train
        self.users = frame[USER].to_numpy(np.int64)
        self.items = frame[ITEM].to_numpy(np.int64)
        self.keys = np.unique(self.users * self.n_items + self.items)   # sorted: what a negative must avoid
        n = len(self.users)
        self.labels = np.zeros((n, self.T), dtype=np.float32)
        self.mask = np.zeros((n, self.T), dtype=bool)
        rating = frame[RATING].to_numpy(np.float32) if RATING in frame.columns else None
        self.rating_mean = float(np.nanmean(rating)) if rating is not None and np.isfinite(rating).any() else 0.0
        cats, _ = item_categories(split)
        dom = item_domains(split)
        for t, task in enumerate(tasks):
            if task.name == "interaction":
                self.labels[:, t], self.mask[:, t] = 1.0, True
            elif task.name == "click":
                self.labels[:, t], self.mask[:, t] = frame[LABEL].to_numpy(np.float32), True
            elif task.name in ("rating", "like"):
                ok = np.isfinite(rating)
                value = rating[ok] if task.name == "rating" else (rating[ok] >= like_threshold).astype(np.float32)
                self.labels[ok, t], self.mask[:, t] = value, ok
            elif task.name == "category":
                c = cats[self.items]
                self.labels[:, t], self.mask[:, t] = np.maximum(c, 0), c >= 0
            elif task.domain is not None:
                here = dom[0][self.items] == task.domain
                self.labels[here, t], self.mask[:, t] = 1.0, here
        self.ranking = any(t.kind == RANKING for t in tasks)
        self.domain_of_item = dom[0] if dom is not None and any(t.domain is not None for t in tasks) else None
        if self.domain_of_item is not None:
            for d in np.unique(self.domain_of_item):
                own = np.nonzero(self.domain_of_item == d)[0]
                if not np.array_equal(own, np.arange(own.min(), own.max() + 1)):
                    raise ConfigError(f"domain {d}: items must be a contiguous id range")

    def negatives(self, rng: np.random.Generator) -> np.ndarray:
        """One negative per row for the ranking tasks (the row's item where there is none): uniform over the
        items the user has no train interaction with; in multi-domain, over the row's own domain."""
        if not self.ranking:
            return self.items.copy()
        if self.domain_of_item is None:
            return sample_negatives(self.users, self.n_items, self.keys, rng)
        neg = self.items.copy()
        row_dom = self.domain_of_item[self.items]
        for d in np.unique(row_dom):
            rows = np.nonzero(row_dom == d)[0]
            own = np.nonzero(self.domain_of_item == d)[0]
            lo, size = int(own[0]), len(own)
            local = np.unique(self.users[rows] * size + (self.items[rows] - lo))
            neg[rows] = sample_negatives(self.users[rows], size, local, rng) + lo
        return neg
