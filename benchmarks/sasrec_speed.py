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

    flock /tmp/metarec-heavy.lock .venv/bin/python benchmarks/sasrec_speed.py [--recbole-epochs 12] [--epochs 40]

Each side's raw figures are kept in <out>/ours.json and <out>/recbole.json; a rerun reuses them (--refit to fit
again), so the summary can be rebuilt without repeating RecBole's ~4-6 min epochs.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import metarec  # noqa: F401  (offline flags, shims)
from metarec.eval import Evaluator
from metarec.bench.experiment import get_split
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
    ap.add_argument("--recbole-epochs", type=int, default=12,
                    help="RecBole epoch cap (its early stopping: --recbole-stopping-step evaluations)")
    ap.add_argument("--recbole-stopping-step", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=40, help="ours: max epochs (early stopping, patience 5)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="results/sasrec_speed")
    ap.add_argument("--refit", action="store_true", help="fit again even where <out>/<side>.json exists")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    split = get_split("ml-100k", "sequential")
    metrics = ["ndcg@10", "recall@10", "hit@10", "mrr@10"]
    work = home() / "bench" / "sasrec_speed"

    evaluator = Evaluator(split, metrics=metrics)
    out = Path(args.out)

    def side(key: str, name: str, params: dict, history_of) -> dict:
        """Fit one side and keep its raw figures in <out>/<key>.json, so a crash or rerun never repeats a fit."""
        path = out / f"{key}.json"
        if path.exists() and not args.refit:
            print(f"[sasrec_speed] {key}: reusing {path}")
            return json.loads(path.read_text())
        m = build_method(name, params)
        t = time.perf_counter()
        m.fit(split, seed=args.seed, workdir=work / key)
        fit_s = time.perf_counter() - t
        epochs, hist = history_of(m)
        rec = {"method": name, "params": params, "fit_wall_s": fit_s, "epoch_s": [float(x) for x in epochs],
               "valid_ndcg@10": [(int(e), float(v)) for e, v in hist],
               "test": evaluator.evaluate(m, stage="test").means, "num_parameters": m.num_parameters(),
               "recbole_test_result": getattr(m, "recbole_test_result", None)}
        atomic_write_json(path, rec)
        print(f"[sasrec_speed] {key}: {len(epochs)} epochs, median {statistics.median(epochs):.2f} s/epoch, "
              f"test NDCG@10 {rec['test']['ndcg@10']:.4f}")
        return rec

    # ours first: it is the short one, so a failure shows up before RecBole's long run
    ours = side("ours", "distill:student",
                {"dim": D, "n_layers": LAYERS, "n_heads": HEADS, "max_len": MAX_LEN, "max_epochs": args.epochs,
                 "eval_every": 1, "patience": 5, "progress_bar": False},
                lambda m: (m.module.epoch_times, m.valid_history))
    rb = side("recbole", "recbole:SASRec",
              {"epochs": args.recbole_epochs, "stopping_step": args.recbole_stopping_step, "device": "cpu",
               "hidden_size": D, "n_layers": LAYERS, "n_heads": HEADS, "inner_size": INNER,
               "MAX_ITEM_LIST_LENGTH": MAX_LEN, "eval_step": 1},
              lambda m: (m.epoch_times, m.valid_history))
    rb_epochs, rb_hist = rb["epoch_s"], [tuple(x) for x in rb["valid_ndcg@10"]]
    our_epochs, our_hist = ours["epoch_s"], [tuple(x) for x in ours["valid_ndcg@10"]]
    rb_best = max(v for _, v in rb_hist)
    rb_best_at = first_reach(rb_hist, rb_epochs, rb_best)
    our_reach = first_reach(our_hist, our_epochs, rb_best)
    rb_epoch_s = statistics.median(rb_epochs[1:] or rb_epochs)
    our_epoch_s = statistics.median(our_epochs[1:] or our_epochs)
    summary = {
        "split": split.describe(), "config": {"d": D, "layers": LAYERS, "heads": HEADS, "inner": INNER,
                                              "max_len": MAX_LEN, "threads": args.threads},
        "recbole": {**rb, "epochs_run": len(rb_epochs), "median_epoch_s": rb_epoch_s,
                    "best_valid_ndcg@10": rb_best, "best_at": rb_best_at},
        "ours": {**ours, "epochs_run": len(our_epochs), "median_epoch_s": our_epoch_s,
                 "best_valid_ndcg@10": max(v for _, v in our_hist), "reach_recbole_best": our_reach},
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
        f"{rb_best_at[1]:.1f} (epoch {rb_best_at[0] + 1}) | {rb['test']['ndcg@10']:.4f} | "
        f"{rb['test']['recall@10']:.4f} | {rb['num_parameters']:,} |",
        f"| ours (distill:student backbone) | {len(our_epochs)} | {our_epoch_s:.2f} | "
        f"{summary['ours']['best_valid_ndcg@10']:.4f} | "
        + (f"{our_reach[1]:.1f} (epoch {our_reach[0] + 1})" if our_reach else "not reached") +
        f" | {ours['test']['ndcg@10']:.4f} | {ours['test']['recall@10']:.4f} | "
        f"{ours['num_parameters']:,} |",
        "",
        f"time per epoch ratio (ours / RecBole): {summary['epoch_time_ratio']:.3f} (goal <= 0.3)",
        "time to RecBole's best valid NDCG@10 ratio: " + (f"{summary['time_to_recbole_best_ratio']:.3f}"
                                                          if summary["time_to_recbole_best_ratio"] else "n/a"),
        f"test NDCG@10 ours - RecBole: {ours['test']['ndcg@10'] - rb['test']['ndcg@10']:+.4f}"
        " (goal >= 0)",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    atomic_write_json(out / "summary.json", summary)
    atomic_write_text(out / "summary.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
