"""Encoding throughput of the text encoders, side by side: the 12-layer teacher against its students and MiniLM.

The grids record each encoder's items/s once, when its item vectors are built (``text_emb`` artifact meta), so a
neighbour on the cores at that moment shifts one number. This measures the ratios the distillation goal is about
(student throughput / teacher throughput, goal >= 1.8x) the way the suite measures speed: interleaved rounds over
the same texts in one process on a fixed thread count, the median of the rounds and their spread. Throughput does
not depend on the weights, so students are built from the teacher (``mpnet.student_from_teacher``) without
distilling them; ``mpnet-6-random`` has mpnet-6's architecture and speed and is not timed again.

Texts: a fixed random sample of the dataset's item texts (the persisted split of the grid's tuning seed), encoded
as ``encoders.item_embeddings`` does (``text.encode``: sorted by length, batches of 64, max length 64).

``--fidelity`` adds how close each encoder's item vectors (the run-store ``text_emb`` artifacts the grid's
recommenders read; built here if missing, which distils the students) are to the teacher's: mean cosine to the
teacher's vector of the same item (same width only) and the mean share of each item's 10 nearest items (cosine)
that the teacher's vectors also rank in its 10 nearest.

``--remeasure`` instead times every encoder that has item vectors of each dataset in the run store (``text_emb``
artifacts) side by side over *all* the dataset's item texts and writes the median into each artifact's meta
(``encoders.remeasure_throughput``; the first pass kept beside it): the number the grids' ``text_frontier`` table
reads, measured once per dataset under the same conditions for every encoder instead of once per encoder whenever a
grid first built its vectors. Then ``metarec report GRID`` commits the artifacts' new meta with the results.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encoder_speed.py amazon-scientific amazon-office \
        [--texts 256] [--rounds 5] [--threads 2] [--fidelity] [--out results/encoder_speed]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encoder_speed.py amazon-scientific amazon-office --remeasure
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch


def encoders():
    """name -> (tokenizer, model): the teacher, its 6- and 3-layer students and MiniLM-L6."""
    from metarec.methods.distill.encoders import architectures

    return architectures(["mpnet-12", "mpnet-6", "mpnet-3", "minilm-6"])


def measure(dataset: str, models: dict, n_texts: int, rounds: int, max_len: int = 64) -> dict:
    from metarec.bench.experiment import get_split
    from metarec.methods.distill.encoders import inference_parameters, time_side_by_side
    from metarec.methods.distill.text import item_texts

    texts = [t for t in item_texts(get_split(dataset, "sequential", seed=100)) if t]
    if not texts:
        raise SystemExit(f"{dataset}: no item texts")
    rng = np.random.default_rng(0)
    sample = [texts[i] for i in rng.choice(len(texts), size=min(n_texts, len(texts)), replace=False)]
    speeds = time_side_by_side(models, sample, rounds, dict.fromkeys(models, max_len))
    teacher = "mpnet-12"
    out = {"dataset": dataset, "texts": len(sample), "rounds": rounds, "threads": torch.get_num_threads(),
           "encoders": {}}
    for name, values in speeds.items():
        # per-round ratio to the teacher's speed in the same round: the pairing removes the rounds' common drift
        ratios = [v / t for v, t in zip(values, speeds[teacher])]
        out["encoders"][name] = {"parameters": inference_parameters(models[name][1]),
                                 "items_per_s_median": statistics.median(values), "items_per_s": values,
                                 "speedup_median": statistics.median(ratios), "speedup_min": min(ratios),
                                 "speedup_max": max(ratios)}
    return out


def fidelity(dataset: str, k: int = 10) -> dict:
    """{"items": n, "encoders": encoder -> {cosine, neighbour_overlap}}: each encoder's item vectors against the
    teacher's (see the module docstring)."""
    from metarec.bench.experiment import get_split
    from metarec.methods.distill.encoders import ENCODERS, item_embeddings

    split = get_split(dataset, "sequential", seed=100)
    vectors = {}
    for enc in ENCODERS:
        emb, has, _ = item_embeddings(split, enc)
        vectors[enc] = emb[has].numpy()

    def neighbours(v: np.ndarray) -> np.ndarray:
        sim = v @ v.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1, kind="stable")[:, :k]

    teacher = vectors["mpnet-12"]
    top = neighbours(teacher)
    out = {}
    for enc, v in vectors.items():
        near = neighbours(v)
        out[enc] = {"cosine": float((v * teacher).sum(1).mean()) if v.shape == teacher.shape else None,
                    "neighbour_overlap": float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top, near)]))}
    return {"items": len(teacher), "encoders": out}


def render(results: list[dict]) -> str:
    lines = ["# Text encoders: encoding throughput side by side (`benchmarks/encoder_speed.py`)\n",
             "Interleaved rounds over the same sample of item texts in one process; speed-up = encoder items/s / "
             "teacher (mpnet-12) items/s in the same round, median [min, max] over rounds. Goal for mpnet-6: >= 1.8x.\n"]
    for r in results:
        lines.append(f"\n## {r['dataset']} ({r['texts']} texts, {r['rounds']} rounds, {r['threads']} threads)\n")
        lines.append("| encoder | parameters at inference | items/s (median) | speed-up vs mpnet-12 [min, max] |")
        lines.append("|---|---|---|---|")
        for name, e in r["encoders"].items():
            lines.append(f"| {name} | {e['parameters']:,} | {e['items_per_s_median']:.1f} | "
                         f"{e['speedup_median']:.2f}x [{e['speedup_min']:.2f}, {e['speedup_max']:.2f}] |")
        if "fidelity" in r:
            lines.append(f"\nFidelity of the item vectors the recommenders read (all {r['fidelity']['items']} items):\n")
            lines.append("| encoder | mean cosine to the teacher | top-10 neighbours shared with the teacher |")
            lines.append("|---|---|---|")
            for name, f in r["fidelity"]["encoders"].items():
                cos = "–" if f["cosine"] is None else f"{f['cosine']:.3f}"
                lines.append(f"| {name} | {cos} | {f['neighbour_overlap']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+")
    ap.add_argument("--texts", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fidelity", action="store_true", help="also compare the item vectors with the teacher's")
    ap.add_argument("--out", type=Path, default=Path("results/encoder_speed"))
    ap.add_argument("--remeasure", action="store_true",
                    help="time the encoders of the run store's item vectors side by side over all item texts and "
                         "record the medians in their artifacts (--rounds rounds)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from metarec.utils import atomic_write_text

    if a.remeasure:
        from metarec.bench.artifacts import Artifacts
        from metarec.bench.experiment import get_split
        from metarec.errors import DataError
        from metarec.methods.distill.encoders import remeasure_throughput

        for ds in a.datasets:
            try:
                metas = remeasure_throughput(get_split(ds, "sequential", seed=100), Artifacts(), rounds=a.rounds)
            except DataError as e:   # which artifact and why; nothing written
                print(f"error: {e}", file=sys.stderr)
                return 1
            for enc, meta in metas.items():
                print(f"{ds} {enc}: {meta['items_per_s']:.1f} items/s side by side ({a.rounds} rounds, "
                      f"{meta['threads']} threads; first pass {meta['first_pass']['items_per_s']:.1f})")
        return 0

    models = encoders()
    with torch.inference_mode():
        results = [measure(ds, models, a.texts, a.rounds) for ds in a.datasets]
        if a.fidelity:
            for r in results:
                r["fidelity"] = fidelity(r["dataset"])
    a.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out / "summary.json", json.dumps(results, indent=2) + "\n")
    md = render(results)
    atomic_write_text(a.out / "summary.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
