"""Reproducibility audit: train finished runs of a grid again, each in a fresh process on today's code, and compare.

    python benchmarks/reproduce_runs.py GRID.yaml [--methods 'meta:*'] [--per-method 1] [--all] [--unchecked]
                                      [--adopt] [--out FILE]

Picks, per method (and protocol setting), the finished confirm or untuned runs of the grid's store (not tuning
trials, not runs copied from another grid: their donor is audited in its own grid), up to ``--per-method`` of them
(lowest seeds first; ``--all``: every one), and re-executes each through the runner's own path
(``execute_run``) in a newly spawned process, under a sibling grid name (``<grid>.reproduce``) in the same run
store, so splits and artifacts (a KD student's teacher) are shared and the grid's own runs are never touched. A
run is *reproduced* when every test and validation metric is bit-identical. Prints a Markdown table (stored vs
now, the revision each was recorded under) and writes it to ``--out``; exit status 1 if any run differs.

``--adopt``: a run reproduced bit for bit (every metric and every per-user value of both stages) is replaced in the
grid's store by its retraining, which records what the old run could not (the code its process imported, the
machine, peak memory), with ``reproduces`` naming the revision the old run was recorded under; the copies other
grids took of it (``tune.reuse``) are re-copied. Re-run ``metarec report`` on the grids named afterwards.

Why this exists: a long-lived pool worker keeps the modules it imported while the checkout moves on; until session
10 a run recorded HEAD at its end, so a committed number could come from code no commit holds. Runs since then
record the code their process imported (``result['code']``: revision, uncommitted changes, sources digest, and
whether the sources changed while the process ran); this audit checks the older ones by rerunning them.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import multiprocessing as mp
import shutil
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import metarec  # noqa: E402,F401
from metarec.bench import load_grid  # noqa: E402
from metarec.utils import atomic_write_text, home  # noqa: E402


def finished(grid_name: str, root: Path) -> list[tuple[Path, dict, dict]]:
    """(folder, config, result) of every finished run of the grid that trained itself (no trial, no copy)."""
    out = []
    for path in sorted((root / "grids" / grid_name / "runs").glob("*/result.json")):
        result = json.loads(path.read_text())
        if result.get("trial") or result.get("copied_from"):
            continue
        out.append((path.parent, json.loads((path.parent / "config.json").read_text()), result))
    return out


def rerun(args: tuple[dict, dict, str, str]) -> dict:
    """In a fresh process: the run again, through the runner, under ``grid_name`` in ``root``."""
    config, result, grid_name, root = args
    import metarec  # noqa: F401
    from metarec.bench.execute import execute_run
    from metarec.bench.grid import RunSpec

    spec = RunSpec(dataset=config["dataset"], preprocess=config["preprocess"], protocol=config["protocol"],
                   protocol_params=config["protocol_params"], split_seed=result["split_seed"],
                   method=config["method"], params=config["params"], seed=config["seed"],
                   metrics=tuple(config["metrics"]), eval_mode=config["eval_mode"], threads=config.get("threads", 1),
                   ties=config.get("ties", "expected"), also_eval=tuple(config.get("also_eval", ())))
    key = result["key"]
    folder = Path(root) / "grids" / grid_name / "runs" / key
    if folder.exists():   # a previous audit's copy: train it again
        shutil.rmtree(folder)
    status = execute_run(spec, key, grid_name, root)
    if status["status"] != "done":
        return {"status": status["status"], "reason": status.get("reason", "")}
    return {"status": "done", **json.loads((folder / "result.json").read_text())}


def same_per_user(old: Path, new: Path) -> bool:
    """Every per-user table the stored run has equal value for value in its retraining. A run restored from a
    committed results folder (a new machine's store) carries its test table only, as the committed per_user.parquet
    does; its validation metrics are still compared as means. A stored run without its test table cannot be checked
    per user: not reproduced."""
    import pandas as pd

    names = sorted(p.name for p in old.glob("per_user_*.parquet"))
    if "per_user_test.parquet" not in names or not all((new / n).is_file() for n in names):
        return False
    return all(pd.read_parquet(old / n).equals(pd.read_parquet(new / n)) for n in names)


def copies_index(root: Path) -> dict[tuple[str, str], list[Path]]:
    """(donor grid, donor run) -> the run folders in every grid's store that are copies of it (``copied_from``).
    Read once per audit: adopting a run replaces its copies under the same keys, so the index stays true."""
    index: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for path in sorted((root / "grids").glob("*/runs/*/result.json")):
        copied = json.loads(path.read_text()).get("copied_from") or {}
        if copied.get("grid") and copied.get("run"):
            index[(copied["grid"], copied["run"])].append(path.parent)
    return index


def adopt(grid_name: str, root: Path, key: str, old: dict, redone: Path,
          copies: dict[tuple[str, str], list[Path]]) -> list[str]:
    """Replace run ``key`` of ``grid_name`` by its retraining (the folder ``redone``), then every copy other grids
    took of it, and copies of those; returns the grids changed."""
    import datetime

    from metarec.bench.store import RunStore, copy_run
    from metarec.utils import atomic_write_json

    store = RunStore(grid_name, root)
    tmp = store.temp_folder(key)
    shutil.copytree(redone, tmp, dirs_exist_ok=True)
    result = json.loads((tmp / "result.json").read_text())
    result["reproduces"] = {"git_revision": old.get("git_revision"), "wall_s": old.get("wall_s"),
                            "recorded": "the code its process imported" if old.get("code") else "HEAD at its end",
                            "date": datetime.date.today().isoformat()}
    atomic_write_json(tmp / "result.json", result)
    store.replace_run(key, tmp)
    changed, todo = [grid_name], [(grid_name, store, key)]
    while todo:   # copies, and copies of copies
        donor_grid, donor, donor_key = todo.pop()
        for folder in copies.get((donor_grid, donor_key), []):
            name, dkey = folder.parents[1].name, folder.name
            dst = RunStore(name, root)
            config = json.loads((folder / "config.json").read_text())
            copy_run(donor, donor_key, dst, dkey, config, donor_grid, replace=True)
            changed.append(name)
            todo.append((name, dst, dkey))
    return changed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grid")
    ap.add_argument("--methods", default="*", help="comma-separated globs over method names")
    ap.add_argument("--per-method", type=int, default=1, help="runs per method and protocol setting (lowest seeds)")
    ap.add_argument("--all", action="store_true", help="every finished run")
    ap.add_argument("--unchecked", action="store_true",
                    help="only runs recorded before runs recorded their code (no code identity in the result), "
                         "trained by sources with uncommitted changes (code no commit holds), or by a process whose "
                         "loaded sources changed on disk while it ran (which of the two versions ran is not known)")
    ap.add_argument("--out", help="also write the table here (Markdown)")
    ap.add_argument("--adopt", action="store_true",
                    help="replace each run reproduced bit for bit by its retraining (and the copies of it)")
    args = ap.parse_args()
    grid = load_grid(args.grid)
    root = home()
    globs = [g.strip() for g in args.methods.split(",") if g.strip()]
    groups: dict[tuple, list] = defaultdict(list)
    for folder, config, result in finished(grid.name, root):
        code = result.get("code")
        if args.unchecked and code and not code.get("uncommitted") and not code.get("changed_since_start"):
            continue
        if any(fnmatch.fnmatchcase(config["method"], g) for g in globs):
            groups[(config["method"], json.dumps(config["protocol_params"], sort_keys=True),
                    config["dataset"], config["protocol"])].append((folder, config, result))
    chosen = [run for runs in groups.values()
              for run in sorted(runs, key=lambda r: r[1]["seed"])[:None if args.all else args.per_method]]
    if not chosen:
        raise SystemExit(f"no finished run of {grid.name} matches --methods {args.methods} in {root}")
    ctx = mp.get_context("spawn")
    lines = [f"# Reproducibility audit: {grid.name}", "",
             "Each run trained again in a fresh process on the code of the audit, through the runner; "
             "reproduced = every test and validation metric bit-identical.", "",
             "| method | dataset / protocol | setting | seed | recorded under | test ndcg@10 stored | now | reproduced |",
             "|---|---|---|---|---|---|---|---|"]
    differ, touched = 0, set()
    copies = copies_index(root) if args.adopt else {}
    for folder, config, result in chosen:
        pool = ctx.Pool(1)   # one process per run: nothing carried over from another run
        try:
            now = pool.map(rerun, [(config, result, f"{grid.name}.reproduce", str(root))])[0]
        except BaseException:
            pool.terminate()
            raise
        else:
            pool.close()     # the worker exits on its own (a terminate() cuts into its atexit handlers: noise)
        finally:
            pool.join()
        code = result.get("code") or {}
        recorded = (result.get("git_revision") or "?")[:7] + ("" if code else " (HEAD at its end)")
        metric = "ndcg@10" if "ndcg@10" in result["metrics"].get("test", {}) else next(iter(result["metrics"]["test"]))
        if now["status"] != "done":
            same, shown = False, f"failed: {now.get('reason', '')[:80]}"
        else:
            same = all(now["metrics"].get(stage) == result["metrics"].get(stage) for stage in ("test", "valid"))
            redone = root / "grids" / f"{grid.name}.reproduce" / "runs" / result["key"]
            same = same and same_per_user(folder, redone)
            shown = f"{now['metrics']['test'][metric]:.5f}"
            if same and args.adopt:
                touched.update(adopt(grid.name, root, result["key"], result, redone, copies))
        differ += not same
        setting = ", ".join(f"{k}={v}" for k, v in config["protocol_params"].items()
                            if k in ("k_shot", "new_items")) or "–"
        lines.append(f"| {config['method']} | {config['dataset']} / {config['protocol']} | {setting} | {config['seed']} | "
                     f"{recorded} | {result['metrics']['test'][metric]:.5f} | {shown} | {'yes' if same else '**no**'} |")
        print(lines[-1], flush=True)
    summary = [f"{len(chosen) - differ} of {len(chosen)} reproduced."]
    if touched:
        summary.append(f"Adopted the reproduced runs; re-run `metarec report` on: {', '.join(sorted(touched))}.")
    lines += ["", *summary]
    print("\n".join(summary))
    if args.out:
        atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
