"""scripts/loss_landscape.py on the shared tiny workdirs (conftest.py): landscapes of both nets and
the Hessian at initialisation (step 0) and at the checkpoint; its numeric flags and --out_dir
refused before anything is read (its refusal of a missing workdir:
tests/scripts/test_shattered_gradients.py)."""

import csv
import os
from concurrent import futures

import pytest
from helpers.runner import run_script


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


@pytest.mark.slow
def test_loss_landscape_script(tiny_workdirs, tmp_path):
  """Landscapes of both nets and the Hessian at initialisation (step 0) and at the checkpoint."""
  proc = run_script(
    "scripts/loss_landscape.py",
    f"--workdir={os.path.dirname(tiny_workdirs[True])}/*14",
    f"--out_dir={tmp_path}",
    "--points_1d=3",
    "--points_2d=2",
    "--train_examples=64",
    "--hessian_examples=16",
    "--lanczos_iters=3",
    "--density_iters=3",
    "--density_draws=1",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  one = rows(tmp_path / "landscape_1d.csv")
  assert list(one[0]) == ["model", "depth", "seed", "alpha", "train_loss", "test_error"]
  assert [float(r["alpha"]) for r in one] == [-1.0, 0.0, 1.0] * 2
  two = rows(tmp_path / "landscape_2d.csv")
  assert list(two[0]) == ["model", "depth", "seed", "alpha", "beta", "train_loss"] and len(two) == 8
  hessian = rows(tmp_path / "hessian.csv")
  assert list(hessian[0])[:6] == ["model", "depth", "seed", "step", "lambda_max", "lambda_min"]
  assert [int(r["step"]) for r in hessian] == [0, 6, 0, 6]
  assert all(float(r["lambda_max"]) >= float(r["lambda_min"]) for r in hessian)
  assert {r["step"] for r in rows(tmp_path / "hessian_density.csv")} == {"6"}
  for name in ("landscape_1d", "landscape_2d", "hessian", "hessian_density"):
    assert os.path.getsize(tmp_path / f"{name}.png") > 5000, name


def test_bad_numbers_are_refused_before_any_workdir_is_read(tiny_workdirs, tmp_path):
  """A span that is not a finite number > 0 (it used to be accepted), too few points, no Lanczos
  steps, a seed that is no number, an --out_dir that cannot be made: one line naming the flag and
  its value, exit 2, nothing written (the workdir, a trained one, is only read)."""
  cases = [
    ("--span=-1", "--span=-1.0 cannot be used: it must be a finite number > 0"),
    ("--span=0", "--span=0.0 cannot be used"),
    ("--span=inf", "--span=inf cannot be used"),
    ("--points_1d=1", "--points_1d=1 cannot be used: it must be a whole number >= 2"),
    ("--points_2d=1", "--points_2d=1 cannot be used: it must be 0 (no 2-D landscape) or"),
    ("--lanczos_iters=0", "--lanczos_iters=0 cannot be used"),
    ("--train_examples=-5", "--train_examples=-5 cannot be used"),
    ("--plane_seeds=0,x", "--plane_seeds=0,x cannot be used: it must be a comma-separated list"),
    ("--out_dir=/proc/x", "--out_dir=/proc/x cannot be made or written to"),
  ]
  with futures.ThreadPoolExecutor(3) as pool:
    procs = list(
      pool.map(
        lambda c: run_script(
          "scripts/loss_landscape.py", f"--workdir={tiny_workdirs[True]}", c[0], "--hessian=false"
        ),
        cases,
      )
    )
  for (flag, message), proc in zip(cases, procs):
    assert proc.returncode == 2, (flag, proc.stderr[-2000:])
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, (flag, line)
  assert not os.listdir(tmp_path)
