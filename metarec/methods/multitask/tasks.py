"""Task definitions for multi-task recommenders, built from a Split's real data.

A task is one prediction head. Each kind of task draws its training labels from the split:

    interaction   ranking  every train (user, item) pair is a positive, ranked above one uniformly sampled
                           unobserved item (fresh each epoch; BPR, as mf-bpr). The task the main evaluator ranks
                           through ``score(users)``.
    rating        regress  the train pair's explicit rating (MSE); negatives carry no rating label.
    like          binary   rating >= ``like_threshold`` (4 on MovieLens) on the rated train pairs.
    click         binary   the click label of every train impression candidate (impressions protocol, MIND).
    category      classes  the item's category (single-label item attribute), where the dataset knows it (MIND
    brand                  sample: ~4% of the news referenced in behaviours; amazon-office: every item's category,
                           80 % of its brands); rows without a label are masked out of the task's loss and metrics.
                           An item-side head: what the item tower learns about the item's kind.
    domain:<name> ranking  multi-domain: the interaction task restricted to one domain's users and items of a
                           combined dataset (``metarec.data.combine``); negatives are sampled inside that domain.

Each task declares the split capabilities it requires (``TASKS``; ``Split.capabilities``). A method's default task
set is every task the split can label, in ``TASKS`` order, with the per-domain tasks in place of ``interaction`` on a
combined dataset; its ``tasks`` parameter chooses others. No dataset name is looked at.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from metarec.data.features import item_domains, item_labels
from metarec.data.schema import ITEM, LABEL, RATING, USER
from metarec.errors import ConfigError
from metarec.methods.classic.mf_bpr import sample_negatives

RANKING, BINARY, REGRESSION, MULTICLASS = "ranking", "binary", "regression", "multiclass"


@dataclass(frozen=True)
class TaskSpec:
    """A task name's kind and the split capabilities it needs (``metarec.data.features``)."""
    kind: str
    requires: tuple[str, ...]
    what: str


#: every task a multi-task method can be given, in default order
TASKS: dict[str, TaskSpec] = {
    "interaction": TaskSpec(RANKING, ("ranking",), "BPR ranking of the train interactions"),
    "domains": TaskSpec(RANKING, ("ranking", "domains"), "one BPR ranking task per domain of a combined dataset"),
    "rating": TaskSpec(REGRESSION, ("ranking", "ratings"), "explicit rating regression"),
    "like": TaskSpec(BINARY, ("ranking", "ratings"), "rating >= like_threshold"),
    "click": TaskSpec(BINARY, ("impressions",), "click on an impression candidate"),
    "category": TaskSpec(MULTICLASS, ("item_label:category",), "the item's category"),
    "brand": TaskSpec(MULTICLASS, ("item_label:brand",), "the item's brand"),
}
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
    """Every task whose requirements the split's capabilities meet; per-domain tasks replace ``interaction``."""
    caps = split.capabilities
    names = [name for name, spec in TASKS.items() if set(spec.requires) <= caps]
    if "domains" in names:
        names.remove("interaction")
    return names


def resolve_tasks(split, names, like_threshold: float) -> list[Task]:
    """Validate the requested task names against what the split's data can label (its capabilities)."""
    names = list(names) if names else default_tasks(split)
    caps = split.capabilities
    out: list[Task] = []
    for name in names:
        spec = TASKS.get(name)
        if spec is None:
            raise ConfigError(f"unknown task {name!r}; valid: {', '.join(TASKS)}")
        missing = [c for c in spec.requires if c not in caps]
        if missing:
            raise ConfigError(f"task {name!r} ({spec.what}) needs {', '.join(missing)}; split {split.dataset}/"
                              f"{split.protocol} has {', '.join(sorted(caps))}")
        if name == "domains":
            out += [Task(f"domain:{d}", RANKING, domain=i) for i, d in enumerate(item_domains(split)[1])]
        elif spec.kind == MULTICLASS:
            classes = item_labels(split, name)[1]
            out.append(Task(name, MULTICLASS, n_classes=len(classes), classes=classes))
        else:
            out.append(Task(name, spec.kind))
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
    """User age (bucketed) / gender / occupation; item genres (bag), category and brand (unless a task predicts
    them) and domain. Columns absent from the dataset are skipped."""
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
        for col in ("genres", "category", "brand", "domain"):
            if col not in itf.columns or col in predicted:
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
            elif task.kind == MULTICLASS:
                c = item_labels(split, task.name)[0][self.items]
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
