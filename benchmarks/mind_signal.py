"""What the MIND sample's impressions let an id-based model learn: measured on the data, no model involved.

    python benchmarks/mind_signal.py [--dataset mind-sample] [--out results/multitask_mind/tables/signal.md]

For the valid and test stages of the impressions split (time-ordered 8:1:1; every seed gives the same split), per
candidate: was its news ever a train candidate (so an id model saw it with a label), was it clicked in the train
stage (click histories included: what ``train`` holds), its click-through rate by group; and the per-impression AUC
(the evaluator's ``auc``: ties count one half) of scores that use one fact each, read from the train stage only:
exposure (times shown), clicks, and first-shown time (recency). An id embedding can only rank a candidate it has
seen: where most candidates are unseen and no train fact orders the clicks within an impression, an id model can
only sit near 0.5 AUC -- the measured reason behind the sample's multi-task AUCs (docs/multitask.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import metarec  # noqa: F401  (offline settings)
from metarec.bench.experiment import get_split
from metarec.data.schema import IMPRESSION, ITEM, LABEL, TIME
from metarec.eval.metrics import auc_per_user
from metarec.eval.tasks import padded_groups
from metarec.utils import atomic_write_text


def impression_auc(frame: pd.DataFrame, score: np.ndarray) -> tuple[float, int]:
    """Mean over impressions with a click and a non-click of the AUC of ``score`` (ties one half), and that count:
    the evaluator's own per-impression AUC (``metarec.eval.tasks``' grouping, ``metrics.auc_per_user``)."""
    _, s, pos, valid = padded_groups(frame[IMPRESSION].to_numpy(), np.asarray(score, dtype=np.float64),
                               frame[LABEL].to_numpy() == 1)
    auc = auc_per_user(s, pos, valid)[0].numpy()
    scored = ~np.isnan(auc)
    return float(auc[scored].mean()), int(scored.sum())


def stage_facts(split, stage: str) -> tuple[list[tuple[str, str]], list[tuple[str, float, int]]]:
    tr_imp, train, frame = split.frames["train_impressions"], split.train, split.frames[stage]
    items = frame[ITEM].to_numpy()
    shown = tr_imp.groupby(ITEM).size()
    clicked = train.groupby(ITEM).size()
    first = tr_imp.groupby(ITEM)[TIME].min()
    seen = np.isin(items, shown.index.to_numpy())
    was_clicked = np.isin(items, clicked.index.to_numpy())
    y = frame[LABEL].to_numpy()

    def ctr(mask):
        return f"{y[mask].mean():.4f} ({mask.sum():,} candidates)" if mask.any() else "n/a (0 candidates)"

    facts = [("impressions", f"{frame[IMPRESSION].nunique():,}"), ("candidates", f"{len(frame):,}"),
             ("click-through rate", ctr(np.ones(len(y), bool))),
             ("candidates never a train candidate", f"{(~seen).mean():.1%}"),
             ("CTR: never a train candidate", ctr(~seen)), ("CTR: a train candidate", ctr(seen)),
             ("CTR: clicked in the train stage", ctr(was_clicked)),
             ("CTR: not clicked in the train stage", ctr(~was_clicked))]
    # recency: first shown latest ranks first; never-shown news newest of all (as the `recency` method)
    newest = float(tr_imp[TIME].max()) + 1.0
    scores = [("never a train candidate first", (~seen).astype(float)),
              ("exposure (times shown in train)", shown.reindex(items).fillna(0).to_numpy(float)),
              ("train clicks", clicked.reindex(items).fillna(0).to_numpy(float)),
              ("recency (first shown, latest first)", first.reindex(items).fillna(newest).to_numpy(float))]
    aucs = [(name, *impression_auc(frame, s)) for name, s in scores]
    return facts, aucs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="mind-sample")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = ap.parse_args(argv)
    split = get_split(args.dataset, "impressions", seed=0)
    lines = [f"# What an id model can learn from {args.dataset} (impressions split; `benchmarks/mind_signal.py`)", ""]
    for stage in ("valid", "test"):
        facts, aucs = stage_facts(split, stage)
        lines += [f"## {stage}", "", "| fact | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in facts]
        lines += ["", "| one-fact score | impression AUC | impressions with a click and a non-click |", "|---|---|---|"]
        lines += [f"| {k} | {a:.4f} | {n:,} |" for k, a, n in aucs] + [""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
