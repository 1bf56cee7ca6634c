"""Test-wide JAX settings: 8 fake CPU devices (for sharding tests) and a persistent compilation
cache.

Both must be set before JAX initialises its backends, hence here and not in a fixture.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

_cache = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache")
jax.config.update("jax_compilation_cache_dir", _cache)
# Every script the tests start shares it too (JAX reads these variables at start-up), so the many
# identical tiny nets of the subprocess tests compile once per suite.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _cache)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


# The files that take longest on the 2-core CI machine (cold, measured): collected first, so that
# pytest-xdist's --dist loadfile hands them out first and the short files fill in around them,
# instead of one long file running alone at the end.
LONGEST_FIRST = (
  "test_reproduce.py",
  "test_reproduce_why.py",
  "test_slurm.py",
  "test_interop.py",
  "test_train.py",
  "test_readme.py",
  "test_benchmark.py",
  "test_analysis_scripts.py",
  "test_models.py",
)


def pytest_collection_modifyitems(config, items):
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file


# --------------------------------------------------------------------------------------------------
# One subprocess runner for every test of a script.

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
if not os.path.exists(PYTHON):
  PYTHON = sys.executable


def run_script(script: str, *args: str, devices: int = 1, timeout: float = 600, env=None, cwd=ROOT):
  """`python <script> <args>` from the repository root (or `cwd`), with `devices` fake CPU devices
  and the suite's compilation cache; the CompletedProcess, text output captured."""
  env = dict(
    os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", **(env or {})
  )
  path = script if os.path.isabs(script) else os.path.join(ROOT, script)
  return subprocess.run(
    [PYTHON, path, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
  )


@pytest.fixture(name="run_script")
def _run_script_fixture():
  return run_script
