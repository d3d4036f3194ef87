"""Our SASRec-style module (``distill:student`` backbone under ``sequential``) vs RecBole 1.2.1's SASRec
(``recbole:SASRec``) on the same persisted ml-100k sequential split, with the same width, depth and maximum length
(d = 64, 2 layers, 2 heads, inner 256, max length 50 — RecBole's defaults).

Reported: training time per epoch (ours: epoch start to its last optimizer step; RecBole: its trainer's
``_train_epoch``; validation excluded on both sides), validation NDCG@10 after every epoch (ours through metarec's
evaluator, RecBole's through its own full-sort evaluator on the same valid file), the training time each needs to
reach RecBole's best validation NDCG@10, and both models' test metrics from metarec's one evaluator.

Where the two differ by design: RecBole trains on every prefix of every user sequence (97k rows, loss at the last
position of each); ours trains on one row per user chunk with a loss at every position (a chunk is <= 50 items,
so ~2.5k rows cover the same 97k next-item targets). Dropout and learning rate are each side's own defaults
(RecBole: 0.5 / 1e-3, batch 2048; ours: 0.2 / 2e-3, batch 128 chunks).

Goal (issue 5): ours <= 0.3x RecBole's time per epoch and a higher or equal NDCG@10.

    flock /tmp/metarec-heavy.lock .venv/bin/python benchmarks/sasrec_speed.py [--recbole-epochs 10] [--epochs 40]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import metarec  # noqa: F401  (offline flags, shims)
from metarec.eval import Evaluator
from metarec.experiment import get_split
from metarec.methods import build_method
from metarec.utils import atomic_write_json, atomic_write_text, home

D, LAYERS, HEADS, INNER, MAX_LEN = 64, 2, 2, 256, 50


def first_reach(history: list[tuple[int, float]], epoch_times: list[float], target: float) -> tuple[int, float] | None:
    """(epoch, cumulative training seconds) of the first validation at or above ``target``."""
    cum = np.cumsum(epoch_times)
    for epoch, value in history:
        if value >= target - 1e-12 and epoch < len(cum):
            return epoch, float(cum[epoch])
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recbole-epochs", type=int, default=10)
    ap.add_argument("--recbole-stopping-step", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40, help="ours: max epochs (early stopping, patience 5)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/sasrec_speed")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    split = get_split("ml-100k", "sequential")
    metrics = ["ndcg@10", "recall@10", "hit@10", "mrr@10"]
    work = home() / "bench" / "sasrec_speed"

    evaluator = Evaluator(split, metrics=metrics)

    def fit_and_test(name: str, params: dict, workdir: Path):
        m = build_method(name, params)
        t = time.perf_counter()
        m.fit(split, seed=args.seed, workdir=workdir)
        fit_s = time.perf_counter() - t
        return m, fit_s, evaluator.evaluate(m, stage="test").means

    rb_method, rb_wall, rb_test = fit_and_test(
        "recbole:SASRec", {"epochs": args.recbole_epochs, "stopping_step": args.recbole_stopping_step,
                           "device": "cpu", "hidden_size": D, "n_layers": LAYERS, "n_heads": HEADS,
                           "inner_size": INNER, "MAX_ITEM_LIST_LENGTH": MAX_LEN, "eval_step": 1}, work / "recbole")
    our_method, our_fit, our_test = fit_and_test(
        "distill:student", {"dim": D, "n_layers": LAYERS, "n_heads": HEADS, "max_len": MAX_LEN,
                            "max_epochs": args.epochs, "eval_every": 1, "patience": 5, "progress_bar": False},
        work / "ours")
    rb = {"metrics": {"test": rb_test}, "num_parameters": rb_method.num_parameters()}
    ours = {"metrics": {"test": our_test}, "num_parameters": our_method.num_parameters(),
            "timings": {"fit_s": our_fit}}
    rb_epochs = list(rb_method.epoch_times)
    rb_hist = [(int(e), float(v)) for e, v in rb_method.valid_history]
    our_epochs = list(our_method.module.epoch_times)
    our_hist = [(int(e), float(v)) for e, v in our_method.valid_history]
    rb_best = max(v for _, v in rb_hist)
    rb_best_at = first_reach(rb_hist, rb_epochs, rb_best)
    our_reach = first_reach(our_hist, our_epochs, rb_best)
    rb_epoch_s = statistics.median(rb_epochs[1:] or rb_epochs)
    our_epoch_s = statistics.median(our_epochs[1:] or our_epochs)
    summary = {
        "split": split.describe(), "config": {"d": D, "layers": LAYERS, "heads": HEADS, "inner": INNER,
                                              "max_len": MAX_LEN, "threads": args.threads},
        "recbole": {"epochs_run": len(rb_epochs), "epoch_s": rb_epochs, "median_epoch_s": rb_epoch_s,
                    "valid_ndcg@10": rb_hist, "best_valid_ndcg@10": rb_best,
                    "best_at": rb_best_at, "test": rb["metrics"]["test"], "params": rb["num_parameters"],
                    "fit_wall_s": rb_wall, "recbole_test_result": rb_method.recbole_test_result},
        "ours": {"epochs_run": len(our_epochs), "epoch_s": our_epochs, "median_epoch_s": our_epoch_s,
                 "valid_ndcg@10": our_hist, "best_valid_ndcg@10": max(v for _, v in our_hist),
                 "reach_recbole_best": our_reach, "test": ours["metrics"]["test"], "params": ours["num_parameters"],
                 "fit_s": ours["timings"]["fit_s"]},
    }
    summary["epoch_time_ratio"] = our_epoch_s / rb_epoch_s
    summary["time_to_recbole_best_ratio"] = (our_reach[1] / rb_best_at[1]) if our_reach and rb_best_at else None
    lines = [
        "# SASRec: ours vs RecBole 1.2.1 (ml-100k sequential, d=64, 2 layers, 2 heads, inner 256, max len 50, "
        f"{args.threads} thread)\n",
        "| | epochs run | median train s/epoch | best valid NDCG@10 | train s to RecBole's best valid | "
        "test NDCG@10 | test Recall@10 | params |",
        "|---|---|---|---|---|---|---|---|",
        f"| RecBole SASRec | {len(rb_epochs)} (cap {args.recbole_epochs}) | {rb_epoch_s:.2f} | {rb_best:.4f} | "
        f"{rb_best_at[1]:.1f} (epoch {rb_best_at[0] + 1}) | {rb['metrics']['test']['ndcg@10']:.4f} | "
        f"{rb['metrics']['test']['recall@10']:.4f} | {rb['num_parameters']:,} |",
        f"| ours (distill:student backbone) | {len(our_epochs)} | {our_epoch_s:.2f} | "
        f"{summary['ours']['best_valid_ndcg@10']:.4f} | "
        + (f"{our_reach[1]:.1f} (epoch {our_reach[0] + 1})" if our_reach else "not reached") +
        f" | {ours['metrics']['test']['ndcg@10']:.4f} | {ours['metrics']['test']['recall@10']:.4f} | "
        f"{ours['num_parameters']:,} |",
        "",
        f"time per epoch ratio (ours / RecBole): {summary['epoch_time_ratio']:.3f} (goal <= 0.3)",
        "time to RecBole's best valid NDCG@10 ratio: " + (f"{summary['time_to_recbole_best_ratio']:.3f}"
                                                          if summary["time_to_recbole_best_ratio"] else "n/a"),
        f"test NDCG@10 ours - RecBole: {ours['metrics']['test']['ndcg@10'] - rb['metrics']['test']['ndcg@10']:+.4f}"
        " (goal >= 0)",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
