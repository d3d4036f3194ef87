"""Per-task metrics of multi-task methods (``metarec.methods.multitask``), an evaluator extra.

Applies to any method exposing ``tasks`` and ``predict_tasks(users, items)``; returns None for every other method.
The main task is ranked by the evaluator itself (interaction: top-K metrics; click: impression AUC/MRR/nDCG);
this extra scores the other heads on the stage's own pairs, named ``<task>/<metric>``:

    rating/mae, rating/rmse     over all the stage's rated pairs (pooled, the usual definition; means only)
    rating/user_mae             per-user MAE (per-user column: the unit of the paired significance tests)
    like/auc                    per-user AUC of P(rating >= threshold) on the user's stage pairs (NaN for a user
                                whose pairs are all liked or all not; per-user column), like/gauc (RecBole's GAUC),
                                like/pooled_auc (one AUC over all the stage's pairs)
    click/auc, click/pooled_auc per-impression AUC (equal to the evaluator's ``auc``) and the pooled AUC
    category/accuracy,          top-1 accuracy of an item-label head over the stage's pairs (impressions: its
    brand/accuracy              candidates) whose item has a known label (pooled); <label>/impression_accuracy or
                                <label>/user_accuracy per unit (per-unit column); <label>/majority_accuracy: always
                                predicting train's most frequent label
    <domain>/<metric>           multi-domain: the evaluator's ranking metrics of each domain's users

Where a stage has no labelled pair for a task its metrics are left out and a note says why (MIND sample: ~4% of
the news have a category).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from metarec.data.features import ITEM_LABELS, item_labels
from metarec.data.schema import IMPRESSION, ITEM, LABEL, RATING, USER
from metarec.eval import metrics as M
from metarec.eval.evaluator import EvalResult, scoring_stage
from metarec.eval.extras import register_extra


def padded_groups(groups: np.ndarray, values: np.ndarray, labels: np.ndarray):
    """Rows grouped by ``groups`` -> padded [G, L] score / label / valid matrices and the group keys."""
    order = np.argsort(groups, kind="stable")
    g, v, y = groups[order], values[order], labels[order]
    keys, start, count = np.unique(g, return_index=True, return_counts=True)
    L = int(count.max()) if len(count) else 1
    row = np.repeat(np.arange(len(keys)), count)
    col = np.arange(len(g)) - np.repeat(start, count)
    s = np.zeros((len(keys), L), dtype=np.float64)
    pos = np.zeros((len(keys), L), dtype=bool)
    valid = np.zeros((len(keys), L), dtype=bool)
    s[row, col], pos[row, col], valid[row, col] = v, y, True
    return keys, torch.from_numpy(s), torch.from_numpy(pos), torch.from_numpy(valid)


def _auc_block(prefix: str, groups: np.ndarray, prob: np.ndarray, label: np.ndarray, means: dict) -> pd.Series:
    keys, s, pos, valid = padded_groups(groups, prob, label)
    auc, n_pos = M.auc_per_user(s, pos, valid)
    per = pd.Series(auc.numpy(), index=keys, name=f"{prefix}/auc")
    means[f"{prefix}/auc"] = float(np.nanmean(per)) if per.notna().any() else float("nan")
    means[f"{prefix}/gauc"] = M.gauc(auc, n_pos)
    pooled, _ = M.auc_per_user(torch.from_numpy(prob.astype(np.float64))[None], torch.from_numpy(label)[None])
    means[f"{prefix}/pooled_auc"] = float(pooled[0])
    return per


@register_extra
def task_metrics(method, split, stage: str, evaluator) -> EvalResult | None:
    tasks = getattr(method, "tasks", None)
    if not tasks or not hasattr(method, "predict_tasks"):
        return None
    frame = split.frames[stage]
    names = {t.name: t for t in tasks}
    means: dict[str, float] = {}
    cols: list[pd.Series] = []
    notes: list[str] = []
    unit = IMPRESSION if split.is_impressions else USER
    users, items = frame[USER].to_numpy(np.int64), frame[ITEM].to_numpy(np.int64)

    if not split.is_impressions and ({"rating", "like"} & set(names)):
        rated = frame[RATING].notna().to_numpy() if RATING in frame.columns else np.zeros(len(frame), bool)
        if rated.any():
            u, i = users[rated], items[rated]
            true = frame[RATING].to_numpy(np.float64)[rated]
            pred = method.predict_tasks(u, i)
            if "rating" in names:
                r = pred["rating"].double().cpu()
                t = torch.from_numpy(true)
                means["rating/mae"], means["rating/rmse"] = M.mae(r, t), M.rmse(r, t)
                order = np.argsort(u, kind="stable")
                keys, start = np.unique(u[order], return_index=True)
                bounds = list(start) + [len(u)]
                ro, to = r[order], t[order]
                per = [M.mae(ro[a:b], to[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
                col = pd.Series(per, index=keys, name="rating/user_mae")
                means["rating/user_mae"] = float(col.mean())
                cols.append(col)
            if "like" in names:
                like = true >= float(method.like_threshold)
                cols.append(_auc_block("like", u, pred["like"].double().cpu().numpy(), like, means))
        else:
            notes.append(f"rating/like metrics skipped: the {stage} frame has no ratings")

    labelled = [name for name in ITEM_LABELS if name in names]
    pred = method.predict_tasks(users, items) if labelled or (split.is_impressions and "click" in names) else None
    if split.is_impressions and "click" in names:
        imp = frame[IMPRESSION].to_numpy(np.int64)
        cols.append(_auc_block("click", imp, pred["click"].double().cpu().numpy(),
                               frame[LABEL].to_numpy() == 1, means))
        del means["click/gauc"]  # impressions: per-impression AUC is the standard; GAUC adds nothing here

    if labelled:
        # the unit: the impression under impressions, else the user (the stage's own pairs: targets, not candidates)
        groups = frame[IMPRESSION].to_numpy(np.int64) if split.is_impressions else users
        train = split.frames["train_impressions"] if split.is_impressions else split.train
        rows = "candidate" if split.is_impressions else "pair"
        for name in labelled:
            labels, _ = item_labels(split, name)
            truth = labels[items]
            known = truth >= 0
            if not known.any():
                notes.append(f"{name} metrics skipped: no {stage} {rows} has a known {name}")
                continue
            guess = pred[name].argmax(-1).cpu().numpy()
            correct = (guess == truth)[known].astype(np.float64)
            means[f"{name}/accuracy"] = float(correct.mean())
            per = pd.Series(correct).groupby(groups[known]).mean()
            per.name = f"{name}/{unit}_accuracy"
            means[per.name] = float(per.mean())
            cols.append(per)
            train_labels = labels[train[ITEM].to_numpy(np.int64)]
            train_labels = train_labels[train_labels >= 0]
            if len(train_labels):
                majority = np.bincount(train_labels).argmax()
                means[f"{name}/majority_accuracy"] = float((truth[known] == majority).mean())
            notes.append(f"{name}: {int(known.sum())} of {len(known)} {stage} {rows}s have a known {name} "
                         f"({known.mean():.1%}); the rest are not scored")

    domains = [t for t in tasks if getattr(t, "domain", None) is not None]
    if domains and not split.is_impressions and split.user_features is not None \
            and "domain" in split.user_features.columns:
        with scoring_stage(method, stage):
            res = evaluator.evaluate_scores(method.score, stage)
        user_dom = split.user_features["domain"].to_numpy()[res.per_user.index.to_numpy()]
        for dom in sorted(set(user_dom)):
            sub = res.per_user[user_dom == dom]
            for metric in res.per_user.columns:
                name = f"{dom}/{metric}"
                cols.append(sub[metric].rename(name))
                means[name] = float(sub[metric].mean())

    if not means:
        return None
    per_user = pd.concat(cols, axis=1) if cols else pd.DataFrame()
    per_user.index.name = unit
    return EvalResult(stage=stage, mode=evaluator.mode_label, means=means, per_user=per_user,
                      n_users=len(per_user), timings={}, unit=unit, notes=notes)
