"""Task definitions for multi-task recommenders, built from a Split's real data.

A task is one prediction head. Each kind of task draws its training labels from the split:

    interaction   binary   every train (user, item) pair is a positive; ``num_negatives`` uniformly sampled
                           unobserved items per positive (fresh each epoch) are its negatives. The task the main
                           evaluator ranks through ``score(users)``.
    rating        regress  the train pair's explicit rating (MSE); negatives carry no rating label.
    like          binary   rating >= ``like_threshold`` (4 on MovieLens) on the rated train pairs.
    click         binary   the click label of every train impression candidate (impressions protocol, MIND).
    category      classes  the candidate news item's category, where the dataset knows it (MIND sample: ~4% of
                           the news referenced in behaviours have a category; rows without one carry no label
                           and are simply masked out of this task's loss and metrics).
    domain:<name> binary   multi-domain: the interaction task restricted to one domain's users and items of a
                           combined dataset (``metarec.methods.multitask.multidomain``); negatives are sampled
                           inside that domain.

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
BINARY, REGRESSION, MULTICLASS = "binary", "regression", "multiclass"
MAIN_TASKS = ("interaction", "click")  # the task scored by score()/score_pairs, in order of preference
USER_CATEGORICAL = ("gender", "occupation")
AGE_EDGES = (18, 25, 35, 45, 50, 56)  # MovieLens-1M age groups, applied to ml-100k's raw ages


@dataclass
class Task:
    name: str
    kind: str                      # binary | regression | multiclass
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
            out.append(Task(name, BINARY))
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
            out += [Task(f"domain:{d}", BINARY, domain=i) for i, d in enumerate(dom[1])]
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
    """Per-epoch training examples for all tasks at once: aligned (user, item) rows with a label and a mask
    column per task (mask False = the row carries no label for that task)."""

    def __init__(self, split, tasks: list[Task], num_negatives: int, like_threshold: float):
        self.tasks, self.n_items, self.num_negatives = tasks, split.n_items, int(num_negatives)
        names = [t.name for t in tasks]
        self.T = len(tasks)
        if split.is_impressions:
            imp = split.frames["train_impressions"]
            self.pos_users = imp[USER].to_numpy(np.int64)
            self.pos_items = imp[ITEM].to_numpy(np.int64)
            self.sample = False
        else:
            tr = split.train
            self.pos_users = tr[USER].to_numpy(np.int64)
            self.pos_items = tr[ITEM].to_numpy(np.int64)
            self.sample = any(t.kind == BINARY and (t.name == "interaction" or t.domain is not None) for t in tasks)
            self.keys = np.unique(self.pos_users * self.n_items + self.pos_items)
        n = len(self.pos_users)
        self.labels = np.zeros((n, self.T), dtype=np.float32)
        self.mask = np.zeros((n, self.T), dtype=bool)
        frame = split.frames["train_impressions"] if split.is_impressions else split.train
        rating = frame[RATING].to_numpy(np.float32) if RATING in frame.columns else None
        self.rating_mean = float(np.nanmean(rating)) if rating is not None and np.isfinite(rating).any() else 0.0
        cats, _ = item_categories(split)
        dom = item_domains(split)
        for t, task in enumerate(tasks):
            if task.name in ("interaction", "click"):
                self.labels[:, t] = 1.0 if task.name == "interaction" else frame[LABEL].to_numpy(np.float32)
                self.mask[:, t] = True
            elif task.name == "rating":
                ok = np.isfinite(rating)
                self.labels[ok, t], self.mask[:, t] = rating[ok], ok
            elif task.name == "like":
                ok = np.isfinite(rating)
                self.labels[ok, t], self.mask[:, t] = (rating[ok] >= like_threshold).astype(np.float32), ok
            elif task.name == "category":
                c = cats[self.pos_items]
                self.labels[:, t], self.mask[:, t] = np.maximum(c, 0), c >= 0
            elif task.domain is not None:
                here = dom[0][self.pos_items] == task.domain
                self.labels[here, t], self.mask[:, t] = 1.0, here
        self.domain_of_item = dom[0] if dom is not None else None
        self.names = names

    def epoch(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(users, items, labels [N, T], mask [N, T]) for one epoch: the labelled rows plus fresh negatives."""
        users, items, labels, mask = [self.pos_users], [self.pos_items], [self.labels], [self.mask]
        if self.sample and self.num_negatives > 0:
            u = np.repeat(self.pos_users, self.num_negatives)
            if self.domain_of_item is None:
                neg = sample_negatives(u, self.n_items, self.keys, rng)
                lab = np.zeros((len(u), self.T), dtype=np.float32)
                m = np.zeros((len(u), self.T), dtype=bool)
                m[:, [t for t, task in enumerate(self.tasks) if task.name == "interaction"]] = True
                users.append(u), items.append(neg), labels.append(lab), mask.append(m)
            else:  # negatives from the positive's own domain (disjoint, contiguous item ranges)
                pos_dom = np.repeat(self.domain_of_item[self.pos_items], self.num_negatives)
                for t, task in enumerate(self.tasks):
                    if task.domain is None:
                        continue
                    rows = np.nonzero(pos_dom == task.domain)[0]
                    dom_items = np.nonzero(self.domain_of_item == task.domain)[0]
                    if not np.array_equal(dom_items, np.arange(dom_items.min(), dom_items.max() + 1)):
                        raise ConfigError(f"domain {task.name}: items must be a contiguous id range")
                    lo, size = int(dom_items.min()), len(dom_items)
                    uu = u[rows]
                    in_dom = self.domain_of_item[self.pos_items] == task.domain
                    local_keys = np.unique(self.pos_users[in_dom] * size + (self.pos_items[in_dom] - lo))
                    neg = sample_negatives(uu, size, local_keys, rng) + lo
                    lab = np.zeros((len(rows), self.T), dtype=np.float32)
                    m = np.zeros((len(rows), self.T), dtype=bool)
                    m[:, t] = True
                    users.append(uu), items.append(neg), labels.append(lab), mask.append(m)
        return np.concatenate(users), np.concatenate(items), np.concatenate(labels), np.concatenate(mask)
