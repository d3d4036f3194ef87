"""The ``metarec`` command. User errors print one line (``error: ...``) and exit 2; no traceback."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metarec.errors import ConfigError, MetarecError


def _table(rows, headers) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", floatfmt=".4f", intfmt=",")


def cmd_datasets(args) -> int:
    from metarec.data import list_cards, status

    import time

    rows, broken = [], []
    for card in list_cards():
        t = time.perf_counter()
        try:
            st = status(card.name, load=not args.quick)
            if not args.quick and st["present"]:   # loading all staged datasets takes a while: say so as it goes
                print(f"[datasets] {card.name}: loaded in {time.perf_counter() - t:.1f} s", file=sys.stderr,
                      flush=True)
        except MetarecError as e:   # one broken dataset is its own row; the others are still listed
            broken.append(f"error: {e}")
            rows.append([card.name, "ERROR", None, None, None, "", "", card.terms[:48], "see below"])
            continue
        exp = card.expected or {}
        got = st.get("counts") or {}
        match = ""
        if got:
            match = "yes" if all(got.get(k) == v for k, v in exp.items()) else "NO"
        rows.append([card.name, "yes" if st["present"] else "no", got.get("users", exp.get("users")),
                     got.get("items", exp.get("items")), got.get("interactions", exp.get("interactions")), match,
                     "complete" if card.complete else "partial", card.terms[:48], st.get("path") or ""])
    print(_table(rows, ["dataset", "present", "users", "items", "interactions", "= card", "data", "terms", "path"]))
    if args.quick:
        print("(--quick: expected counts from the cards, datasets not loaded)")
    else:
        print("(users/items/interactions as loaded; '= card' compares them with the card's expected counts)")
    for row, card in zip(rows, list_cards()):
        if card.notes and not card.complete and row[1] == "yes":
            print(f"note {card.name}: {card.notes}")
    for line in broken:
        print(line, file=sys.stderr)
    return 1 if broken else 0


def cmd_download(args) -> int:
    from metarec.data.download import download

    path = download(args.dataset, root=Path(args.root) if args.root else None)
    print(f"{args.dataset}: files in {path}")
    return 0


def _preprocess(args) -> dict:
    out = {}
    if getattr(args, "min_rating", None) is not None:
        out["min_rating"] = args.min_rating
    if getattr(args, "k_core", None) is not None:
        out["k_core"] = args.k_core
    return out


def cmd_split(args) -> int:
    from metarec.bench.experiment import get_split, split_dir
    from metarec.protocols import get_protocol
    from metarec.utils import parse_assignments

    params = parse_assignments(args.param, "protocol parameter")
    split = get_split(args.dataset, args.protocol, params, args.seed, _preprocess(args), rebuild=True)
    folder = split_dir(args.dataset, args.protocol, get_protocol(args.protocol).resolve(params), args.seed,
                       _preprocess(args))
    d = split.describe()
    print(f"split written to {folder}")
    print(_table([[k, v] for k, v in d.items()], ["", ""]))
    for check in split.meta.get("checks", []):
        print(f"leakage check passed: {check}")
    if split.meta.get("sample"):
        print(f"note: {split.meta.get('note', 'this dataset is a sample')}")
    return 0


def cmd_run(args) -> int:
    import time

    # said before the heavy imports (torch, the method families: ~10 s on a small CPU), so a log never goes quiet;
    # on stdout, so that stderr holds nothing but an error when there is one
    print(f"[run] {args.method} on {args.dataset}/{args.protocol} seed {args.seed}: loading the methods", flush=True)
    from metarec.bench.experiment import get_split, run_one
    from metarec.methods import build_method
    from metarec.protocols import get_protocol
    from metarec.utils import atomic_write_json, home, parse_assignments, versions

    params = parse_assignments(args.param, "method parameter")
    method_cls = type(build_method(args.method, params))  # unknown names and parameters fail before any work
    if method_cls.protocols and args.protocol not in method_cls.protocols:
        raise ConfigError(f"method {args.method!r} does not support protocol {args.protocol!r} (it supports "
                          f"{', '.join(method_cls.protocols)})")
    if args.out and Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out}: is a folder; give the results JSON's file path")
    get_protocol(args.protocol)
    pparams = parse_assignments(args.protocol_param, "protocol parameter")
    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics else None
    if metrics:
        from metarec.eval.metrics import parse_metric
        for m in metrics:
            parse_metric(m)
    print(f"[run] reading (or building) the {args.protocol} split of {args.dataset}", flush=True)
    split = get_split(args.dataset, args.protocol, pparams, args.seed, _preprocess(args))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = home() / "single" / f"{args.dataset}-{args.protocol}-{args.method.replace(':', '_')}-{stamp}"
    print(f"{args.method} on {args.dataset}/{args.protocol} (split {split.fingerprint[:12]}, "
          f"{len(split.train):,} train rows, {split.n_items:,} items)", file=sys.stderr)
    res = run_one(split, args.method, params, seed=args.seed, metrics=metrics, workdir=workdir,
                  eval_mode="sampled" if args.sampled else "full", ties=args.ties)
    stages = list(res["metrics"])
    names = list(res["metrics"][stages[-1]])
    print(f"\n{args.method} on {args.dataset} ({args.protocol}, seed {args.seed}, {res.get('eval_mode')} ranking)")
    print(_table([[n] + [res["metrics"][s].get(n) for s in stages] for n in names], ["metric"] + stages))
    print(f"fit {res['timings']['fit_s']:.1f}s, params {res['num_parameters']:,}")
    if split.meta.get("sample"):
        print(f"note: {split.meta.get('note', 'this dataset is a sample')}")
    out = Path(args.out) if args.out else workdir / "results.json"
    per_user = res.pop("per_user")
    res["versions"] = versions()
    atomic_write_json(out, res)
    for stage, frame in per_user.items():
        frame.to_csv(out.with_name(f"per_user_{stage}.csv"))
    print(f"results: {out}")
    return 0


def cmd_methods(args) -> int:
    from metarec.methods import get_method, list_methods

    rows, broken = [], []
    for name, origin in list_methods().items():
        try:
            cls = get_method(name)
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
            params = ", ".join(f"{k}={v}" for k, v in cls.defaults.items() if k not in ("progress_bar",))
        except MetarecError as e:
            doc, params = "(failed to load: see below)", ""
            broken.append(f"error: {e}")
        rows.append([name, origin, doc[:60], params[:90]])
    print(_table(rows, ["method", "from", "what", "parameters (defaults)"]))
    for line in broken:   # every other method is listed; each broken one is one line on stderr, exit 1
        print(line, file=sys.stderr)
    return 1 if broken else 0


def cmd_protocols(args) -> int:
    from metarec.protocols import PROTOCOLS

    print(_table([[p.name, p.doc, ", ".join(f"{k}={v}" for k, v in p.defaults.items())]
                  for p in PROTOCOLS.values()], ["protocol", "what", "parameters (defaults)"]))
    return 0


def cmd_bench(args) -> int:
    from metarec.bench.compose import Composite
    from metarec.bench.grid import load_experiment

    grid = load_experiment(args.grid)
    if isinstance(grid, Composite):   # its member grids in order, each as `metarec bench <member>` would run it
        if args.only:
            raise ConfigError(f"{args.grid}: --only applies to one grid; run the member grid with it")
        rc = 0
        for member in grid.members:
            print(f"== member grid {member.name} ({member.path})")
            rc = max(rc, _bench_one(member, args))
        for member, reason in grid.deferred:   # validated above; run where it fits, then `metarec report` joins it
            print(f"== deferred member grid {member.name} ({member.path}): not run here: {reason}")
        return rc
    if args.only:
        grid = grid.restrict(args.only)
    return _bench_one(grid, args)


def _bench_one(grid, args) -> int:
    from metarec.bench import run_grid

    if args.run_cap is not None and args.run_cap <= 0:
        raise ConfigError(f"--run-cap must be a positive number of seconds, got {args.run_cap:g}")
    out = run_grid(grid, executor=args.executor, jobs=args.jobs, address=args.address,
                   retry_failed=args.retry_failed, probe=args.probe, run_cap_s=args.run_cap)
    c = out["counts"]
    print(f"grid {grid.name}: {c['total']} runs: {c['done']} run now, {c['cached']} already finished, "
          f"{c['copied']} copied from identical runs, {c['failed']} failed now, {c['skipped_failed']} failed "
          "earlier (skipped; --retry-failed reruns them)")
    for f in out["failures"]:
        spec = f.get("spec") or {}
        what = f"{spec.get('method', '?')} on {spec.get('dataset', '?')}/{spec.get('protocol', '?')} seed " \
               f"{spec.get('seed', '?')}" if spec else "(run from before failures recorded their method)"
        print(f"  failed {f['key']} {what}: {f['reason'][:160]}")
    if out.get("trials") is not None:
        t = out["trials"]
        print(f"tuning: {t.study.nunique()} studies, {len(t)} trials ({(t.state == 'PRUNED').sum()} pruned, "
              f"{(t.state == 'FAIL').sum()} failed: see their reason in trials.csv), {t.wall_s.sum() / 60:.1f} min "
              "of trial runs; "
              f"{out['store'].root / 'trials.csv'}")
        for note in out.get("notes", []):
            print(f"  {note}")
    if not out["tidy"].empty:
        print(f"tidy table: {out['store'].root / 'results.parquet'} (+ .csv); next: metarec report "
              f"{grid.path or args.grid}")
    return 0 if not c["failed"] else 1


def cmd_report(args) -> int:
    from metarec import report
    from metarec.bench.compose import Composite, compose_results
    from metarec.bench.grid import load_experiment
    from metarec.bench.store import TIDY_COLUMNS, RunStore, read_parquet

    grid = load_experiment(args.grid)
    out = Path(args.out) if args.out else report.RESULTS / grid.name
    if isinstance(grid, Composite):   # the members' exported results as one folder; nothing is trained
        if args.studies_only:
            raise ConfigError(f"{args.grid}: --studies-only applies to one grid; run it on the member grids")
        composed = compose_results(grid, report.RESULTS, out)
        if composed["missing"]:
            print("members without exported results (run `metarec report` on them): "
                  + ", ".join(composed["missing"]))
        built = report.build(out)
        print(f"{out}: {composed['cells']} cells from {len(grid.everyone) - len(composed['missing'])} member grid(s); "
              f"{built['markdown']}")
        return 0
    store = RunStore(grid.name)
    if args.studies_only:   # a long tuning run's progress, committable mid-run: the studies alone
        saved = report.save_studies(store, out)
        for line in saved:
            print(line)
        for folder in report.save_artifacts(grid, out):
            print(f"artifact kept: {folder}")
        return 0
    table = store.root / "results.parquet"
    if not table.is_file():
        raise ConfigError(f"no results for grid {grid.name!r} in {store.root}: run `metarec bench {args.grid}` first")
    tidy = read_parquet(table, f"rerun `metarec bench {args.grid}` to rewrite it from the finished runs",
                        TIDY_COLUMNS)
    report.export(grid, tidy, store, out)
    for folder in report.save_artifacts(grid, out):
        print(f"artifact kept: {folder}")
    built = report.build(out)
    print(Path(built["markdown"]).read_text())
    for name, figs in built["figures"].items():
        print(f"figure {name}: " + (", ".join(str(f) for f in figs) if isinstance(figs, list) else figs))
    return 0


def cmd_paper(args) -> int:
    from metarec.report.paper import regenerate

    return regenerate(Path(args.results), Path(args.paper), build_pdf=not args.no_pdf)


class _Parser(argparse.ArgumentParser):
    """argparse with the suite's error style: one line on stderr naming the option, exit 2 (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _int_at_least(low: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{what} must be an integer >= {low}, got {value}")
        return value
    return parse


