# The two commands of the README. Each creates .venv and installs the project when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-slow lint gpu-check

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

ROOT ?= runs/smoke

## run: the main job: the resnet50 roadmap sweep (17 steps x seeds 0,1,2, smoke preset,
## built-in dataset, local executor), then its staircase figure and table. Rerunnable: finished
## runs are skipped.
run: $(STAMP)
	$(VENV)/bin/roadmap steps
	$(VENV)/bin/roadmap sweep --preset smoke --seeds 0,1,2 --root $(ROOT)
	$(VENV)/bin/roadmap staircase --root $(ROOT) --out $(ROOT)/figures

## test: the default test suite (fast; `slow` and `slurm` suites run from .ci/run), in
## TEST_WORKERS processes (pytest-xdist; 2 fits the 2-core CI machine, 0 runs one process)
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS)

test-slow: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m slow

## gpu-check: the `gpu` tests and the GPU benchmark of both endpoints (bf16, channels_last), at
## most 8 minutes on one GPU; results (CSV, logs, environment) in docs/benchmarks/gpu-check-<date>/
## to commit; it says how many GPU tests ran and skipped. Without CUDA the tests report skipped,
## with the reason, nothing is written, and it exits 77 (skipped); GPU_REQUIRE_ALL=1: 77 if any skips.
gpu-check: $(STAMP)
	$(PY) -m experiments.bench.gpu_check $(if $(GPU_OUT),--out $(GPU_OUT)) \
		$(if $(GPU_REQUIRE_ALL),--require-all)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
