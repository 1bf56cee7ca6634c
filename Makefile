# Two commands: `make quickstart` (the main job) and `make test` (the tests a newcomer needs to
# trust the install, <= 6 min on 2 cores). `make test-all` (what CI runs) adds the slow tier: the
# real SLURM cluster, kill and requeue, the quick reproductions, every README command, and the
# GPU path compiled without a GPU. All create .venv on first use; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lint test test-all test-gpu-compile quickstart venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[data,test]'
	touch $(STAMP)

PYTEST := XLA_FLAGS=--xla_force_host_platform_device_count=8 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The first tier: every test not marked slow.
test: lint
	$(PYTEST) -m "not slow"

# Both tiers, then the GPU compile check in its own environment (.venv-cuda).
test-all: lint
	$(PYTEST)
	$(MAKE) test-gpu-compile

# The GPU path without a GPU: every family's train step compiled for an H100 on this CPU. Installs
# the jax CUDA plugin into .venv-cuda on first use (~180 MB), never into .venv.
test-gpu-compile: $(STAMP)
	bash benchmarks/gpu_compile_check.sh

quickstart: $(STAMP)
	$(BIN)/python scripts/quickstart.py --workdir=runs/quickstart

clean:
	rm -rf $(VENV) .venv-cuda .pytest_cache
