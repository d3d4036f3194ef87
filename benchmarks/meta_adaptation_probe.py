"""How far does per-user adaptation move a trained cold-start model? (issue 7: why fine-tuning can equal no adaptation)

Trains one ``melu:*`` method on a cold-start split, then adapts it to each test user's support set with several inner
learning rates (same number of steps) and prints, per learning rate: the largest change of any score, the mean
overlap of each user's top-10 before and after adaptation, and test NDCG@10 / Recall@10 through the evaluator.

    .venv/bin/python benchmarks/meta_adaptation_probe.py                       # melu:finetune, amazon-office, K=5
    .venv/bin/python benchmarks/meta_adaptation_probe.py --method melu:maml --lrs 0.05 0.5
"""
from __future__ import annotations

import argparse
import sys

import torch

import metarec  # noqa: F401  (offline settings, compat shims)
from metarec.eval import Evaluator
from metarec.bench.experiment import get_split
from metarec.methods import build_method


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="amazon-office")
    ap.add_argument("--method", default="melu:finetune")
    ap.add_argument("--k-shot", type=int, default=5)
    ap.add_argument("--min-history", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--users", type=int, default=50, help="test users for the score/top-10 comparison")
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.05, 0.5, 2.0, 10.0])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    split = get_split(args.dataset, "cold_start", {"k_shot": args.k_shot, "n_query": 10,
                                                   "min_history": args.min_history}, args.seed)
    m = build_method(args.method, {"max_epochs": 6, "eval_every": 2, "patience": 2, "item_ids": True,
                                   "progress_bar": False})
    m.fit(split, seed=args.seed)
    print(f"{args.method} on {args.dataset} cold_start K={args.k_shot}, seed {args.seed}: best valid NDCG@10 "
          f"{m.best_valid:.4f} at epoch {m.best_epoch}")
    support = split.support("test")
    users = torch.as_tensor(sorted(support.user.unique())[:args.users])
    m.adapt(None)                       # no adaptation: the global predictions
    before = m.score(users)
    ev = Evaluator(split, metrics=["ndcg@10", "recall@10"])
    print("| inner lr | max abs score change | mean top-10 overlap (of 10) | test NDCG@10 | test Recall@10 |")
    print("|---|---|---|---|---|")
    for lr in args.lrs:
        m.module.inner_lr = m.module.maml.lr = lr   # the learn2learn wrapper holds its own copy of the lr
        res = ev.evaluate(m, stage="test")          # adapts every test user (inner_steps at this lr), then scores
        after = m.score(users)
        top_b, top_a = before.topk(10).indices, after.topk(10).indices
        overlap = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(top_a, top_b)) / len(users)
        print(f"| {lr:g} | {(after - before).abs().max().item():.3f} | {overlap:.2f} | {res.means['ndcg@10']:.4f} | "
              f"{res.means['recall@10']:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
