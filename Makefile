# Two commands: `make quickstart` (the main job) and `make test` (the tests a newcomer needs to
# trust the install, <= 6 min on 2 cores). `make test-all` (what CI runs) adds the slow tier: the
# real SLURM cluster, kill and requeue, the quick reproductions, every README command, and the
# GPU path compiled without a GPU. All create .venv on first use; nothing is installed by hand.
PYTHON ?= python3
comma := ,
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

LOCK := requirements.lock
# The oldest Python the lock's packages install on (jax, numpy and others require 3.11).
MIN_PYTHON := 3.11

.PHONY: lint test test-all pytest-all test-gpu-compile quickstart venv lock clean

venv: $(STAMP)

# The exact versions of requirements.lock (those the tests passed with; pip and setuptools too),
# then the package itself without resolving anything. An existing .venv is updated when the lock
# or pyproject.toml changes.
$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < ($(subst .,$(comma),$(MIN_PYTHON))))' \
	  || { echo "error: PYTHON=$(PYTHON) is Python $$($(PYTHON) -V 2>&1 | cut -d' ' -f2), but" \
	    "requirements.lock needs $(MIN_PYTHON) or newer: run make PYTHON=python$(MIN_PYTHON)" >&2; \
	    exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Refresh the lock: the newest versions pyproject.toml's ranges allow, resolved in a throw-away venv
# (never .venv), frozen into requirements.lock. Then `make venv test-all` and commit the lock.
lock:
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install --quiet --upgrade pip; \
	"$$tmp/venv/bin/pip" install --quiet -e '.[data,test]'; \
	{ echo "# The exact versions the tests passed with: \`make venv\` installs these, then the package"; \
	  echo "# itself with --no-deps. pyproject.toml keeps its version ranges for installs into your own"; \
	  echo "# environment. Python $$("$$tmp/venv/bin/python" -c \
	    'import platform; print(platform.python_version())') on $$(uname -sm), pyproject's"; \
	  echo "# [data,test] extras; refresh with \`make lock\`."; \
	  "$$tmp/venv/bin/pip" freeze --all --exclude-editable | grep -v '^#'; } > $(LOCK).new; \
	mv $(LOCK).new $(LOCK)

PYTEST := XLA_FLAGS=--xla_force_host_platform_device_count=8 $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The first tier: every test not marked slow.
test: lint
	$(PYTEST) -m "not slow"

# Both tiers and, beside them, the GPU compile check in its own environment (.venv-cuda): its
# download of the CUDA plugin and its compiles fill the gaps pytest's two workers leave (each
# target's output printed whole when it ends).
test-all: lint
	$(MAKE) --no-print-directory --output-sync=target -j2 pytest-all test-gpu-compile

pytest-all: $(STAMP)
	$(PYTEST)

# The GPU path without a GPU: every family's train step compiled for an H100 on this CPU. Installs
# the jax CUDA plugin into .venv-cuda on first use (~180 MB), never into .venv.
test-gpu-compile: $(STAMP)
	bash benchmarks/gpu_compile_check.sh

quickstart: $(STAMP)
	$(BIN)/python scripts/quickstart.py --workdir=runs/quickstart

clean:
	rm -rf $(VENV) .venv-cuda .pytest_cache
