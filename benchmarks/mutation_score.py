"""Mutation score per module, from the results of the last `mutmut run` (configured in pyproject's [tool.mutmut]).

    make mutation                       # mutmut run over the core, then this script
    .venv/bin/python benchmarks/mutation_score.py [--goal 0.85]

Reads `mutmut results --all true` ("<module>.<function>__mutmut_<n>: <status>"), groups by module and prints
killed / survived / no tests / other, the score killed / (killed + survived + no tests) — a mutant no test even
runs counts against the score — and whether each module reaches the goal. Exit status 1 if one does not.
Timeouts count as killed (the mutant made a test hang, which a test run notices), as mutmut reports them.
"""
from __future__ import annotations

import argparse
import collections
import subprocess
import sys
from pathlib import Path

KILLED = {"killed", "timeout"}
COUNTED = KILLED | {"survived", "no tests"}


def module_of(key: str) -> str:
    """'metarec.eval.registry.x_register_metric__mutmut_3' -> 'metarec.eval.registry' (methods: 'xǁClassǁm')."""
    name = key.split("__mutmut_")[0]
    parts = name.split(".")
    while parts and (parts[-1].startswith("x_") or parts[-1].startswith("xǁ")):
        parts.pop()
    return ".".join(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--goal", type=float, default=0.85)
    args = ap.parse_args()
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True)
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in out.stdout.splitlines():
        if ": " not in line:
            continue
        key, status = line.strip().rsplit(": ", 1)
        counts[module_of(key)][status] += 1
    if not counts:
        print("no mutmut results: run `make mutation` (or `mutmut run`) first")
        return 1
    print(f"{'module':<34}{'killed':>8}{'survived':>10}{'no tests':>10}{'other':>7}{'score':>8}")
    missed = []
    for module in sorted(counts):
        c = counts[module]
        killed = sum(c[s] for s in KILLED)
        counted = sum(c[s] for s in COUNTED)
        other = sum(v for s, v in c.items() if s not in COUNTED)
        score = killed / counted if counted else float("nan")
        if not score >= args.goal:
            missed.append(module)
        print(f"{module:<34}{killed:>8}{c['survived']:>10}{c['no tests']:>10}{other:>7}{score:>8.1%}")
    print(f"goal {args.goal:.0%}: " + ("every module reaches it" if not missed else f"missed by {', '.join(missed)}"))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
