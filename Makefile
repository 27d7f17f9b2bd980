# One command per result. The first use creates .venv and installs the pinned requirements.
#   make version-a                 # default suite (ml4iot-2022), version a, every task
#   make all-versions SUITE=ml4iot-2023
#   make all-suites                # every suite, every version (SEEDS=5 JOBS=2: five seeds, two builds at a time)
#   make reference                 # the committed tables: every suite, 5 seeds, into results/reference/
#   make test                      # the test suite (CI runs exactly this)
#   make bench                     # latency + quality benchmarks (prints figures)
#   make search VERSION=c TRIALS=30  # constraint-driven recipe search (Optuna)
#   make check MODEL=f.tflite VERSION=b / make grade DIR=submissions/ / make bundle VERSION=c   # users' own files
# Data: DATA_DIR=<folder> (else $ML4IOT_DATA_DIR, else ./data); JENA=<file> [<file> ...] for other Jena files.
SUITE    ?= ml4iot-2022
PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
SEEDS    ?= 1
JOBS     ?= 1
RUN_ARGS := $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(JENA),--jena $(JENA)) $(if $(PROFILE),--profile $(PROFILE)) --seeds $(SEEDS) --jobs $(JOBS) $(ARGS)

.PHONY: venv version-% all-versions all-suites reference test bench search seed-reports check grade bundle list clean-cache cv

venv: $(STAMP)
$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip==25.3
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

version-%: $(STAMP)
	$(PY) -m harness run --suite $(SUITE) --version $* $(RUN_ARGS)

all-versions: $(STAMP)
	$(PY) -m harness run --suite $(SUITE) --all $(RUN_ARGS)

all-suites: $(STAMP)
	$(PY) -m harness run --suite all $(RUN_ARGS)

# The committed reference tables: every suite, 5 seeds, written to results/reference/ (run it from a clean commit).
reference: $(STAMP)
	$(PY) -m harness run --suite $(if $(filter command line,$(origin SUITE)),$(SUITE),all) --out results/reference \
	  --seeds 5 --jobs 2 $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(JENA),--jena $(JENA)) $(ARGS)

# make check MODEL=my.tflite.zip VERSION=a SUITE=ml4iot-2023 [TASK=kws] ARGS="--sidecar sidecar.json"
check: $(STAMP)
	$(PY) -m harness check $(MODEL) --suite $(SUITE) --version $(VERSION) $(if $(TASK),--task $(TASK)) \
	  $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(JENA),--jena $(JENA)) $(ARGS)

# make grade DIR=submissions/ [SUITE=...] [ARGS="--kernels reference"]: one leaderboard per version
grade: $(STAMP)
	$(PY) -m harness grade $(DIR) --suite $(SUITE) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(JENA),--jena $(JENA)) $(ARGS)

# make bundle VERSION=c [SUITE=...] [TASK=kws]: a folder + zip to measure the version's artifact on the device
bundle: $(STAMP)
	$(PY) -m harness bundle --suite $(SUITE) --version $(VERSION) $(if $(TASK),--task $(TASK)) $(ARGS)

list: $(STAMP)
	$(PY) -m harness list

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) -m pytest -q benchmarks --benchmark-only --benchmark-columns=min,median,mean,rounds
	$(PY) -m benchmarks.quality
	$(PY) -m benchmarks.grading $(if $(DATA_DIR),--data-dir $(DATA_DIR))

# make search VERSION=c [SUITE=...] [TASK=kws] [TRIALS=20] [STORAGE=postgresql://...]
TASK    ?=
TRIALS  ?= 20
search: $(STAMP)
	$(PY) -m harness search --suite $(SUITE) --version $(VERSION) $(if $(TASK),--task $(TASK)) --trials $(TRIALS) \
	  $(if $(STORAGE),--storage $(STORAGE)) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(JENA),--jena $(JENA)) $(ARGS)

# make cv VERSION=a SUITE=ml4iot-2025 [FOLDS=5] [SEEDS=2] [JOBS=2] [ARGS="--set model.width=1.5"]
FOLDS   ?= 5
cv: $(STAMP)
	$(PY) -m harness cv --suite $(SUITE) --version $(VERSION) $(if $(TASK),--task $(TASK)) --folds $(FOLDS) --seeds $(SEEDS) \
	  $(if $(JOBS),--jobs $(JOBS)) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(ARGS)

seed-reports: $(STAMP)
	$(PY) -m harness seed-reports $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(JENA),--jena $(JENA)) $(ARGS)

clean-cache:
	rm -rf $${ML4IOT_CACHE_DIR:-$$HOME/.cache/ml4iot-harness}/builds
