"""Multi-task benchmark (issue 6): single-task vs SharedBottom vs MMoE vs PLE, per task, mean ± std over seeds, and
paired significance against the single-task models.

Parts (``benchmarks/multitask.yaml``, one grid each):
    ranking      ml-100k (interaction + rating + liked): run through the harness (metarec.bench.run_grid;
                 resumable), exported to results/multitask/
    amazon       amazon2018-all-beauty (interaction + rating): results/multitask_amazon/
    mind         mind-sample, impressions (click + news category): results/multitask_mind/
    multidomain  the Amazon 2018 categories combined into one dataset (ids disjoint per domain), one interaction
                 task per category: trained with run_one on the combined split (it is not a registered dataset, so
                 not a grid cell), written in the harness's export format to results/multitask_multidomain/

For every part the report (tables, per-task figure) is built with metarec.report.build, and a per-task table is
printed and written to ``tables/multitask_vs_single.md``: test mean ± std per method, and for metrics with per-unit
values (per user; per impression on MIND) the paired t-test and Wilcoxon signed-rank test of each multi-task model
against mtl:single over (seed, unit) pairs, Holm-corrected across the three models (metarec.report.stats).
Aggregate-only metrics (pooled MAE/RMSE/AUC, GAUC) have no per-unit values and are not tested.
Absent staged datasets are skipped with a message.

    flock /tmp/metarec-heavy.lock .venv/bin/python benchmarks/multitask.py [--parts ranking amazon mind multidomain]
        [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

import metarec  # noqa: F401  (offline flags, shims)

HERE = Path(__file__).resolve().parent
REFERENCE = "mtl:single"
ALPHA = 0.05


def staged(name: str) -> bool:
    from metarec.data.registry import locate

    return locate(name) is not None


def vs_single(tidy: pd.DataFrame, per_user: pd.DataFrame | None) -> str:
    """Markdown: per dataset, metric rows x method columns (mean ± std), with paired tests against mtl:single."""
    from metarec.report.stats import paired_tests
    from metarec.report.tables import summary

    out = []
    summ = summary(tidy)
    for (ds, proto), g in summ.groupby(["dataset", "protocol"], sort=True):
        methods = [m for m in ["mtl:single", "mtl:shared-bottom", "mtl:mmoe", "mtl:ple"] if m in set(g.method)]
        out.append(f"### {ds} / {proto} (test; mean ± std over {int(g.n.max())} seeds)\n")
        out.append("| metric | " + " | ".join(methods) + " |")
        out.append("|---|" + "---|" * len(methods))
        pu = None
        if per_user is not None:
            pu = per_user[(per_user.dataset == ds) & (per_user.protocol == proto)]
        unit = "impression" if pu is not None and "impression" in pu.columns else "user"
        for metric in sorted(g.metric.unique(), key=lambda m: ("/" in m, m)):
            col = g[g.metric == metric].set_index("method")
            tests = pd.DataFrame()
            if pu is not None and metric in pu.columns:
                tests = paired_tests(pu, REFERENCE, metric, unit_cols=("seed", unit))
            cells = []
            for m in methods:
                if m not in col.index:
                    cells.append("–")
                    continue
                c = f"{col.loc[m, 'mean']:.4f} ± {col.loc[m, 'std']:.4f}"
                if m != REFERENCE:
                    if tests.empty:
                        c += " (n/a)"
                    else:
                        t = tests[tests.method == m].iloc[0]
                        mark = ("*" if t.t_p_holm < ALPHA else "") + ("†" if t.wilcoxon_p_holm < ALPHA else "")
                        c += f" Δ{t.mean_diff:+.4f} p={t.t_p_holm:.2g}{mark}"
                cells.append(c)
            out.append(f"| {metric} | " + " | ".join(cells) + " |")
        out.append(f"\n_Δ: mean paired difference vs {REFERENCE} over (seed, {unit}) pairs; p: paired t-test, "
                   f"Holm-corrected over the three models; * t-test, † Wilcoxon signed-rank, p < {ALPHA}; "
                   "(n/a): aggregate-only metric, no per-unit values to pair._\n")
    return "\n".join(out)


def finish(name: str, tidy: pd.DataFrame, per_user: pd.DataFrame | None, out: Path) -> None:
    from metarec import report

    built = report.build(out)
    text = vs_single(tidy, per_user)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "tables" / "multitask_vs_single.md").write_text(f"# {name}: multi-task vs single-task\n\n{text}\n")
    print(text)
    print(f"report: {built['markdown']}; per-task figure: {built['figures'].get('per_task')}")


def run_part(raw: dict, seeds, results: Path) -> None:
    from metarec import report
    from metarec.bench import parse_grid, run_grid

    raw = dict(raw, seeds=seeds or raw["seeds"])
    kept = []
    for d in raw["datasets"]:
        if staged(d["name"]):
            kept.append(d)
        else:
            print(f"skipped {d['name']}: dataset not staged (see `metarec datasets`)")
    if not kept:
        return
    grid = parse_grid(dict(raw, datasets=kept), source=f"{HERE / 'multitask.yaml'}:{raw['name']}",
                      path=HERE / "multitask.yaml")
    t0 = time.time()
    res = run_grid(grid, progress=True)
    print(f"{raw['name']}: {res['counts']} in {time.time() - t0:.0f} s")
    for f in res["failures"]:
        print(f"FAILED {f['key']}: {f['reason']}")
    if res["tidy"].empty:
        return
    out = report.export(grid, res["tidy"], res["store"], results / raw["name"])
    pu_path = out / "per_user.parquet"
    finish(raw["name"], res["tidy"], pd.read_parquet(pu_path) if pu_path.is_file() else None, out)


def run_multidomain(raw: dict, seeds, results: Path) -> None:
    """The combined Amazon 2018 dataset: every method x seed with run_one, exported in the harness's format."""
    from metarec.bench.store import select_configs
    from metarec.data import load_dataset
    from metarec.bench.experiment import run_one
    from metarec.methods import get_method
    from metarec.methods.multitask.multidomain import combine
    from metarec.protocols import get_protocol
    from metarec.utils import atomic_write_json

    present = [d for d in raw["domains"] if staged(d)]
    for d in raw["domains"]:
        if d not in present:
            print(f"skipped domain {d}: dataset not staged")
    if len(present) < 2:
        print("multidomain skipped: fewer than two Amazon 2018 categories staged")
        return
    ds = combine([load_dataset(d) for d in present], name="amazon2018-multidomain")
    proto = get_protocol("general")
    split = proto(ds, seed=int(raw.get("split_seed", 0)), **proto.resolve(None))
    rows, pus = [], []
    t0 = time.time()
    for method, m in raw["methods"].items():
        params = dict((m or {}).get("params") or {}, tasks=["domains"])
        for seed in seeds or raw["seeds"]:
            with tempfile.TemporaryDirectory() as tmp:
                r = run_one(split, method, params, seed=seed, metrics=list(raw["metrics"]), workdir=Path(tmp))
            base = {"run": f"{method}-{seed}", "dataset": split.dataset, "protocol": "general",
                    "protocol_params": json.dumps(split.params, sort_keys=True), "method": method,
                    "family": get_method(method).family, "params": json.dumps(params, sort_keys=True),
                    "seed": seed, "num_parameters": r["num_parameters"], "fit_s": r["timings"]["fit_s"],
                    "score_s": r["timings"].get("score_test_s", float("nan")), "eval_mode": r.get("eval_mode")}
            for stage, metrics in r["metrics"].items():
                rows += [{**base, "stage": stage, "metric": k, "value": v} for k, v in metrics.items()]
            pus.append(r["per_user"]["test"].reset_index().assign(dataset=split.dataset, protocol="general",
                                                                  protocol_params=base["protocol_params"],
                                                                  method=method, seed=seed))
            print(f"  {method} seed {seed}: ndcg@10 {r['metrics']['test'].get('ndcg@10', float('nan')):.4f} "
                  f"({r['timings']['fit_s']:.0f} s)", flush=True)
    print(f"multidomain: {len(rows) and len(pus)} runs in {time.time() - t0:.0f} s "
          f"({', '.join(present)}; {split.n_users} users, {split.n_items} items)")
    tidy = select_configs(pd.DataFrame(rows), raw["valid_metric"])
    per_user = pd.concat(pus, ignore_index=True)
    out = results / raw["name"]
    out.mkdir(parents=True, exist_ok=True)
    tidy.to_parquet(out / "results.parquet", index=False)
    tidy.to_csv(out / "results.csv", index=False)
    per_user.to_parquet(out / "per_user.parquet", index=False)
    atomic_write_json(out / "meta.json", {"grid": raw["name"], "valid_metric": raw["valid_metric"],
                                          "metrics": raw["metrics"], "seeds": seeds or raw["seeds"],
                                          "grid_file": str(HERE / "multitask.yaml"), "domains": present})
    finish(raw["name"], tidy, per_user, out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", default=["ranking", "mind", "amazon", "multidomain"],
                    choices=["ranking", "amazon", "mind", "multidomain"])
    ap.add_argument("--seeds", nargs="+", type=int, default=None)
    ap.add_argument("--results", default=str(HERE.parent / "results"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    spec = yaml.safe_load((HERE / "multitask.yaml").read_text())
    results = Path(args.results)
    for part in args.parts:
        print(f"== {part} ==", flush=True)
        if part == "multidomain":
            run_multidomain(spec[part], args.seeds, results)
        else:
            run_part(spec[part], args.seeds, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
