"""scripts/path_gradients.py on the shared tiny workdirs (conftest.py): the CSV of a trained
ResNet-14, and the refusal of a plain net (seeds grouped and a workdir without checkpoint:
tests/scripts/test_lesion.py, which runs both scripts)."""

import csv
import os

import pytest
from helpers import workdirs
from helpers.runner import run_script


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


@pytest.mark.slow
def test_path_gradient_script(tiny_workdirs, tmp_path):
  # path_gradients.py writes into <workdir>/analysis
  resnet, plain = (workdirs.copy(tiny_workdirs[r], tmp_path) for r in (True, False))
  proc = run_script("scripts/path_gradients.py", f"--workdir={resnet}", "--samples=3", "--batch=16")
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = rows(os.path.join(resnet, "analysis", "path_gradients.csv"))
  assert [int(r["num_paths"]) for r in table] == [1, 6, 15, 20, 15, 6, 1]
  assert "of the gradient in paths of length" in proc.stdout
  plain = run_script("scripts/path_gradients.py", f"--workdir={plain}", "--samples=1")
  assert plain.returncode == 2 and "plain" in plain.stderr.lower()
