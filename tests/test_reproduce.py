"""The reproduction scripts' quick modes, shortened, and their refusal without data."""

import csv
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=1",
    PYTHON=os.path.join(ROOT, ".venv", "bin", "python"),
  )
  if not os.path.exists(env["PYTHON"]):
    import sys

    env["PYTHON"] = sys.executable
  return subprocess.run(
    ["bash", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
  )


def test_huang_quick_mode_makes_curves(tmp_path):
  proc = run(
    "scripts/reproduce_huang2016.sh",
    "--quick",
    "--steps=4",
    "--seeds=1",
    f"--runs={tmp_path / 'runs'}",
    f"--out={tmp_path / 'out'}",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "out" / "curves.csv") as f:
    rows = list(csv.DictReader(f))
  assert {r["variant"] for r in rows} == {"constant depth", "stochastic depth (p_L=0.5)"}
  assert all(r["seeds"] == "1" and float(r["test_error_std"]) == 0 for r in rows)
  assert sorted(os.listdir(tmp_path / "runs")) == ["quick_pL0.5_s1", "quick_pL1.0_s1"]
  assert os.path.getsize(tmp_path / "out" / "curves.png") > 5000


def test_huang_full_mode_needs_data():
  proc = run("scripts/reproduce_huang2016.sh")
  assert proc.returncode == 2 and "--data_dir" in proc.stderr


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_he_quick_mode_makes_table_and_curves(tmp_path):
  proc = run(
    "scripts/reproduce_he2016.sh",
    "--quick",
    "--steps=4",
    "--depths=8,14",
    "--seeds=0",
    f"--runs={tmp_path / 'runs'}",
    f"--out={tmp_path / 'out'}",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  table = rows(tmp_path / "out" / "table.csv")
  assert list(table[0])[:6] == ["family", "depth", "params", "train_error", "test_error", "seeds"]
  assert [(r["family"], int(r["depth"])) for r in table] == [
    ("cifar_plain", 8),
    ("cifar_plain", 14),
    ("cifar_resnet", 8),
    ("cifar_resnet", 14),
  ]
  assert all(0 <= float(r["test_error"]) <= 1 and r["seeds"] == "1" for r in table)
  by_seed = rows(tmp_path / "out" / "table_by_seed.csv")
  assert [(r["family"], r["depth"], r["seed"]) for r in by_seed][:2] == [
    ("cifar_plain", "8", "0"),
    ("cifar_plain", "14", "0"),
  ]
  # Four checkpoints through training (steps 1-4), for the Hessian spectra of reproduce_li2018.sh.
  ckpts = tmp_path / "runs" / "resnet_d8_s0" / "checkpoints"
  assert sorted(int(n) for n in os.listdir(ckpts) if n.isdigit()) == [1, 2, 3, 4]
  for name in ("error_curves.png", "gradient_flow.png"):
    assert os.path.getsize(tmp_path / "out" / name) > 5000


def test_veit_quick_mode_writes_the_issue_csvs(tmp_path):
  """One seed (the grouping of several is tested in test_lesion, test_paths and
  test_analysis_scripts): every net trained under its seed's name, the CSVs with their seed."""
  proc = run(
    "scripts/reproduce_veit2016.sh",
    "--quick",
    "--steps=4",
    "--depth=14",
    "--seeds=1",
    "--samples=2",
    "--lesion_samples=2",
    f"--runs={tmp_path / 'runs'}",
    f"--out={tmp_path / 'out'}",
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(os.listdir(tmp_path / "runs")) == ["plain14_s1", "resnet14_s1", "vgg16_s1"]
  out = tmp_path / "out"
  single = rows(out / "lesion_single.csv")
  assert list(single[0]) == ["model", "seed", "block", "downsampling", "test_error"]
  for model, blocks in (("ResNet-14", 6), ("plain-14", 6), ("VGG-16", 13)):
    mine = [r for r in single if r["model"] == model]
    assert [int(r["block"]) for r in mine] == list(range(-1, blocks))
    assert {r["seed"] for r in mine} == {"1"}
  multi = rows(out / "lesion_multi.csv")
  assert list(multi[0]) == ["model", "seed", "k", "test_error_mean", "test_error_std"]
  assert {r["model"] for r in multi} == {"ResNet-14", "plain-14", "VGG-16"}
  assert {r["seed"] for r in rows(out / "lesion_reorder.csv")} == {"1"}
  paths = rows(out / "path_gradients.csv")
  assert list(paths[0])[:5] == ["k", "num_paths", "grad_norm_mean", "grad_norm_std", "total_grad"]
  assert [int(r["num_paths"]) for r in paths] == [1, 6, 15, 20, 15, 6, 1]
  assert {r["seeds"] for r in paths} == {"1"}
  for name in ("lesion_single.png", "lesion_multi.png", "path_gradients.png"):
    assert os.path.getsize(out / name) > 5000


def test_he_and_veit_full_modes_need_data():
  for script in ("scripts/reproduce_he2016.sh", "scripts/reproduce_veit2016.sh"):
    proc = run(script)
    assert proc.returncode == 2 and "--data_dir" in proc.stderr
