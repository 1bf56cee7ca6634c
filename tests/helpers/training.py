"""The tiny quickstart run of tests/test_train.py and what reads it: its config in-process, its
scripts/train.py command line in a subprocess with the output in files, and its workdir's files.

Plain-8 at width 4 on the embedded digits, batch 32, 40 steps, a log line every step, a checkpoint
every 5 (tests/test_train.py, test_checkpoint.py, test_multihost.py, test_events.py).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from cnn_depth import config as config_lib
from helpers.runner import CACHE, PYTHON, ROOT, script_env

REPO = Path(ROOT)
SCRIPT = REPO / "scripts" / "train.py"
STEPS = 40
DEPTH = 8
CONFIG_ARG = f"depth={DEPTH},residual=False,steps={STEPS},seed=0"  # lr /10 at steps 20 and 30
TINY = {
  "model.width": 4,
  "batch_size": 32,
  "log_every_steps": 1,
  "eval_every_steps": 10,
  "checkpoint_every_steps": 5,
  "eval_train_set": False,
}
SUBPROCESS_TIMEOUT = 240
DIVERGENT = {
  "learning_rate": 1e4,
  "num_train_steps": 10,
  "checkpoint_every_steps": 2,
  "eval_every_steps": 100,
}  # loss ~1e16 by step 4, NaN at step 5 (plain-8, digits)


def _quickstart():
  return config_lib.load_config_module(REPO / "configs" / "quickstart.py")


def tiny_config(**overrides):
  """The quickstart config with TINY and `overrides` ({'dotted.name': value}) applied."""
  config = _quickstart().get_config(CONFIG_ARG)
  for dotted, value in {**TINY, **overrides}.items():
    *parents, name = dotted.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[name] = value
  return config


def cli(workdir, *extra, **overrides) -> list[str]:
  """The scripts/train.py command line for tiny_config(**overrides) (extra: more raw flags)."""
  flags = [f"--config.{k}={v}" for k, v in {**TINY, **overrides}.items()]
  return [
    PYTHON,
    str(SCRIPT),
    f"--config={REPO / 'configs' / 'quickstart.py'}:{CONFIG_ARG}",
    f"--workdir={workdir}",
    f"--compilation_cache={CACHE}",
    "--verbosity=-1",
    *flags,
    *extra,
  ]


def env(devices: int = 8) -> dict:
  """run_script's environment on the CPU, without the variables of a multi-process run."""
  e = script_env(devices, {"JAX_PLATFORMS": "cpu"})
  for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    e.pop(k, None)
  return e


class Proc:
  """A scripts/train.py subprocess with its stdout/stderr in files (no pipe to fill up)."""

  def __init__(self, args, log_prefix: Path, devices: int = 8):
    self.out, self.err = Path(f"{log_prefix}.out"), Path(f"{log_prefix}.err")
    with open(self.out, "w") as out, open(self.err, "w") as err:
      self.popen = subprocess.Popen(args, stdout=out, stderr=err, env=env(devices), cwd=REPO)

  def wait(self, timeout=SUBPROCESS_TIMEOUT) -> int:
    try:
      return self.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.popen.kill()
      self.popen.wait()
      pytest.fail(f"{' '.join(self.popen.args)} ran over {timeout} s\n{self.tail()}")

  def kill(self):
    if self.popen.poll() is None:
      self.popen.kill()
      self.popen.wait()

  def stderr(self) -> str:
    return self.err.read_text()

  def tail(self, n: int = 3000) -> str:
    return f"--- stdout ---\n{self.out.read_text()[-n:]}\n--- stderr ---\n{self.stderr()[-n:]}"


def run_cli(args, log_prefix: Path, devices: int = 8) -> Proc:
  proc = Proc(args, log_prefix, devices)
  proc.wait()
  return proc


def checkpoint_steps(workdir) -> list[int]:
  """Finished checkpoints (orbax renames `<step>.orbax-checkpoint-tmp` to `<step>` when done)."""
  d = Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def read_metrics(workdir) -> list[dict]:
  """metrics.jsonl without a half-written last line (a SIGKILL can leave one)."""
  path = Path(workdir) / "metrics.jsonl"
  if not path.exists():
    return []
  records = []
  lines = path.read_text().split("\n")
  for i, line in enumerate(lines):
    if line.strip():
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        assert i == len(lines) - 1, f"{path}:{i + 1} is not JSON: {line!r}"
  return records


def read_status(workdir) -> dict:
  return json.loads((Path(workdir) / "status.json").read_text())


def wait_until(condition, proc: Proc, what: str, timeout: float = 180.0):
  deadline = time.monotonic() + timeout
  while not condition():
    if proc.popen.poll() is not None:
      pytest.fail(f"the run ended (rc {proc.popen.returncode}) before {what}\n{proc.tail()}")
    if time.monotonic() > deadline:
      proc.kill()
      pytest.fail(f"no {what} after {timeout} s\n{proc.tail()}")
    time.sleep(0.005)


def free_port() -> int:
  try:
    import portpicker

    return portpicker.pick_unused_port()
  except ImportError:
    with socket.socket() as s:
      s.bind(("127.0.0.1", 0))
      return s.getsockname()[1]


def assert_one_error_line(proc: Proc, expect: str) -> str:
  err = proc.stderr()
  assert "Traceback" not in err, proc.tail()
  errors = [line for line in err.splitlines() if line.startswith("error:")]
  assert len(errors) == 1, proc.tail()
  assert expect in errors[0], f"{expect!r} not in {errors[0]!r}"
  return errors[0]
