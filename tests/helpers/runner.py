"""The one subprocess runner for every test of a script (conftest.py's `run_script` fixture)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTS = os.path.join(ROOT, "tests")
CACHE = os.path.join(ROOT, ".jax_cache")
PYTHON = sys.executable  # the interpreter running the tests (scripts print and compare it)
# Every process of the suite compiles with LLVM's optimisations off: the suite is bound by compiling
# many tiny programs, not by running them. On four compile-heavy files of a cold cache this took
# 224 s of CPU instead of 343 (a step of ResNet-20 at width 8 runs 2x slower, 0.15 s instead of
# 0.08, while its compile takes 3.0 s instead of 4.8). Numbers are compared between processes of
# the suite, all compiled alike; speeds are never asserted. And with XLA:CPU's older elemental
# emitters instead of its fusion emitters: ResNet-20's gradient compiles in 0.6-0.7 CPU-s instead
# of 1.8; test_resnet, test_train, test_sweep and test_lesion on 2 workers, cold cache: 281 CPU-s
# and 147 s instead of 353 and 201. (One test that claims bit-equality under the default emitters
# asks for them: tests/models/test_branches.py.)
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"


def script_env(devices: int = 1, env=None) -> dict:
  """os.environ, then `env` on top, with XLA_FLAGS for `devices` fake CPU devices compiled with
  TEST_XLA_FLAGS (the suite's compilation cache comes with os.environ: conftest.py sets it)."""
  flags = f"--xla_force_host_platform_device_count={devices} {TEST_XLA_FLAGS}"
  return {**os.environ, **(env or {}), "XLA_FLAGS": flags}


def run_script(script: str, *args: str, devices: int = 1, timeout: float = 600, env=None, cwd=ROOT):
  """`python <script> <args>` from the repository root (or `cwd`), with `devices` fake CPU devices
  and the suite's compilation cache; the CompletedProcess, text output captured. A relative
  `script` is one under the repository root; `-c` runs the code in args[0]."""
  path = script if os.path.isabs(script) or script == "-c" else os.path.join(ROOT, script)
  return subprocess.run(
    [PYTHON, path, *args],
    cwd=cwd,
    env=script_env(devices, env),
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def has_cuda_plugin() -> bool:
  """Whether jax's CUDA plugin is installed (the GPU targets of scripts/benchmark.py need it)."""
  return (
    importlib.util.find_spec("jax_plugins") is not None
    and importlib.util.find_spec("jax_plugins.xla_cuda12") is not None
  )
