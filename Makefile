# Two entry points on a fresh machine: `make demo` and `make test`.
# Both create (or reuse) .venv and install what they need. torch is pinned to the CPU build that
# this kind of machine carries as a local wheel, so no CUDA wheels are ever pulled here.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.fcnseg-installed

.PHONY: demo test lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	-$(BIN)/python scripts/install_browser.py
	touch $(STAMP)

install: $(STAMP)

# DEMO_ARGS adds options to `fcnseg demo`: the quick variant (README) is
# DEMO_ARGS="--set train.iterations=100 --out runs/demo-quick".
# OpenMP reads its wait policy when the process starts: spinning waits made two torch threads
# 6-10x slower on a busy 2-core CPU, sleeping ones cost little on an idle one.
demo: $(STAMP)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(BIN)/fcnseg demo --out runs/demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
