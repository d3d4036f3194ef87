"""RecBole SASRec's training time per epoch on ml-100k (sequential leave-one-out split), as recbole:SASRec runs it.

    python benchmarks/sasrec_epoch_time.py                 # 3 epochs, 1 CPU thread
    python benchmarks/sasrec_epoch_time.py --epochs 5 --threads 2 --device cuda

Times come from RecBole's own trainer: ``_train_epoch`` (one pass over the 97k prefix->next-item rows,
train_batch_size 2048, CE over all items) and ``_valid_epoch`` (full-ranking validation of 943 users), measured
separately. The first epoch includes warm-up and is reported on its own.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

import metarec  # noqa: F401  (compat shims)
from metarec.bench.experiment import get_split
from metarec.methods import build_method
from metarec.utils import atomic_write_json, home


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    split = get_split(args.dataset, "sequential")
    m = build_method("recbole:SASRec", {"epochs": args.epochs, "stopping_step": args.epochs + 1,
                                        "device": args.device})
    workdir = home() / "bench" / f"sasrec-epoch-time-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    m.fit(split, seed=0, workdir=workdir)
    tr, va = m.epoch_times, m.valid_times
    later = tr[1:] or tr
    print(f"RecBole SASRec on {args.dataset} (sequential leave-one-out; {m.file_rows['train']:,} training rows, "
          f"{split.n_items:,} items), device {args.device}, {torch.get_num_threads()} thread(s):")
    print(f"  train epoch: first {tr[0]:.2f}s, then mean {sum(later) / len(later):.2f}s "
          f"(all: {', '.join(f'{t:.2f}' for t in tr)})")
    print(f"  validation (full ranking): mean {sum(va) / max(1, len(va)):.2f}s")
    print(f"  data: write atomic files {m.timings['write_files_s']:.1f}s, RecBole load {m.timings['load_s']:.1f}s")
    if args.out:
        atomic_write_json(args.out, {"dataset": args.dataset, "device": args.device, "threads": args.threads,
                                     "train_rows": m.file_rows["train"], "train_epoch_s": tr, "valid_s": va,
                                     "timings": m.timings, "recbole_test": m.recbole_test_result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
