"""Mutation testing of the core, resumable across machines, and the score per module.

    make mutation                                   # every configured module (hours on 2 cores)
    make mutation MUTATE='metarec.protocols.*'      # a part: mutant-name globs
    .venv/bin/python benchmarks/mutation_score.py [--goal 0.85] [--survivors]   # the score only, from the state

mutmut 3 keeps its verdicts in ``mutants/`` (git-ignored, gone with the machine). This script keeps them in
``results/mutation/`` (committed): ``run`` copies that state into ``mutants/`` first — mutmut keeps a verdict while
the mutated function's source hash is unchanged and retests it otherwise — then runs the mutants that have no
verdict yet in chunks, saving the state after each chunk, so a killed run loses at most one chunk.

The score per module is killed / (killed + survived + no tests): a mutant no test even runs counts against it.
Timeouts count as killed (the mutant made a test hang, which a test run notices), as mutmut counts them. Exit
status 1 if a module misses the goal.
"""
from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "results" / "mutation"
WORK = ROOT / "mutants"
STATS = "mutmut-stats.json"
KILLED = {"killed", "timeout"}
COUNTED = KILLED | {"survived", "no tests"}


def status_of(code) -> str:
    from mutmut.stats import status_by_exit_code   # mutmut's own reading of its exit codes

    return status_by_exit_code[code]


def module_of(key: str) -> str:
    """'metarec.eval.registry.x_register_metric__mutmut_3' -> 'metarec.eval.registry' (methods: 'xǁClassǁm')."""
    parts = key.split("__mutmut_")[0].split(".")
    while parts and (parts[-1].startswith("x_") or parts[-1].startswith("xǁ")):
        parts.pop()
    return ".".join(parts)


def verdicts(folder: Path) -> dict[str, object]:
    """mutant name -> mutmut exit code (None: not run yet), from every ``*.py.meta`` under ``folder``."""
    out: dict[str, object] = {}
    for meta in sorted(folder.rglob("*.py.meta")):
        out.update(json.loads(meta.read_text())["exit_code_by_key"])
    return out


def save() -> None:
    """mutants/ -> results/mutation/: the verdict files and the test map (written whole, then moved in place)."""
    tmp = STATE.with_name(STATE.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for meta in WORK.rglob("*.py.meta"):
        dest = tmp / meta.relative_to(WORK)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(meta, dest)
    if (WORK / STATS).exists():
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copy2(WORK / STATS, tmp / STATS)
    if STATE.exists():
        shutil.rmtree(STATE)
    tmp.rename(STATE)


def restore() -> None:
    """results/mutation/ -> mutants/ where mutants/ has no state of its own (a fresh machine)."""
    if not STATE.exists() or any(WORK.rglob("*.py.meta")):
        return
    for path in STATE.rglob("*"):
        if path.is_file():
            dest = WORK / path.relative_to(STATE)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)


def mutmut(*args: str) -> int:
    return subprocess.call([str(Path(sys.executable).with_name("mutmut")), *args], cwd=ROOT)


def run(globs: list[str], chunk: int, children: int, again: bool = False) -> None:
    """Run the mutants without a verdict that match ``globs``; ``again``: rerun the survivors (and those without a
    covering test) that match, after tests were added to kill them."""
    restore()

    def wanted(key: str) -> bool:
        return not globs or any(fnmatch.fnmatch(key, g) for g in globs)

    def order(key: str) -> int:   # the globs' order: the module named first runs first
        return next((i for i, g in enumerate(globs) if fnmatch.fnmatch(key, g)), 0)

    rerun: set[str] | None = None
    stalled = 0
    while True:
        # a glob no mutant matches: mutmut (re)generates the mutants of changed sources (a changed function loses
        # its verdicts), collects or updates the map of which tests run which function, then has nothing to run
        mutmut("run", "--max-children", str(children), "metarec.__set_up_only__*")
        found = verdicts(WORK)
        if rerun is None:
            rerun = {k for k, v in found.items() if status_of(v) in ("survived", "no tests")} if again else set()
        pending = sorted((k for k, v in found.items() if (v is None or k in rerun) and wanted(k)), key=order)
        if not pending:
            break
        print(f"[mutation] {len(pending)} mutants to run; next {min(chunk, len(pending))}", flush=True)
        code = mutmut("run", "--max-children", str(children), *pending[:chunk])
        rerun -= set(pending[:chunk])
        save()
        after = verdicts(WORK)
        fresh = [k for k in pending[:chunk] if found.get(k) is None]
        if fresh and all(after.get(k) is None for k in fresh):
            stalled += 1          # nothing new: the unmutated tests failed, or the sources changed under the run
            if stalled >= 2:
                raise SystemExit(f"mutmut ran none of two chunks (exit {code}): see its output above")
        else:
            stalled = 0
    save()


