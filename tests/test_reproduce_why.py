"""The Li et al. and Balduzzi et al. reproductions' quick modes, shortened, and their refusal
without data (a file of its own so that pytest-xdist runs it beside test_reproduce.py)."""

import os

from test_reproduce import rows, run


def test_balduzzi_and_li_quick_modes_share_he_runs(tmp_path):
  """Balduzzi et al. trains He et al.'s nets (plain and ResNet-8, 4 steps, 4 checkpoints) and
  measures them; Li et al. reuses the same runs (no training) and writes the issue's CSVs."""
  common = ["--quick", "--steps=4", "--depths=8", "--seeds=0", f"--runs={tmp_path / 'runs'}"]
  proc = run(
    "scripts/reproduce_balduzzi2017.sh",
    *common,
    "--lines=1",
    "--points=40",
    f"--out={tmp_path / 'b'}",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  corr = rows(tmp_path / "b" / "gradient_correlation.csv")
  assert {(r["model"], r["depth"], r["trained"]) for r in corr} == {
    (m, "8", t) for m in ("cifar_plain", "cifar_resnet") for t in ("0", "1")
  }
  trained = os.path.getmtime(tmp_path / "runs" / "resnet_d8_s0" / "status.json")
  proc = run(
    "scripts/reproduce_li2018.sh", *common, "--points_2d=2", "--hessian_examples=16",
    f"--out={tmp_path / 'l'}",
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.getmtime(tmp_path / "runs" / "resnet_d8_s0" / "status.json") == trained
  hessian = rows(tmp_path / "l" / "hessian.csv")
  assert sorted({int(r["step"]) for r in hessian}) == [0, 1, 2, 3, 4]
  assert {r["model"] for r in rows(tmp_path / "l" / "landscape_1d.csv")} == {
    "cifar_plain",
    "cifar_resnet",
  }
  for name in ("landscape_1d.png", "landscape_2d.png", "hessian.png", "hessian_density.png"):
    assert os.path.getsize(tmp_path / "l" / name) > 5000


def test_balduzzi_and_li_full_modes_need_data():
  for script in ("scripts/reproduce_balduzzi2017.sh", "scripts/reproduce_li2018.sh"):
    proc = run(script)
    assert proc.returncode == 2 and "--data_dir" in proc.stderr
