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


def script_env(devices: int = 1, env=None) -> dict:
  """os.environ with `devices` fake CPU devices (the suite's compilation cache comes with
  os.environ: conftest.py sets it), then `env` on top."""
  return dict(
    os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", **(env or {})
  )


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
