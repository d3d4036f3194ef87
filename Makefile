# Two commands do everything on a fresh machine: `make demo` and `make test` (each creates .venv first).
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test test-fast bench smoke paper latex clean mutation

setup:
	bash scripts/setup_env.sh

demo: setup
	$(VENV)/bin/metarec datasets
	$(VENV)/bin/metarec run --dataset ml-100k --protocol general --method pop
	$(VENV)/bin/metarec run --dataset ml-100k --protocol general --method mf-bpr

# everything, slow tests included (what CI runs); `make test-fast` (= plain pytest) leaves the slow ones out.
# Two pytest workers (pytest-xdist), one per core: much of the suite waits on subprocesses, process start-up and
# pandas rather than computing, so two workers finish in ~2/3 of one worker's time (measured on one machine beside a
# niced grid: 10:32 with one worker; two: 8:16 with --dist loadfile, whose one worker got every slow test of
# test_tune.py, and 7:09 with --dist worksteal, which balances the tail at the cost of some module fixtures built twice).
test: setup
	$(PY) -m pytest -q -n 2 --dist worksteal -m "slow or not slow" -rs

test-fast: setup
	$(PY) -m pytest -q -rs

bench: setup
	$(PY) benchmarks/eval_speed.py

smoke: setup
	$(VENV)/bin/metarec bench benchmarks/smoke.yaml
	$(VENV)/bin/metarec report benchmarks/smoke.yaml

# regenerates every table and figure from the committed results/ (no training), then the PDF if LaTeX exists
paper: setup
	$(VENV)/bin/metarec paper

# the LaTeX the paper needs, from Debian's packages (root; ~1 GB): then `make paper` also builds paper/paper.pdf
LATEX_PACKAGES = texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended latexmk
latex:
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(LATEX_PACKAGES)

clean:
	rm -rf runs .pytest_cache

# Mutation testing of the core ([tool.mutmut] in pyproject.toml; hours on 2 cores, outside CI): runs the mutants
# without a verdict (MUTATE: mutant-name globs, e.g. 'metarec.protocols.*'), keeping the verdicts in results/mutation/
# so a later machine resumes, then prints the score per module. mutmut is not part of the pinned stack: installed here.
MUTATE ?=
mutation: setup
	$(PY) -m pip install -q "mutmut==3.8.1"
	$(PY) benchmarks/mutation_score.py run $(MUTATE)
