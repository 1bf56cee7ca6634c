"""cnn_depth/sweep.py in-process: a study's run that is no grid point is the command `plan` builds
for each grid point, named by its workdir, checked before anything runs (scripts/sweep.py end to
end: tests/scripts/test_sweep.py)."""

import os
import sys

import pytest
from helpers.runner import ROOT

from cnn_depth import sweep as sweep_lib
from cnn_depth import workdir as workdir_lib


def test_run_for_is_one_train_command_named_by_its_workdir(tmp_path):
  """A study's run that is no grid point: the command `plan` builds for each grid point."""
  config = os.path.join(ROOT, "configs", "cifar_vgg.py")
  workdir = str(tmp_path / "study" / "vgg16_bn")
  run = sweep_lib.run_for(
    f"{config}:depth=16", workdir, ["--config.num_train_steps=10"], ["--compilation_cache=/c"]
  )
  assert (run.name, run.workdir) == ("vgg16_bn", workdir)
  assert run.command[0] == sys.executable
  assert os.path.abspath(run.command[1]) == sweep_lib.TRAIN_SCRIPT
  assert run.command[2:] == (
    f"--config={config}:depth=16",
    f"--workdir={workdir}",
    "--config.num_train_steps=10",
    "--compilation_cache=/c",
  )
  assert sweep_lib.run_for(config, workdir + os.sep).name == "vgg16_bn"
  with pytest.raises(sweep_lib.SweepError, match="has no field 'nope'"):
    sweep_lib.run_for(config, workdir, ["--config.nope=1"])
  with pytest.raises(sweep_lib.SweepError, match="'dept'"):
    sweep_lib.run_for(f"{config}:dept=3", workdir)
  # plan: one run_for per grid point, named run_name(...), its launch record where workdir says.
  resnet = os.path.join(ROOT, "configs", "cifar_resnet.py")
  (grid,) = sweep_lib.plan(resnet, str(tmp_path), [20], [1], [False], ["--config.seed=1"])
  name = workdir_lib.run_name("plain", 20, 1)
  assert grid == sweep_lib.run_for(
    f"{resnet}:depth=20,residual=false,seed=1", str(tmp_path / name), ["--config.seed=1"]
  )
  assert sweep_lib.record_path(str(tmp_path), name) == workdir_lib.record_path(str(tmp_path), name)
  assert not os.listdir(tmp_path)  # planning writes nothing


def test_a_grid_with_one_run_train_would_refuse_starts_none(tmp_path):
  """Every run's config is parsed by scripts/train.py's parser and checked, and its model built,
  while planning: a depth the family does not take names --depths; a bad --extra value names its
  override; nothing is written."""
  quick = os.path.join(ROOT, "configs", "quickstart.py")
  with pytest.raises(sweep_lib.SweepError) as e:
    sweep_lib.plan(quick, str(tmp_path), [8, 9], [0], [True])
  assert str(e.value).startswith("--depths=8,9: run resnet_d9_s0 cannot start: depth 9 is not")
  assert "nearest valid depths: 8 and 14" in str(e.value)
  workdir = str(tmp_path / "r8")
  for extra, message in [
    ("--config.model.width=abc", "--config.model.width=abc is not a value of the field's type"),
    ("--config.batch_size=0", "batch_size=0 cannot be used"),
    ("--config.model.block=bottleneck", "depth 8 is not a valid depth"),
  ]:
    with pytest.raises(sweep_lib.RunRefused) as e:
      sweep_lib.run_for(f"{quick}:depth=8", workdir, [extra])
    assert str(e.value).startswith("run r8 cannot start: ") and message in str(e.value), extra
    assert e.value.model == ("bottleneck" in extra)  # the model failed, not the fields
    assert "\n" not in str(e.value)
  assert not os.listdir(tmp_path)


def test_status_table_shows_restarts_and_recipe_changes(tmp_path):
  """The launch record's restarts (SLURM requeues) and the workdir's changes.jsonl, per run."""
  root = str(tmp_path)
  for name, restarts in (("resnet_d8_s0", 2), ("resnet_d8_s1", 0)):
    workdir = os.path.join(root, name)
    os.makedirs(workdir)
    workdir_lib.write_status(workdir, "done", step=15, total_steps=15)
    sweep_lib.update_record(root, name, job_id=f"7_{name[-1]}", exit_code=0, restarts=restarts)
  changes = [{"field": "num_train_steps", "old": 10, "new": 15}, {"field": "learning_rate"}]
  workdir_lib.record_changes(os.path.join(root, "resnet_d8_s0"), 10, changes)
  rows = sweep_lib.grid_status(root)
  assert [(r["restarts"], len(r["changes"])) for r in rows] == [(2, 2), (0, 0)]
  header, first, second = sweep_lib.format_table(rows).splitlines()
  assert header.split()[-2:] == ["restarts", "changes"]
  assert first.split()[-3:] == ["7_0", "2", "2@10"] and second.split()[-3:] == ["7_1", "0", "-"]
