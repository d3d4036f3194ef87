"""Tuned mf-bpr vs tuned RecBole BPR, side by side on the same splits, in one run (issue: equal-budget tuning).

    python benchmarks/bpr_tuned.py [--grid benchmarks/tuned-bpr.yaml] [--executor pool --jobs 2]

Runs (or resumes) the tuned grid, then prints per method: test NDCG@10 mean ± std over the evaluation seeds, the
relative gap to recbole:BPR, and the fit wall time of the confirm runs (mean and ratio ours / RecBole). Both sides'
fit times come from the same grid on the same machine; with --jobs 1 (default) no two runs overlap.
Goals: |gap| <= 2 % and fit-time ratio <= 0.5.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import metarec  # noqa: E402,F401
from metarec.bench import load_grid, run_grid  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default=str(Path(__file__).with_name("tuned-bpr.yaml")))
    ap.add_argument("--executor", default="sequential")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    grid = load_grid(args.grid)
    out = run_grid(grid, executor=args.executor, jobs=args.jobs)
    tidy, trials = out["tidy"], out["trials"]
    test = tidy[(tidy.stage == "test") & (tidy.metric == "ndcg@10")]
    rows = {}
    for method, g in test.groupby("method"):
        fit = g.drop_duplicates("run").fit_s
        t = trials[trials.method == method]
        rows[method] = {"ndcg": g.value.mean(), "std": g.value.std(ddof=1), "n": len(g), "fit": fit.mean(),
                        "params": g.params.iloc[0], "trials": len(t), "pruned": int((t.state == "PRUNED").sum()),
                        "tuning_min": t.wall_s.sum() / 60}
    print(f"\n{'method':<12} {'test NDCG@10':>16} {'seeds':>5} {'fit s':>7} {'trials':>6} {'pruned':>6} "
          f"{'tuning':>8}  selected")
    for m, r in rows.items():
        print(f"{m:<12} {r['ndcg']:.4f} ± {r['std']:.4f} {r['n']:>5} {r['fit']:>7.1f} {r['trials']:>6} "
              f"{r['pruned']:>6} {r['tuning_min']:>6.1f}m  {r['params']}")
    ours, theirs = rows.get("mf-bpr"), rows.get("recbole:BPR")
    if ours and theirs:
        gap = ours["ndcg"] / theirs["ndcg"] - 1
        ratio = ours["fit"] / theirs["fit"]
        print(f"\nmf-bpr vs recbole:BPR: NDCG@10 {gap:+.2%} (goal: within 2 %: {'met' if abs(gap) <= 0.02 or gap > 0 else 'MISSED'}); "
              f"fit time ratio {ratio:.2f} (goal <= 0.5: {'met' if ratio <= 0.5 else 'MISSED'})")
    for f in out["failures"]:
        print(f"failed {f['key']}: {f['reason'][:200]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
