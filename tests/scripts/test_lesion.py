"""scripts/lesion.py on the shared tiny workdirs (conftest.py): the CSVs and figures of each net;
the seeds of a net grouped under one label, by lesion.py and by scripts/path_gradients.py; and both
scripts' refusal of a workdir without checkpoint (one parametrised test for the two)."""

import csv
import os

import pytest
from helpers import workdirs
from helpers.runner import ROOT, run_script

from cnn_depth import config as config_lib


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


@pytest.mark.slow
def test_lesion_script(tiny_workdirs, tmp_path):
  for residual, shared in tiny_workdirs.items():
    workdir = workdirs.copy(shared, tmp_path)  # lesion.py writes into <workdir>/analysis
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_scripts_group_seeds(tiny_workdirs, tmp_path):
  """The trained ResNet-14 again as seed 1 (its config's seed rewritten; the digits' test split
  follows the seed): lesion.py groups the two under one label, a row per seed, and prints each
  seed; path_gradients.py averages them and prints each seed's effective paths."""
  import shutil

  from cnn_depth import workdir as workdir_lib

  seed1 = str(tmp_path / "resnet14_s1")
  shutil.copytree(tiny_workdirs[True], seed1, ignore=shutil.ignore_patterns("analysis"))
  config = workdir_lib.read_config(seed1)
  workdir_lib.write_config(seed1, {**config, "seed": 1})
  out = tmp_path / "out"
  proc = run_script(
    "scripts/lesion.py",
    f"--workdir={tiny_workdirs[True]},{seed1},{tiny_workdirs[False]}",
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
    f"--workdir={tiny_workdirs[True]},{seed1}",
    "--samples=2",
    "--batch=16",
    f"--out_dir={out}",
  )
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = rows(out / "path_gradients.csv")
  assert list(table[0])[-2:] == ["grad_norm_seed_std", "seeds"] and table[0]["seeds"] == "2"
  assert {r["seed"] for r in rows(out / "path_gradients_by_seed.csv")} == {"0", "1"}
  assert "mean of 2 seeds" in proc.stdout and "seed 1: 90% of the gradient" in proc.stdout
