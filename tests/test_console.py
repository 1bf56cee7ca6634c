"""cnn_depth/console.py: a run prints its progress, warnings and errors; INFO logs on request."""

import pytest
from helpers.runner import CACHE, run_script


def train(tmp_path, *flags):
  proc = run_script(
    "scripts/train.py",
    "--config=configs/quickstart.py:depth=8",
    f"--workdir={tmp_path / 'run'}",
    f"--compilation_cache={CACHE}",
    "--config.num_train_steps=3",
    "--config.log_every_steps=1",
    "--config.batch_size=32",
    *flags,
    env={"JAX_PLATFORMS": "cpu"},
    timeout=300,
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc


@pytest.mark.slow
def test_a_run_prints_its_progress_and_no_info_logs(tmp_path):
  proc = train(tmp_path)
  progress = [line for line in proc.stdout.splitlines() if line.startswith("step ")]
  assert [line.split(" |")[0] for line in progress] == ["step 1/3", "step 2/3", "step 3/3"]
  # The first step compiles: no rate was measured, so none is printed.
  assert "img/s" not in progress[0] and all(" img/s | " in line for line in progress[1:])
  assert not [line for line in proc.stderr.splitlines() if line.startswith("I")], proc.stderr
  lines = proc.stdout.strip().splitlines()
  assert lines[0] == "compiling the train step of ResNet-8 (first step; takes a while on CPU)..."
  assert lines[-1].startswith("done: step 3 (") and "test error " in lines[-1], lines[-1]


@pytest.mark.slow
def test_verbosity_brings_the_info_logs_back(tmp_path):
  proc = train(tmp_path, "--verbosity=0")
  assert any(line.startswith("I") and "checkpoint" in line for line in proc.stderr.splitlines())
