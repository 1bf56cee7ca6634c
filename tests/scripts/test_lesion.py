"""scripts/lesion.py on the shared tiny workdirs (conftest.py): the CSVs and figures of each net,
and the seeds of a net grouped under one label, in one run (by path_gradients.py too); both
scripts' refusal of a workdir without checkpoint (one parametrised test for the two); the bad flags
of every analysis script but loss_landscape.py, refused before anything is read; and the hint
that --max_swaps=0 skips reordering a net with nothing to reorder."""

import csv
import os
from concurrent import futures

import pytest
from helpers.runner import ROOT, run_script

from cnn_depth import config as config_lib


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


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
  reorder = rows(out / "lesion_reorder.csv")
  assert {(r["model"], r["seed"]) for r in reorder} == {("R", "0"), ("R", "1")}  # residual only
  for line in ("R, seed 0: intact", "R, seed 1: intact", "R, mean of 2 seeds", "P, seed 0"):
    assert line in proc.stdout, proc.stdout
  # Every net's lesions: intact (-1), then each of its 6 blocks, the downsampling ones marked; k of
  # 1 ... 6 deleted blocks.
  for model in ("R", "P"):
    mine = [r for r in single if (r["model"], r["seed"]) == (model, "0")]
    assert [int(r["block"]) for r in mine] == list(range(-1, 6))
    assert [int(r["downsampling"]) for r in mine[1:]] == [0, 0, 1, 0, 1, 0]
    multi = [r for r in rows(out / "lesion_multi.csv") if (r["model"], r["seed"]) == (model, "0")]
    assert [int(r["k"]) for r in multi] == list(range(1, 7))
  for name in ("lesion_single.png", "lesion_multi.png"):
    assert os.path.getsize(out / name) > 5000, name
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


def bad_flag_cases_pass(cases, workdir_flag: str, tmp_path) -> None:
  """Runs each (script, flags, message) case, three at a time: exit 2, one `error:` line holding
  the message, no traceback, and nothing left in tmp_path but what was there."""
  before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
  with futures.ThreadPoolExecutor(3) as pool:
    procs = list(pool.map(lambda c: run_script(f"scripts/{c[0]}", workdir_flag, *c[1]), cases))
  for (script, args, message), proc in zip(cases, procs):
    assert proc.returncode == 2, (script, args, proc.stderr[-2000:])
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and message in line, (script, args, line)
  assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_bad_flags_are_refused_before_any_workdir_is_read(tiny_workdirs, tmp_path):
  """lesion.py, path_gradients.py, shattered_gradients.py and make_figures.py: a number out of
  range, or an --out_dir that cannot be made (/proc/x, under a file), is one line naming the flag
  and its value, exit 2, before the workdir (a trained one, only read) or its data are touched;
  an --out_dir that could be made is made only to try it, and removed (loss_landscape.py's own
  flags: tests/scripts/test_loss_landscape.py)."""
  (tmp_path / "a_file").write_text("x")
  new = tmp_path / "new" / "out"  # could be made: tried, and removed again
  cases = [
    ("lesion.py", ["--samples=0"], "--samples=0 cannot be used: it must be a whole number >= 1"),
    ("lesion.py", ["--k_max=-1"], "--k_max=-1 cannot be used"),
    ("lesion.py", ["--max_swaps=-2"], "--max_swaps=-2 cannot be used"),
    ("lesion.py", ["--out_dir=/proc/x"], "--out_dir=/proc/x cannot be made or written to (No such"),
    ("lesion.py", [f"--out_dir={tmp_path}/a_file/x"], "(Not a directory)"),
    ("lesion.py", [f"--out_dir={tmp_path}/a_file"], "a file of that name is in the way"),
    ("path_gradients.py", ["--share=1.5"], "--share=1.5 cannot be used: it must be a share"),
    ("path_gradients.py", ["--batch=0"], "--batch=0 cannot be used"),
    ("path_gradients.py", ["--out_dir=/proc/x"], "--out_dir=/proc/x cannot be made"),
    ("shattered_gradients.py", ["--radius=-1"], "--radius=-1.0 cannot be used: it must be"),
    ("shattered_gradients.py", ["--points=9", "--max_lag=9"], "--max_lag=9 cannot be used"),
    ("shattered_gradients.py", ["--out_dir=/proc/x"], "--out_dir=/proc/x cannot be made"),
  ]
  bad_flag_cases_pass(cases, f"--workdir={tiny_workdirs[True]}", tmp_path)
  figures = [
    ("make_figures.py", ["--ymax=-3"], "--ymax=-3.0 cannot be used"),
    ("make_figures.py", ["--out_dir=/proc/x"], "--out_dir=/proc/x cannot be made"),
  ]
  runs_dir = os.path.dirname(tiny_workdirs[True])
  bad_flag_cases_pass(figures, f"--runs_dir={runs_dir}", tmp_path)
  # A good --out_dir with a workdir that is no run: the workdir's refusal, and the folder gone.
  proc = run_script("scripts/lesion.py", f"--workdir={tmp_path / 'none'}", f"--out_dir={new}")
  assert proc.returncode == 2 and "holds no config.json" in proc.stderr, proc.stderr[-2000:]
  assert os.listdir(tmp_path) == ["a_file"]


@pytest.mark.slow
def test_lesion_defaults_on_resnet8_say_how_to_skip_reordering(tmp_path):
  """ResNet-8 (the quickstart's net) has no two blocks of one shape to swap: the default
  --max_swaps refuses the reordering and says that --max_swaps=0 keeps the trained order, which
  then runs."""
  from cnn_depth import train

  path = os.path.join(ROOT, "configs", "quickstart.py")
  config = config_lib.load_config_file(f"{path}:depth=8,residual=True,steps=2")
  config.model.width, config.batch_size = 4, 32
  workdir = str(tmp_path / "resnet8")
  train.train_and_evaluate(config, workdir)
  proc = run_script("scripts/lesion.py", f"--workdir={workdir}", "--samples=2")
  assert proc.returncode == 2, proc.stderr[-2000:]
  (line,) = proc.stderr.strip().splitlines()
  assert "nothing can be reordered" in line and "--max_swaps=0 keeps the trained order" in line
  assert not os.path.exists(os.path.join(workdir, "analysis"))
  proc = run_script("scripts/lesion.py", f"--workdir={workdir}", "--samples=2", "--max_swaps=0")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert os.path.exists(os.path.join(workdir, "analysis", "lesion_reorder.csv"))
