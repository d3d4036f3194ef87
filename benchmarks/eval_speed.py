"""Speed and agreement: metarec's Evaluator vs RecBole 1.2.1's own evaluation path, same scores, same masks.

Data: ml-100k as shipped inside the RecBole wheel (``recbole/dataset_example/ml-100k/ml-100k.inter``), read with
pandas; ids mapped to 0..n-1; a per-user random 8:1:1 split with a fixed seed (done here, so the benchmark needs
no other metarec module than the evaluator and Split). Scores: a fixed random matrix [943, 1682].

Both sides rank every user with a test item over all items, with the user's train + valid items masked to -inf
(RecBole's full-sort test evaluation), and compute recall/ndcg/hit/mrr/precision/map @10 and @20:

    ours    Evaluator(split, metrics).evaluate_scores(scores, "test")
    RecBole per batch: scores[history] = -inf (as Trainer._full_sort_batch_eval), then
            Collector.eval_batch_collect(scores, None, positive_u, positive_i); at the end
            Evaluator.evaluate(Collector.get_data_struct())              (as Trainer.evaluate)

Preparation that RecBole's dataloader does outside the evaluation (history_index, positive_u/positive_i per batch)
is precomputed outside the timing; so is ours (the evaluator caches its per-stage CSR on the first call, reported
separately as the cold call). Both use the same user batches (``--batch-size``), one thread.

    .venv/bin/python benchmarks/eval_speed.py [--repeats 15] [--batch-size 1024]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import metarec  # noqa: F401  (compat shims)
from metarec.eval import Evaluator
from metarec.protocols.split import Split

METRICS = ["recall", "ndcg", "hit", "mrr", "precision", "map"]
TOPK = [10, 20]


def load_ml100k_split(seed: int = 2024) -> Split:
    import recbole

    path = Path(recbole.__file__).parent / "dataset_example" / "ml-100k" / "ml-100k.inter"
    raw = pd.read_csv(path, sep="\t")
    raw.columns = [c.split(":")[0] for c in raw.columns]
    users, uid = np.unique(raw["user_id"].to_numpy(), return_inverse=True)
    items, iid = np.unique(raw["item_id"].to_numpy(), return_inverse=True)
    df = pd.DataFrame({"user": uid.astype(np.int64), "item": iid.astype(np.int64),
                       "rating": raw["rating"].to_numpy(np.float32)})
    rng = np.random.default_rng(seed)
    df["key"] = rng.random(len(df))
    df = df.sort_values(["user", "key"], kind="stable").reset_index(drop=True)
    pos = df.groupby("user").cumcount().to_numpy()
    n = df.groupby("user")["item"].transform("size").to_numpy()
    n_test = np.maximum(1, n // 10)
    n_valid = np.maximum(1, n // 10)
    part = np.where(pos < n - n_test - n_valid, "train", np.where(pos < n - n_test, "valid", "test"))
    frames = {p: df.loc[part == p, ["user", "item", "rating"]].reset_index(drop=True)
              for p in ("train", "valid", "test")}
    return Split(dataset="ml-100k", protocol="ratio", params={"ratios": [8, 1, 1]}, seed=seed,
                 n_users=len(users), n_items=len(items), frames=frames)


def recbole_config():
    """A real recbole.config.Config, as the trainer gets it.

    Config needs a model and a dataset *name* but reads no data: it merges RecBole's yaml defaults (the ml-100k
    dataset yaml ships with the wheel). ``data_path`` points nowhere to prove no file is read. Config also parses
    ``sys.argv`` for ``--key=value`` overrides, so our own arguments are hidden from it while it is built.
    metric_decimal_place=12: RecBole rounds every mean (default 4 places), which would hide disagreements.
    """
    from recbole.config import Config

    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        return Config(model="Pop", dataset="ml-100k", config_dict={
            "metrics": [m.capitalize() if m != "ndcg" else "NDCG" for m in METRICS], "topk": TOPK,
            "metric_decimal_place": 12, "use_gpu": False, "eval_args": {"mode": "full"},
            "data_path": "/nonexistent-no-data-is-read", "show_progress": False})
    finally:
        sys.argv = argv


def enable_recbole_metrics() -> None:
    """RecBole 1.2.1's NDCG/MRR/MAP call ``np.float`` (and GAUC ``np.bool``): builtin aliases removed in numpy
    1.24, so under the pinned numpy 1.26 they raise AttributeError. Restore the aliases (their exact old meaning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if not hasattr(np, "float"):
            np.float = float  # type: ignore[attr-defined]
        if not hasattr(np, "bool"):
            np.bool = bool  # type: ignore[attr-defined]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    enable_recbole_metrics()
    from recbole.evaluator import Collector
    from recbole.evaluator import Evaluator as RecBoleEvaluator

    split = load_ml100k_split()
    n_u, n_i = split.n_users, split.n_items
    scores = torch.rand((n_u, n_i), generator=torch.Generator().manual_seed(0))
    names = [f"{m}@{k}" for m in METRICS for k in TOPK]

    # ---- ours -----------------------------------------------------------------------------------------------
    ev = Evaluator(split, names, batch_size=args.batch_size)
    t = time.perf_counter()
    ours = ev.evaluate_scores(scores, "test")
    ours_cold = time.perf_counter() - t

    # ---- RecBole ----------------------------------------------------------------------------------------------
    config = recbole_config()
    collector, rb_eval = Collector(config), RecBoleEvaluator(config)
    users = np.unique(split.test["user"].to_numpy())
    known = split.known("test")
    batches = []  # what FullSortEvalDataLoader hands the trainer: users, history_index, positive_u, positive_i
    for lo in range(0, len(users), args.batch_size):
        ub = users[lo:lo + args.batch_size]
        row = pd.Series(np.arange(len(ub)), index=ub)
        h = known[known["user"].isin(ub)]
        p = split.test[split.test["user"].isin(ub)].drop_duplicates(["user", "item"])
        batches.append((torch.from_numpy(ub),
                        (torch.from_numpy(row[h["user"]].to_numpy()), torch.from_numpy(h["item"].to_numpy())),
                        torch.from_numpy(row[p["user"]].to_numpy()), torch.from_numpy(p["item"].to_numpy())))

    def recbole_eval():
        for ub, hist, pu, pi in batches:
            s = scores[ub]  # the model's full_sort_predict output for the batch (a fresh tensor)
            # Trainer._full_sort_batch_eval also sets column 0 (RecBole's padding item) to -inf; our ids have no
            # padding item, so that step has nothing to act on here.
            s[hist] = -np.inf
            collector.eval_batch_collect(s, None, pu, pi)
        return rb_eval.evaluate(collector.get_data_struct())

    # ---- timing: the two alternate within each repeat, so load from other processes hits both alike ---------
    # Wall time and the process's CPU time, both: on a shared 2-core machine the wall time also counts the time the
    # process waited for a core (other jobs, the VM host), which swings RecBole's median by 15-30 % between runs;
    # one thread each, so CPU time is the work itself.
    ours_times, rb_times, ours_cpu, rb_cpu = [], [], [], []
    with torch.no_grad():
        theirs = recbole_eval()
        for _ in range(args.repeats):
            t, c = time.perf_counter(), time.process_time()
            ours = ev.evaluate_scores(scores, "test")
            ours_times.append(time.perf_counter() - t)
            ours_cpu.append(time.process_time() - c)
            t, c = time.perf_counter(), time.process_time()
            theirs = recbole_eval()
            rb_times.append(time.perf_counter() - t)
            rb_cpu.append(time.process_time() - c)

    # ---- agreement and report ---------------------------------------------------------------------------------
    worst = max(abs(ours.means[n] - float(theirs[n])) for n in names)
    print(f"ml-100k: {n_u} users x {n_i} items, test users {ours.n_users}, batch {args.batch_size}, "
          f"threads {args.threads}, repeats {args.repeats}")
    print(f"{'metric':<14}{'metarec':>12}{'recbole':>12}")
    for n in names:
        print(f"{n:<14}{ours.means[n]:>12.6f}{float(theirs[n]):>12.6f}")
    print(f"max |difference| = {worst:.2e}")
    assert worst < 1e-6, f"metarec and RecBole disagree by {worst}"
    mo, mr = statistics.median(ours_times), statistics.median(rb_times)
    print(f"metarec Evaluator.evaluate_scores: median {mo * 1e3:.2f} ms, best {min(ours_times) * 1e3:.2f} ms"
          f"   (cold first call, building the stage cache: {ours_cold * 1e3:.2f} ms)")
    print(f"RecBole Collector+Evaluator:       median {mr * 1e3:.2f} ms, best {min(rb_times) * 1e3:.2f} ms")
    ratios = sorted(o / r for o, r in zip(ours_times, rb_times))
    print(f"ratio metarec/recbole = {mo / mr:.3f} (of medians), {min(ours_times) / min(rb_times):.3f} (of bests); "
          f"per-repeat ratios median {statistics.median(ratios):.3f}, range {ratios[0]:.3f}..{ratios[-1]:.3f}"
          f"  (goal <= 0.2)")
    cpu_ratios = sorted(o / r for o, r in zip(ours_cpu, rb_cpu))
    print(f"CPU time: metarec median {statistics.median(ours_cpu) * 1e3:.2f} ms, RecBole median "
          f"{statistics.median(rb_cpu) * 1e3:.2f} ms; ratio {statistics.median(ours_cpu) / statistics.median(rb_cpu):.3f}"
          f" (of medians), per-repeat median {statistics.median(cpu_ratios):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
