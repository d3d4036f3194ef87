"""Distillation benchmark (issue 5): teacher / student-alone / each KD variant / text teacher -> text student.

Runs the grid ``benchmarks/distill.yaml`` through the harness (``metarec.bench.run_grid``; resumable: finished runs
are cached, teachers are cached under ``<home>/teachers``), exports ``results/distill/`` (tables, significance tests,
the size_vs_accuracy and inference_vs_accuracy figures) and prints, per dataset / protocol, the goal table:

    NDCG@10, Recall@10 (test, mean ± std over seeds), inference parameters, inference time (scoring every test
    user: the method's score() alone, fastest of repeats, one thread — measured on a freshly built model, since the
    time does not depend on the weights), and for each student vs the teacher: params %, NDCG %, speed-up, and the
    gain over the student trained alone. Text encoders: items/second of MiniLM-L6 (teacher) and of the DistilBERT
    student over the dataset's item texts.

Goals (issue 5): student <= 25 % of the teacher's parameters, >= 95 % of its NDCG@10, >= 3x faster inference, and
better than the same student trained alone. Staged datasets that are absent are skipped with a message.

    flock /tmp/metarec-heavy.lock .venv/bin/python benchmarks/distill.py [--seeds 0 1 2] [--datasets ml-100k]
        [--protocols sequential] [--methods distill:teacher distill:student ...]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

import metarec  # noqa: F401  (offline flags, shims)

HERE = Path(__file__).resolve().parent
STUDENTS = ("distill:kd-soft", "distill:kd-rd", "distill:kd-rrd")


def staged(name: str) -> bool:
    from metarec.data.registry import locate

    return locate(name) is not None


def inference_time(method_name: str, params: dict, split, repeats: int = 5, min_total_s: float = 1.0) -> float:
    """Seconds to score every test user (evaluator-sized batches) with a freshly built model: the fastest of at
    least ``repeats`` passes (and of as many as fit in ``min_total_s``) — the minimum, as timeit advises, because
    on a shared CPU the other passes measure the neighbours' load, not the model."""
    from metarec.eval import Evaluator
    from metarec.methods import build_method

    m = build_method(method_name, params)
    m.prepare(split, 0)
    if m.module.text_student is not None:
        m.module.refresh_text_cache()
    m.set_stage("test")
    users = torch.from_numpy(split.users("test").astype(np.int64))
    bs = Evaluator(split, metrics=["ndcg@10"]).batch_size
    times = []
    while len(times) < repeats or sum(times) < min_total_s:
        t = time.perf_counter()
        for lo in range(0, len(users), bs):
            m.score(users[lo:lo + bs])
        times.append(time.perf_counter() - t)
    return min(times)


def text_encoder_speed(split, max_len: int = 64) -> dict:
    from metarec.methods.distill import text as T

    texts = [t for t in T.item_texts(split) if t]
    if not texts:
        return {}
    tok, teacher = T.load_teacher_encoder()
    t = time.perf_counter()
    T.encode_with_teacher(texts, tok, teacher, max_len=max_len)
    t_teacher = time.perf_counter() - t
    student = T.TextStudent(len(tok), max_len=max_len).eval()
    ids, mask, has = T.tokenize_items(split, tok, max_len)
    idx = torch.nonzero(has, as_tuple=True)[0]
    order = idx[torch.argsort(mask[idx].sum(1))]          # length-sorted batches, as for the teacher
    t = time.perf_counter()
    with torch.no_grad():
        for lo in range(0, len(order), 64):
            i = order[lo:lo + 64]
            student(ids[i], mask[i])
    t_student = time.perf_counter() - t
    return {"items": len(texts), "minilm_items_per_s": len(texts) / t_teacher,
            "student_items_per_s": len(texts) / t_student,
            "minilm_params": sum(p.numel() for p in teacher.parameters()),
            "student_params": student.inference_parameters()}


def _safe(fn, *args, default=float("nan")):
    try:
        return fn(*args)
    except Exception as e:  # a timing failure must not lose the accuracy table
        print(f"[distill] {fn.__name__}{args[:1]} failed: {type(e).__name__}: {e}")
        return default


