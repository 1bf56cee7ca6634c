"""scripts/shattered_gradients.py on the shared tiny workdirs (conftest.py): a correlation curve for
each net at initialisation and trained; and its refusal of a glob that matches no workdir, with
scripts/loss_landscape.py's (the two scripts take --workdir alike)."""

import csv
import os

import pytest
from helpers.runner import run_script


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


@pytest.mark.slow
def test_shattered_gradients_script(tiny_workdirs, tmp_path):
  """Both nets, at initialisation and trained: a correlation curve each, 1 at lag 0."""
  proc = run_script(
    "scripts/shattered_gradients.py",
    f"--workdir={tiny_workdirs[True]},{tiny_workdirs[False]}",
    f"--out_dir={tmp_path}",
    "--lines=2",
    "--points=9",
    "--max_lag=3",
    "--lag=2",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = rows(tmp_path / "gradient_correlation.csv")
  assert list(table[0]) == ["model", "depth", "seed", "trained", "lag", "correlation"]
  curves = {(r["model"], r["trained"]) for r in table}
  assert curves == {(m, t) for m in ("cifar_resnet", "cifar_plain") for t in ("0", "1")}
  assert all(float(r["correlation"]) == 1.0 for r in table if r["lag"] == "0")
  assert "ResNet-14 init: lag 2" in proc.stdout
  assert os.path.getsize(tmp_path / "gradient_correlation.png") > 5000


@pytest.mark.slow
def test_why_scripts_refuse_a_missing_workdir(tmp_path):
  for script in ("scripts/shattered_gradients.py", "scripts/loss_landscape.py"):
    proc = run_script(script, f"--workdir={tmp_path}/nothing*")
    assert proc.returncode == 2 and "no workdir with a checkpoint matches" in proc.stderr