#: survivors whose change cannot alter behaviour here, recognised from the mutated line (pattern on the removed
#: line, pattern on the added line, why); anything else is listed as "not examined"
EQUIVALENT = [
    (r"float\(\"nan\"\)", r"float\(\"NAN\"\)", "the same NaN"),
    (r"dtype=(np\.int64|float|np\.float64)|astype\(np\.int64\)|to_numpy\(np\.(int64|float64)\)",
     r"dtype=None|astype\(None\)|to_numpy\(None\)|\(\s*\)|, \)",
     "dtype only: the values are already of that type, or compare and index the same"),
    (r"kind=\"stable\"", r"kind=None|kind=\"(XXstableXX|STABLE)\"|, \)",
     "sort stability: the keys are unique there, or equal keys interchangeable (numpy's default sort is also stable on small inputs, so no test can tell)"),
    (r"groupby\(.*sort=(True|False)", r"sort=(None|True|False)|groupby\([^)]*, \)",
     "group order: the result is re-indexed or per row, not read in group order"),
    (r"ignore_errors=True", r"ignore_errors=(None|False)|, \)",
     "the folder exists and is ours to delete: errors are never raised"),
    (r"mkdir\(parents=True", r"parents=(None|False)|mkdir\(exist_ok", "the parent folder always exists there"),
]


def explain(diff: str) -> str:
    import re

    removed = "\n".join(line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---"))
    added = "\n".join(line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++"))
    for old, new, why in EQUIVALENT:
        if re.search(old, removed) and re.search(new, added):
            return why
    return "not examined"


def survivors_markdown(keys: list[str]) -> str:
    """One table row per surviving mutant: the mutated line before and after, and why it survives."""
    rows = ["| mutant | change | why it survives |", "| --- | --- | --- |"]
    for key in keys:
        out = subprocess.run([str(Path(sys.executable).with_name("mutmut")), "show", key], capture_output=True,
                             text=True, cwd=ROOT).stdout
        diff = "\n".join(line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
        change = " → ".join(" ".join(line[1:].split()) for line in diff.splitlines()[:2]).replace("|", "\\|")
        rows.append(f"| `{key.split('.')[-1]}` | `{change[:160]}` | {explain(diff)} |")
    return "\n".join(rows)


def score(goal: float, survivors: bool) -> int:
    found = verdicts(STATE if STATE.exists() else WORK)
    if not found:
        print("no mutation results: run `make mutation` first")
        return 1
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    left: dict[str, list[str]] = collections.defaultdict(list)
    for key, code in found.items():
        status = status_of(code)
        counts[module_of(key)][status] += 1
        if status in ("survived", "no tests"):
            left[module_of(key)].append(f"{key}: {status}")
    print(f"{'module':<30}{'killed':>8}{'survived':>10}{'no tests':>10}{'not run':>9}{'other':>7}{'score':>8}")
    missed = []
    for module in sorted(counts):
        c = counts[module]
        killed = sum(c[s] for s in KILLED)
        counted = sum(c[s] for s in COUNTED)
        other = sum(v for s, v in c.items() if s not in COUNTED and s != "not checked")
        value = killed / counted if counted else float("nan")
        if not value >= goal or c["not checked"]:
            missed.append(module)
        print(f"{module:<30}{killed:>8}{c['survived']:>10}{c['no tests']:>10}{c['not checked']:>9}{other:>7}"
              f"{value:>8.1%}")
    print(f"goal {goal:.0%} with every mutant run: "
          + ("every module reaches it" if not missed else f"not (yet) by {', '.join(missed)}"))
    if survivors:
        for module in sorted(left):
            print(f"\n### {module}\n")
            print(survivors_markdown(sorted(line.split(": ")[0] for line in left[module])))
    return 1 if missed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", nargs="?", choices=["run", "again", "score"], default="score",
                    help="run: mutants without a verdict; again: rerun the survivors; score: print the scores")
    ap.add_argument("globs", nargs="*", help="run: mutant-name globs to run (default: every configured module)")
    ap.add_argument("--goal", type=float, default=0.85)
    ap.add_argument("--survivors", action="store_true", help="score: list the surviving mutants")
    ap.add_argument("--chunk", type=int, default=150, help="run: mutants per mutmut call (state saved after each)")
    ap.add_argument("--children", type=int, default=1, help="run: parallel mutmut workers")
    args = ap.parse_args()
    if args.command in ("run", "again"):
        run(args.globs, args.chunk, args.children, again=args.command == "again")
    return score(args.goal, args.survivors)


if __name__ == "__main__":
    raise SystemExit(main())