def _seed(text: str) -> int:
    from metarec.params import SEED

    try:
        return SEED.check(int(text), "seed")
    except (ValueError, MetarecError):
        raise argparse.ArgumentTypeError(f"seed must be an integer in 0..2**32-1, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="metarec", description="Benchmark suite: one persisted split, one evaluator. Splits, runs "
                "and tuning studies go under $METAREC_HOME (default ./runs); datasets are looked up under "
                "$METAREC_DATA, ./datasets and ../shared/datasets.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("datasets", help="list datasets: counts, terms, whether the files are present")
    s.add_argument("--quick", action="store_true", help="don't load datasets; show the cards' expected counts")
    s.set_defaults(fn=cmd_datasets)

    s = sub.add_parser("download", help="download a dataset with a public URL into the data cache")
    s.add_argument("dataset", help="dataset name (see `metarec datasets`)")
    s.add_argument("--root", help="target data root (default: the first $METAREC_DATA entry, else ./datasets)")
    s.set_defaults(fn=cmd_download)

    def data_opts(s):
        s.add_argument("--min-rating", type=float, help="keep interactions with rating >= this (to implicit)")
        s.add_argument("--k-core", type=_int_at_least(1, "--k-core"),
                       help="iterative k-core filter: keep users and items with at least this many interactions")
        s.add_argument("--seed", type=_seed, default=0,
                       help="split seed (and training seed for `run`), 0..2**32-1 (default 0)")

    s = sub.add_parser("split", help="write and describe a persisted split")
    s.add_argument("dataset", help="dataset name (see `metarec datasets`)")
    s.add_argument("--protocol", "-p", required=True, help="split protocol (see `metarec protocols`)")
    s.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="protocol parameter, value as YAML, e.g. ratios=[0.8,0.1,0.1] (repeatable)")
    data_opts(s)
    s.set_defaults(fn=cmd_split)

    s = sub.add_parser("run", help="train one method on one split, evaluate, write results JSON")
    s.add_argument("--dataset", "-d", required=True, help="dataset name (see `metarec datasets`)")
    s.add_argument("--protocol", "-p", default="general", help="split protocol (default general)")
    s.add_argument("--method", "-m", required=True, help="method name (see `metarec methods`)")
    s.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="method parameter, value as YAML, e.g. dim=64 or lr=1e-3 (repeatable)")
    s.add_argument("--protocol-param", action="append", metavar="KEY=VALUE",
                   help="protocol parameter, value as YAML (repeatable)")
    s.add_argument("--metrics", help="comma-separated, e.g. ndcg@10,recall@20 (default: the registry's set for "
                                     "the protocol)")
    s.add_argument("--sampled", action="store_true", help="sampled-negative ranking (100 negatives), labelled so")
    s.add_argument("--ties", choices=("expected", "first"), default="expected",
                   help="tied scores: expected = each metric's expectation over all orders of the tied items "
                        "(default); first = the lower item id first (the old deterministic order)")
    s.add_argument("--out", help="results JSON path (default <METAREC_HOME>/single/<run>/results.json); "
                                 "per-user CSVs go beside it")
    data_opts(s)
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("bench", help="run a grid (resumable; finished runs are never recomputed)")
    s.add_argument("grid", help="grid YAML, e.g. benchmarks/smoke.yaml")
    s.add_argument("--executor", default="sequential", choices=("sequential", "pool", "ray"),
                   help="sequential (default), pool (local processes) or ray")
    s.add_argument("--jobs", "-j", type=_int_at_least(1, "--jobs"), default=1,
                   help="parallel runs for pool/ray (default 1)")
    s.add_argument("--address", help="Ray cluster address (default: start a local instance)")
    s.add_argument("--retry-failed", action="store_true", help="rerun runs that failed before")
    s.add_argument("--probe", action="store_true",
                   help="measure the grid's cost instead of running it: only the first trial of every tuned cell's "
                        "study (kept: the study continues from it), then `python benchmarks/compute_plan.py GRID`")
    s.add_argument("--run-cap", type=float, metavar="SECONDS",
                   help="stop any run after this many seconds of wall time and record it as failed ('over the run "
                        "cap'): a run is not resumable mid-training, so one longer than the machine lives is lost")
    s.add_argument("--only", action="append", metavar="KEY=GLOB",
                   help="run only the cells whose dataset/protocol/method matches, e.g. --only protocol=general "
                        "--only 'method=recbole:*' (repeatable; comma-separated globs); the rest of the grid's "
                        "results are kept")
    s.set_defaults(fn=cmd_bench)

    s = sub.add_parser("report", help="tables (Markdown, LaTeX) and figures for a grid's results")
    s.add_argument("grid", help="the grid YAML that was run with `metarec bench`")
    s.add_argument("--out", help="output folder (default results/<grid name>)")
    s.add_argument("--studies-only", action="store_true",
                   help="only copy the grid's tuning studies (tuning.db, a consistent copy even while `metarec bench` "
                        "runs, and trials_so_far.csv) into the output folder: commit them and a new machine's bench "
                        "continues the studies instead of starting them again")
    s.set_defaults(fn=cmd_report)

    s = sub.add_parser("paper", help="regenerate every table and figure from results/, build the PDF if LaTeX exists")
    s.add_argument("--results", default="results", help="folder of committed grid results (default results)")
    s.add_argument("--paper", default="paper", help="paper folder with paper.tex (default paper)")
    s.add_argument("--no-pdf", action="store_true", help="regenerate tables and figures only, no LaTeX build")
    s.set_defaults(fn=cmd_paper)

    s = sub.add_parser("methods", help="list registered methods (built-in and plugins)")
    s.set_defaults(fn=cmd_methods)
    s = sub.add_parser("protocols", help="list split protocols")
    s.set_defaults(fn=cmd_protocols)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.fn(args) or 0
    except MetarecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume (finished runs are kept)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
