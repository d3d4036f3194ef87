"""Meta-learned cold start (issue 7): MAML / first-order MAML / Reptile vs fine-tuning, no adaptation, popularity.

Runs the grids through metarec.bench.run_grid, exports them to results/<grid>/ and builds the shared report (one
table per K, paired tests against the best baseline, the K-shot figure), then prints:

  * a K x method table of test means ± std over seeds;
  * paired tests (t-test and Wilcoxon on per-user values, pairs = (seed, user), Holm-corrected across methods)
    against ``meta:finetune`` — the honest baseline — for every K and metric;
  * MeLU-protocol MAE and nDCG@3 next to MeLU's published figures (ML-1M, MeLU-5: MAE 0.7854, nDCG@3 0.8812).

    .venv/bin/python benchmarks/meta.py                       # ml-100k K-sweep (benchmarks/meta.yaml)
    .venv/bin/python benchmarks/meta.py --grids meta meta_amazon meta_newitems
    .venv/bin/python benchmarks/meta.py --seeds 0 --ks 1 5 20  # a subset (reported as such)

Grids: meta.yaml (ml-100k, ratings, K in 1/3/5/10/20), meta_amazon.yaml (amazon-office, implicit feedback, ranking
metrics only), meta_newitems.yaml (ml-100k, MeLU's new-item variant). A grid whose dataset is not staged is
skipped with a message.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import metarec  # noqa: F401  (offline settings, compat shims)
from metarec import report
from metarec.bench import parse_grid, run_grid
from metarec.bench.store import lower_is_better
from metarec.data.registry import status
from metarec.report import plots
from metarec.report.stats import paired_tests

HERE = Path(__file__).resolve().parent
MELU = {"query/mae": 0.7854, "query/ndcg@3": 0.8812}
MELU_NOTE = ("MeLU (Lee et al., KDD 2019), MeLU-5, MovieLens-1M, existing items for new users: 6,040 users, "
             "users with 13-100 ratings, support = all but the last 10 ratings (3-90), 10 query items. Here: "
             "ml-100k (943 users, 1,682 items), users with >= 30 ratings, fixed K support, 10 query items, "
             "user features age/gender/occupation/zip and item genres/year only (MeLU also used director, actors, "
             "rating). Different data size and support sizes: not a reproduction.")
REFERENCE = "meta:finetune"
SHOW = ["query/mae", "query/rmse", "query/ndcg@3", "ndcg@10", "recall@10"]


def load(name: str, seeds, ks) -> dict:
    raw = yaml.safe_load((HERE / f"{name}.yaml").read_text())
    if seeds:
        raw["seeds"] = list(seeds)
    if ks:
        for d in raw["datasets"]:
            d["protocols"] = [p for p in d["protocols"] if p["params"]["k_shot"] in ks]
    return raw


def k_of(protocol_params: str) -> int:
    return int(json.loads(protocol_params)["k_shot"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grids", nargs="+", default=["meta"])
    ap.add_argument("--seeds", nargs="+", type=int)
    ap.add_argument("--ks", nargs="+", type=int)
    ap.add_argument("--results", default="results")
    ap.add_argument("--retry-failed", action="store_true", help="run again the runs recorded as failed")
    args = ap.parse_args(argv)
    for name in args.grids:
        raw = load(name, args.seeds, args.ks)
        missing = [d["name"] for d in raw["datasets"] if not status(d["name"])["present"]]
        if missing:
            print(f"[{name}] skipped: dataset(s) {', '.join(missing)} not staged (see `metarec datasets`)")
            continue
        grid = parse_grid(raw, source=f"benchmarks/{name}.yaml", path=HERE / f"{name}.yaml")
        t0 = time.time()
        out = run_grid(grid, progress=False, retry_failed=args.retry_failed)
        print(f"\n=== grid {grid.name}: {out['counts']} in {time.time() - t0:.0f}s; seeds {grid.seeds} ===")
        for f in out["failures"]:
            print(f"FAILED {f['params']}: {f['reason']}")
        tidy = out["tidy"]
        if tidy.empty:
            continue
        folder = report.export(grid, tidy, out["store"], Path(args.results) / grid.name)
        built = report.build(folder)
        extra_figs = []
        for metric in ("query/mae", "query/ndcg@3", "ndcg@10"):
            if metric != grid.valid_metric and metric in set(tidy.metric):
                extra_figs += plots.kshot_curve(tidy.assign(metric=tidy.metric.str.replace("/", "_")),
                                                metric.replace("/", "_"), folder / "figures")
        print(f"report: {built['markdown']}; figures: "
              f"{[str(p) for v in built['figures'].values() if isinstance(v, list) for p in v if p.suffix == '.png']}"
              f" + {[str(p) for p in extra_figs if p.suffix == '.png']}")
        summarise(tidy, folder)
    return 0


def summarise(tidy: pd.DataFrame, folder: Path) -> None:
    sel = tidy[tidy.selected & (tidy.stage == "test")].copy()
    sel["k"] = sel.protocol_params.map(k_of)
    sel["new_items"] = sel.protocol_params.map(lambda s: json.loads(s).get("new_items", False))
    metrics = [m for m in SHOW if m in set(sel.metric)]
    agg = sel.groupby(["dataset", "new_items", "k", "method", "metric"])["value"].agg(["mean", "std", "count"])
    print("\nTest means ± std over seeds (n = seeds); fit_s = mean training seconds")
    fit = sel.drop_duplicates("run").groupby(["dataset", "new_items", "k", "method"])["fit_s"].mean()
    for (ds, new, k), _ in agg.groupby(level=[0, 1, 2]):
        print(f"\n{ds}{' (new items)' if new else ''}  K={k}")
        print(f"  {'method':<14}" + "".join(f"{m:>22}" for m in metrics) + f"{'fit_s':>8}")
        for method in sorted(sel[(sel.dataset == ds) & (sel.k == k) & (sel.new_items == new)].method.unique()):
            cells = []
            for m in metrics:
                key = (ds, new, k, method, m)
                if key not in agg.index:
                    cells.append("–")
                    continue
                c = agg.loc[key]
                cells.append(f"{c['mean']:.4f} ± {c['std'] if c['count'] > 1 else 0:.4f} ({int(c['count'])})")
            secs = fit.get((ds, new, k, method), np.nan)
            print(f"  {method:<14}" + "".join(f"{c:>22}" for c in cells) + f"{secs:>8.1f}")
    pu_path = folder / "per_user.parquet"
    if pu_path.is_file():
        pu = pd.read_parquet(pu_path)
        print(f"\nPaired tests against {REFERENCE} (per-user test values paired by (seed, user), Holm over methods)")
        rows = []
        for pp, g in pu.groupby("protocol_params"):
            for metric in ("query/mae", "query/ndcg@3", "ndcg@10", "recall@10"):
                t = paired_tests(g, REFERENCE, metric)
                if not t.empty:
                    rows.append(t.assign(k=k_of(pp), new_items=json.loads(pp).get("new_items", False),
                                         dataset=g.dataset.iloc[0]))
        if rows:
            t = pd.concat(rows, ignore_index=True)
            t["better"] = np.where(t.metric.map(lower_is_better), t.mean_diff < 0, t.mean_diff > 0)
            cols = ["dataset", "new_items", "k", "metric", "method", "n", "mean_diff", "better", "t_p_holm",
                    "wilcoxon_p_holm"]
            with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format",
                                   "{:.4g}".format):
                print(t[cols].sort_values(["dataset", "new_items", "metric", "k", "method"]).to_string(index=False))
            t[cols].to_csv(folder / "tables" / "paired_vs_finetune.csv", index=False)
    mel = sel[sel.metric.isin(list(MELU)) & ~sel.new_items]
    if not mel.empty:
        print(f"\nMeLU protocol (query set of 10 items per cold user) vs MeLU's published figures\n  {MELU_NOTE}")
        a = mel.groupby(["dataset", "k", "method", "metric"])["value"].agg(["mean", "std"]).reset_index()
        for (ds, k), g in a.groupby(["dataset", "k"]):
            print(f"  {ds} K={k}: " + "; ".join(
                f"{m}: " + ", ".join(f"{r.method} {r['mean']:.4f}" for _, r in g[g.metric == m].iterrows())
                for m in MELU))
        print(f"  MeLU (ML-1M): query/mae {MELU['query/mae']}, query/ndcg@3 {MELU['query/ndcg@3']}")
        for (ds, pp), g in mel.groupby(["dataset", "protocol_params"]):
            rnd = [random_order_ndcg(ds, json.loads(pp), int(seed)) for seed in sorted(g.seed.unique())]
            print(f"  {ds} K={k_of(pp)}: expected query/ndcg@3 of a random order of the query items = "
                  f"{np.mean(rnd):.4f} (chance level)")


def random_order_ndcg(dataset: str, params: dict, seed: int, k: int = 3) -> float:
    """Exact expectation of MeLU's nDCG@k when each user's query items are put in random order, averaged over
    the test users of that split: E[DCG@k] = mean gain x sum of the first k discounts."""
    from metarec.bench.experiment import get_split

    test = get_split(dataset, "cold_start", params, seed).test
    out = []
    for _, r in test.groupby("user")["rating"]:
        r = r.to_numpy(float)
        disc = 1.0 / np.log2(np.arange(2, min(k, len(r)) + 2))
        gain = 2.0 ** r - 1.0
        idcg = float((np.sort(gain)[::-1][:len(disc)] * disc).sum())
        if idcg > 0:
            out.append(float(gain.mean() * disc.sum() / idcg))
    return float(np.mean(out))


if __name__ == "__main__":
    sys.exit(main())
