"""Test-wide JAX settings (8 fake CPU devices for the sharding tests, a persistent compilation
cache), the order files are collected in, and the shared fixtures: one subprocess runner and the
tiny trained workdirs made once per test run.

The tests mirror the package (tests/models/test_registry.py tests cnn_depth/models/registry.py;
tests/scripts/test_<script>.py runs scripts/<script>.py end to end); what several files share is in
tests/helpers/ (pyproject's pytest section puts tests/ on sys.path and imports the test files with
--import-mode=importlib, so two folders may each hold a test_registry.py).
"""

import os

from helpers.runner import TEST_XLA_FLAGS

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
if TEST_XLA_FLAGS not in os.environ["XLA_FLAGS"]:  # compile-bound: see helpers/runner.py
  os.environ["XLA_FLAGS"] += f" {TEST_XLA_FLAGS}"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

_cache = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache")
jax.config.update("jax_compilation_cache_dir", _cache)
# Every script the tests start shares it too (JAX reads these variables at start-up), so the many
# identical tiny nets of the subprocess tests compile once per suite. Every program is kept, however
# short its compile: a tiny train.py run compiles ~15 programs of 0.1 s each (eval, init, the data
# feed's), 2 of its 5.5 CPU-s; at threshold 0.5 s they were compiled again in every process.
# Measured (cold cache, test_train + test_sweep + test_lesion + test_steps, 2 workers): 289 CPU-s
# and 159 s at 0.5, 256 CPU-s and 136 s at 0.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
jax.config.update(
  "jax_persistent_cache_min_compile_time_secs",
  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
)

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from helpers import runner, workdirs  # noqa: E402

# The files that take longest on the 2-core CI machine (cold, measured), by their path under tests/
# (a file name alone can repeat: models/test_registry.py, data/test_registry.py): collected first,
# so that pytest-xdist's --dist loadfile hands them out first and the short files fill in around
# them, instead of one long file running alone at the end.
LONGEST_FIRST = (
  "scripts/test_reproduce.py",
  "scripts/test_sweep_slurm.py",
  "interop/test_convert.py",
  "test_train.py",
  "test_readme.py",
  "scripts/test_benchmark.py",
  "scripts/test_lesion.py",
  "scripts/test_loss_landscape.py",
  "models/test_resnet.py",
)
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

  def key(item):
    try:
      return rank.get(item.path.resolve().relative_to(TESTS).as_posix(), len(rank))
    except ValueError:  # a test outside tests/
      return len(rank)

  items.sort(key=key)  # stable within a file


# --------------------------------------------------------------------------------------------------
# One subprocess runner for every test of a script: `run_script(script, *args, devices=1, ...)`
# (helpers/runner.py; a helper module imports it from there).


@pytest.fixture(name="run_script")
def _run_script_fixture():
  return runner.run_script


# --------------------------------------------------------------------------------------------------
# Tiny trained workdirs, made once per test run (across pytest-xdist's workers too).


@pytest.fixture(scope="session")
def tiny_workdirs(tmp_path_factory):
  """{True: ResNet-14, False: its plain twin}: workdirs trained 6 steps (helpers/workdirs.py), in a
  folder that holds nothing else. Read-only for the tests: copy one, or write with --out_dir."""
  root = workdirs.made_once(
    workdirs.shared_dir(tmp_path_factory) / "tiny_runs", workdirs.train_tiny_runs
  )
  yield {True: str(root / "resnet14"), False: str(root / "plain14")}
  changed = workdirs.changed_files(root)
  assert not changed, f"a test wrote into the shared workdirs {root}: {changed[:10]}"
