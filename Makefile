# Two commands do everything on a fresh machine: `make demo` and `make test` (each creates .venv first).
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test bench clean

setup:
	bash scripts/setup_env.sh

demo: setup
	$(VENV)/bin/metarec datasets
	$(VENV)/bin/metarec run --dataset ml-100k --protocol general --method pop
	$(VENV)/bin/metarec run --dataset ml-100k --protocol general --method mf-bpr

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/eval_speed.py

clean:
	rm -rf runs .pytest_cache