def fmt(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summarize(tidy: pd.DataFrame, root: Path, repeats: int) -> tuple[str, dict]:
    from metarec.bench.experiment import get_split

    sel = tidy[tidy.selected & (tidy.stage == "test")]
    lines, out = [], {}
    for (ds, proto), g in sel.groupby(["dataset", "protocol"], sort=True):
        split_params = json.loads(g.protocol_params.iloc[0]) if isinstance(g.protocol_params.iloc[0], str) \
            else g.protocol_params.iloc[0]
        split = get_split(ds, proto, split_params, 0, root=root)
        rows = {}
        for method, h in g.groupby("method", sort=False):
            vals = {m: h[h.metric == m].set_index("seed").value for m in ("ndcg@10", "recall@10")}
            params = json.loads(h.params.iloc[0])
            rows[method] = {
                "ndcg@10": float(vals["ndcg@10"].mean()), "ndcg@10_std": float(vals["ndcg@10"].std(ddof=1)),
                "recall@10": float(vals["recall@10"].mean()), "recall@10_std": float(vals["recall@10"].std(ddof=1)),
                "seeds": sorted(int(s) for s in vals["ndcg@10"].index), "per_seed_ndcg@10": vals["ndcg@10"].to_dict(),
                "params": int(h.num_parameters.iloc[0]), "score_s_report": float(h.score_s.mean()),
                "infer_s": _safe(inference_time, method, params, split, repeats), "config": params}
        order = [m for m in ("distill:teacher", "distill:student", *STUDENTS, "distill:text-teacher",
                             "distill:text-student", "distill:text-student-alone") if m in rows]
        lines.append(f"\n### {ds} / {proto} (test; seeds {rows[order[0]]['seeds']})\n")
        lines.append("| method | NDCG@10 | Recall@10 | params | inference s | params % | NDCG % | speed-up | "
                     "vs alone |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        pairs = {m: ("distill:teacher", "distill:student") for m in STUDENTS}
        pairs["distill:text-student"] = ("distill:text-teacher", "distill:text-student-alone")
        pairs["distill:student"] = ("distill:teacher", None)
        pairs["distill:text-student-alone"] = ("distill:text-teacher", None)
        for m in order:
            r = rows[m]
            cells = ["", "", "", ""]
            if m in pairs and pairs[m][0] in rows:
                t = rows[pairs[m][0]]
                r["params_pct"] = 100 * r["params"] / t["params"]
                r["ndcg_pct"] = 100 * r["ndcg@10"] / t["ndcg@10"]
                r["speedup"] = t["infer_s"] / r["infer_s"]
                cells[:3] = [f"{r['params_pct']:.1f}", f"{r['ndcg_pct']:.1f}", f"{r['speedup']:.1f}x"]
                alone = pairs[m][1]
                if alone and alone in rows:
                    r["gain_vs_alone"] = r["ndcg@10"] - rows[alone]["ndcg@10"]
                    cells[3] = f"{r['gain_vs_alone']:+.4f}"
            lines.append(f"| {m} | {fmt(r['ndcg@10'], r['ndcg@10_std'])} | {fmt(r['recall@10'], r['recall@10_std'])} "
                         f"| {r['params']:,} | {r['infer_s']:.4f} | " + " | ".join(cells) + " |")
        enc = _safe(text_encoder_speed, split, default={}) if "distill:text-teacher" in rows or "distill:text-student" in rows else {}
        if enc:
            lines.append(f"\nText encoders over {enc['items']} item texts: MiniLM-L6 teacher "
                         f"{enc['minilm_items_per_s']:.0f} items/s ({enc['minilm_params']:,} params), DistilBERT "
                         f"student {enc['student_items_per_s']:.0f} items/s ({enc['student_params']:,} params): "
                         f"{enc['student_items_per_s'] / enc['minilm_items_per_s']:.1f}x.")
        out[f"{ds}/{proto}"] = {"methods": rows, "text_encoders": enc}
    return "\n".join(lines) + "\n", out


def main(argv=None) -> int:
    from metarec.bench import parse_grid, run_grid
    from metarec.report import build, export
    from metarec.utils import atomic_write_json, atomic_write_text, home

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=str(HERE / "distill.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+")
    ap.add_argument("--datasets", nargs="+")
    ap.add_argument("--protocols", nargs="+")
    ap.add_argument("--methods", nargs="+")
    ap.add_argument("--out", default="results/distill")
    ap.add_argument("--repeats", type=int, default=5, help="inference-time repeats (at least; the fastest counts)")
    ap.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    raw = yaml.safe_load(Path(args.grid).read_text())
    if args.seeds:
        raw["seeds"] = args.seeds
    datasets = []
    for d in raw["datasets"]:
        name = d["name"] if isinstance(d, dict) else d
        if args.datasets and name not in args.datasets:
            continue
        if not staged(name):
            print(f"[distill] skipped: dataset {name} is not staged (see `metarec datasets`)")
            continue
        if args.protocols and isinstance(d, dict):
            d = {**d, "protocols": [p for p in d["protocols"] if (p if isinstance(p, str) else p["name"])
                                    in args.protocols]}
            if not d["protocols"]:
                continue
        datasets.append(d)
    if not datasets:
        print("[distill] nothing to run")
        return 0
    raw["datasets"] = datasets
    if args.methods:
        raw["methods"] = {k: v for k, v in raw["methods"].items() if k in args.methods}
    grid = parse_grid(raw, source=args.grid, path=Path(args.grid))
    t0 = time.time()
    res = run_grid(grid, progress=False, retry_failed=args.retry_failed)
    print(f"[distill] runs: {res['counts']}  ({time.time() - t0:.0f} s)")
    for f in res["failures"]:
        print(f"[distill] FAILED {f['spec']['method']} {f['spec']['dataset']}/{f['spec']['protocol']}: {f['reason']}")
    tidy = res["tidy"]
    if tidy.empty:
        return 1
    out = Path(args.out)
    export(grid, tidy, res["store"], out)
    built = build(out)
    table, summary = summarize(tidy, Path(home()), args.repeats)
    header = ("# Distillation: goal table\n\nGoals: student <= 25 % of the teacher's parameters, >= 95 % of its "
              "NDCG@10, >= 3x faster inference, better than student-alone. 'params %', 'NDCG %' and 'speed-up' "
              "compare each student with its teacher (KD rows and distill:student: distill:teacher; text rows: "
              "distill:text-teacher); 'vs alone' is the NDCG@10 gain over the same student trained alone.\n")
    atomic_write_text(out / "summary.md", header + table)
    atomic_write_json(out / "summary.json", summary)
    print(table)
    print(f"[distill] report: {built['markdown']}; figures: {built['figures']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
