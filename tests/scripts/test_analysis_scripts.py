"""The analysis scripts on a real (tiny) training workdir: scripts/lesion.py, path_gradients.py,
make_figures.py, shattered_gradients.py and loss_landscape.py (several tests run two of them)."""

import csv
import os

import pytest
from helpers.runner import ROOT, run_script

from cnn_depth import config as config_lib
from cnn_depth import train


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
  module = config_lib.load_config_module(os.path.join(ROOT, "configs", "quickstart.py"))
  out, root = {}, tmp_path_factory.mktemp("runs")
  for residual in (True, False):
    config = module.get_config(f"depth=14,residual={residual},steps=6")
    config.model.width = 4
    config.batch_size = 32
    config.log_every_steps = config.eval_every_steps = 6
    out[residual] = str(root / ("resnet14" if residual else "plain14"))
    train.train_and_evaluate(config, out[residual])
  return out


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_lesion_script(workdirs):
  for residual, workdir in workdirs.items():
    proc = run_script("scripts/lesion.py", f"--workdir={workdir}", "--samples=3", "--max_swaps=2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = rows(os.path.join(workdir, "analysis", "lesion_single.csv"))
    assert [int(r["block"]) for r in single] == list(range(-1, 6))
    assert [int(r["downsampling"]) for r in single[1:]] == [0, 0, 1, 0, 1, 0]
    assert [
      int(r["k"]) for r in rows(os.path.join(workdir, "analysis", "lesion_multi.csv"))
    ] == list(range(1, 7))
    assert os.path.exists(os.path.join(workdir, "analysis", "lesion_reorder.csv")) == residual
    for name in ("lesion_single.png", "lesion_multi.png"):
      assert os.path.getsize(os.path.join(workdir, "analysis", name)) > 5000


def test_path_gradient_script(workdirs):
  proc = run_script(
    "scripts/path_gradients.py", f"--workdir={workdirs[True]}", "--samples=3", "--batch=16"
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = rows(os.path.join(workdirs[True], "analysis", "path_gradients.csv"))
  assert [int(r["num_paths"]) for r in table] == [1, 6, 15, 20, 15, 6, 1]
  assert "of the gradient in paths of length" in proc.stdout
  plain = run_script("scripts/path_gradients.py", f"--workdir={workdirs[False]}", "--samples=1")
  assert plain.returncode == 2 and "plain" in plain.stderr.lower()


@pytest.mark.parametrize("script", ["lesion.py", "path_gradients.py"])
@pytest.mark.parametrize("kind", ["empty", "no checkpoint"])
def test_scripts_refuse_a_workdir_without_checkpoint(tmp_path, script, kind):
  """Exit 2 and one line "error: ...", writing nothing: an empty folder, or the config and metrics
  of a run killed before its first checkpoint."""
  if kind == "no checkpoint":
    from cnn_depth import workdir as workdir_lib

    path = os.path.join(ROOT, "configs", "quickstart.py")
    config = config_lib.load_config_file(f"{path}:depth=14,residual=True,steps=6")
    workdir_lib.write_config(str(tmp_path), config)
    with workdir_lib.MetricsWriter(str(tmp_path)) as writer:
      writer.write(1, train_loss=2.3)
  before = sorted(os.listdir(tmp_path))
  proc = run_script(f"scripts/{script}", f"--workdir={tmp_path}")
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  expect = "config.json" if kind == "empty" else "checkpoint"
  assert len(errors) == 1 and expect in errors[0], proc.stderr[-2000:]
  assert sorted(os.listdir(tmp_path)) == before


def test_make_figures_script(workdirs, tmp_path):
  root = os.path.dirname(workdirs[True])
  proc = run_script("scripts/make_figures.py", f"--runs_dir={root}", f"--out_dir={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = rows(tmp_path / "table.csv")
  assert [(r["family"], r["depth"], r["seeds"]) for r in table] == [
    ("cifar_plain", "14", "1"),
    ("cifar_resnet", "14", "1"),
  ]
  assert int(table[0]["params"]) == int(table[1]["params"]) > 0  # plain twin: same count
  assert "| cifar_resnet | 14 |" in (tmp_path / "table.md").read_text()
  for name in ("error_curves.png", "gradient_flow.png"):
    assert os.path.getsize(tmp_path / name) > 5000


def test_scripts_group_seeds(workdirs, tmp_path):
  """The trained ResNet-14 again as seed 1 (its config's seed rewritten; the digits' test split
  follows the seed): lesion.py groups the two under one label, a row per seed, and prints each
  seed; path_gradients.py averages them and prints each seed's effective paths."""
  import shutil

  from cnn_depth import workdir as workdir_lib

  seed1 = str(tmp_path / "resnet14_s1")
  shutil.copytree(workdirs[True], seed1, ignore=shutil.ignore_patterns("analysis"))
  config = workdir_lib.read_config(seed1)
  workdir_lib.write_config(seed1, {**config, "seed": 1})
  out = tmp_path / "out"
  proc = run_script(
    "scripts/lesion.py",
    f"--workdir={workdirs[True]},{seed1},{workdirs[False]}",
    "--labels=R,R,P",
    "--samples=2",
    "--max_swaps=1",
    f"--out_dir={out}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  single = rows(out / "lesion_single.csv")
  assert list(single[0])[:3] == ["model", "seed", "block"]
  assert [(r["model"], r["seed"]) for r in single if r["block"] == "-1"] == [
    ("R", "0"),
    ("R", "1"),
    ("P", "0"),
  ]
  assert {(r["model"], r["seed"]) for r in rows(out / "lesion_multi.csv")} == {
    ("R", "0"),
    ("R", "1"),
    ("P", "0"),
  }
  assert {r["seed"] for r in rows(out / "lesion_reorder.csv")} == {"0", "1"}
  for line in ("R, seed 0: intact", "R, seed 1: intact", "R, mean of 2 seeds", "P, seed 0"):
    assert line in proc.stdout, proc.stdout
  proc = run_script(
    "scripts/path_gradients.py",
    f"--workdir={workdirs[True]},{seed1}",
    "--samples=2",
    "--batch=16",
    f"--out_dir={out}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = rows(out / "path_gradients.csv")
  assert list(table[0])[-2:] == ["grad_norm_seed_std", "seeds"] and table[0]["seeds"] == "2"
  assert {r["seed"] for r in rows(out / "path_gradients_by_seed.csv")} == {"0", "1"}
  assert "mean of 2 seeds" in proc.stdout and "seed 1: 90% of the gradient" in proc.stdout


def test_shattered_gradients_script(workdirs, tmp_path):
  """Both nets, at initialisation and trained: a correlation curve each, 1 at lag 0."""
  proc = run_script(
    "scripts/shattered_gradients.py",
    f"--workdir={workdirs[True]},{workdirs[False]}",
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


def test_loss_landscape_script(workdirs, tmp_path):
  """Landscapes of both nets and the Hessian at initialisation (step 0) and at the checkpoint."""
  proc = run_script(
    "scripts/loss_landscape.py",
    f"--workdir={os.path.dirname(workdirs[True])}/*14",
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


def test_why_scripts_refuse_a_missing_workdir(tmp_path):
  for script in ("scripts/shattered_gradients.py", "scripts/loss_landscape.py"):
    proc = run_script(script, f"--workdir={tmp_path}/nothing*")
    assert proc.returncode == 2 and "no workdir with a checkpoint matches" in proc.stderr
