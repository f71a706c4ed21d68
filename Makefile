# The two commands of the README. Each creates .venv and installs the project when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-slow lint

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

ROOT ?= runs/smoke

## run: the main job: the resnet50 roadmap sweep (16 steps x seeds 0,1,2, smoke preset,
## built-in dataset, local executor), then its staircase figure and table. Rerunnable: finished
## runs are skipped.
run: $(STAMP)
	$(VENV)/bin/roadmap steps
	$(VENV)/bin/roadmap sweep --preset smoke --seeds 0,1,2 --root $(ROOT)
	$(VENV)/bin/roadmap staircase --root $(ROOT) --out $(ROOT)/figures

## test: the default test suite (fast; `slow` and `slurm` suites run from .ci/run)
test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
