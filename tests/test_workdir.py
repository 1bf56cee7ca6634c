"""cnn_depth/workdir.py: the paths of a workdir and a sweep root, config.json, metrics.jsonl and
status.json written, read and truncated for a resume, the checks of a workdir's folder and of a
resume's config; and workdirs written by older code, which still open, restore and resume.

`tests/fixtures/workdirs_e358d80/` holds two tiny runs trained for 2 steps by commit e358d80 (before
the models/ and data/ packages): a scanned CIFAR ResNet-14 (width 4) and a DenseNet-BC-10 (k = 4),
both on the embedded digits. Their parameter paths, config.json and orbax checkpoints are what
users' workdirs of that time look like.
"""

import errno
import json
import os
import shutil
import stat

import jax
import ml_collections
import numpy as np
import pytest
from helpers.runner import ROOT, run_script

from cnn_depth import config as config_lib
from cnn_depth import models, train
from cnn_depth import workdir as workdir_lib
from cnn_depth.analysis import lesion, runs
from cnn_depth.workdir import WorkdirError


def test_logs_does_not_import_jax():
  code = "import sys, cnn_depth.workdir; print('jax' in sys.modules, 'numpy' in sys.modules)"
  out = run_script("-c", code)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.split() == ["False", "False"]


def test_paths_of_a_workdir_and_a_sweep_root(tmp_path):
  """The layout the scripts, the launchers and the reproduce_*.sh files rely on."""
  wd, root = tmp_path / "resnet_d8_s0", str(tmp_path)
  assert workdir_lib.checkpoint_dir(wd) == os.path.join(str(wd), "checkpoints")
  assert workdir_lib.analysis_dir(str(wd)) == os.path.join(str(wd), "analysis")
  assert workdir_lib.run_name("resnet", 8, 0) == "resnet_d8_s0" == wd.name
  assert workdir_lib.run_name("stochastic_depth", 110, 2) == "stochastic_depth_d110_s2"
  sweep = os.path.join(root, "sweep")
  assert workdir_lib.sweep_dir(root) == sweep
  assert workdir_lib.record_path(root, "plain_d20_s1") == os.path.join(sweep, "plain_d20_s1.json")
  assert workdir_lib.log_path(root, "plain_d20_s1") == os.path.join(sweep, "plain_d20_s1.log")
  assert workdir_lib.slurm_dir(root) == os.path.join(sweep, "slurm")


def test_config_round_trip(tmp_path):
  assert workdir_lib.read_config(tmp_path) is None
  config = {
    "model": {"depth": 20, "family": "cifar_resnet", "widths": (16, 32, 64)},
    "lr": np.float32(0.5),
    "dataset": {"name": "digits"},
  }
  workdir_lib.write_config(tmp_path, config)
  text = (tmp_path / "config.json").read_text()
  assert text.index('"dataset"') < text.index('"lr"') < text.index('"model"')  # sorted keys
  assert '\n  "dataset": {' in text  # indent 2
  assert workdir_lib.read_config(tmp_path) == {
    "model": {"depth": 20, "family": "cifar_resnet", "widths": [16, 32, 64]},
    "lr": 0.5,
    "dataset": {"name": "digits"},
  }


def test_metrics_append_read_and_truncated_last_line(tmp_path):
  assert workdir_lib.read_metrics(tmp_path) == []
  with workdir_lib.MetricsWriter(tmp_path) as w:
    w.write(1, loss=np.float32(2.5), accuracy=0.25, per_class=np.array([1, 2]), name="train")
    w.write(np.int64(2), loss=float("nan"))
    # flushed at once: readable while the writer is open
    assert [r["step"] for r in workdir_lib.read_metrics(tmp_path)] == [1, 2]
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert lines[0].startswith('{"step": 1,')
  records = workdir_lib.read_metrics(tmp_path)
  assert records[0] == {
    "step": 1,
    "loss": 2.5,
    "accuracy": 0.25,
    "per_class": [1.0, 2.0],
    "name": "train",
  }
  assert isinstance(records[0]["per_class"][0], float) and np.isnan(records[1]["loss"])

  with open(tmp_path / "metrics.jsonl", "a") as f:  # a process killed mid-write
    f.write('{"step": 3, "lo')
  assert [r["step"] for r in workdir_lib.read_metrics(tmp_path)] == [1, 2]
  with workdir_lib.MetricsWriter(tmp_path) as w:  # appending after a torn line keeps lines whole
    w.write(3, loss=1.0)
  assert [r["step"] for r in workdir_lib.read_metrics(tmp_path)] == [1, 2, 3]

  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write("garbage\n" + json.dumps({"step": 4}) + "\n")
  with pytest.raises(ValueError, match="metrics.jsonl:4"):
    workdir_lib.read_metrics(tmp_path)


def test_truncate_metrics_for_resume(tmp_path):
  with workdir_lib.MetricsWriter(tmp_path) as w:
    for step in range(0, 50, 10):
      w.write(step, loss=1.0 / (step + 1))
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 5')
  assert workdir_lib.truncate_metrics(tmp_path, 20) == 2
  assert [r["step"] for r in workdir_lib.read_metrics(tmp_path)] == [0, 10, 20]
  assert (tmp_path / "metrics.jsonl").read_text().endswith("}\n")
  with workdir_lib.MetricsWriter(
    tmp_path, truncate_after=10
  ) as w:  # the resumed run: no duplicates
    w.write(20, loss=0.5)
    w.write(30, loss=0.4)
  assert [r["step"] for r in workdir_lib.read_metrics(tmp_path)] == [0, 10, 20, 30]
  assert workdir_lib.truncate_metrics(tmp_path / "nothing_here", 0) == 0


def test_status_validated_and_atomic(tmp_path):
  assert workdir_lib.read_status(tmp_path) is None
  for status in workdir_lib.STATUSES:
    workdir_lib.write_status(tmp_path, status, step=np.int32(12), reason="test")
    got = workdir_lib.read_status(tmp_path)
    assert got["status"] == status and got["step"] == 12.0 and got["reason"] == "test"
    assert "time" in got and got["unix_time"] > 0
  with pytest.raises(ValueError, match="status must be one of"):
    workdir_lib.write_status(tmp_path, "crashed")
  with pytest.raises(ValueError, match="set by write_status"):
    workdir_lib.write_status(tmp_path, "done", time=3)
  # A refused write changes nothing.
  assert workdir_lib.read_status(tmp_path)["status"] == "preempted"
  assert os.listdir(tmp_path) == ["status.json"]  # no temporary files left behind


def test_status_write_replaces_the_file(tmp_path, monkeypatch):
  """Readers never see a half-written status.json: it is written aside, then renamed over."""
  workdir_lib.write_status(tmp_path, "running", step=1)
  replaced = []
  real_replace = os.replace

  def spy(src, dst):
    assert json.load(open(src))["status"] == "done"  # complete before it becomes visible
    assert workdir_lib.read_status(tmp_path)["status"] == "running"
    replaced.append(dst)
    real_replace(src, dst)

  monkeypatch.setattr(workdir_lib.os, "replace", spy)
  workdir_lib.write_status(tmp_path, "done", step=2)
  assert replaced == [os.path.join(tmp_path, "status.json")]
  assert workdir_lib.read_status(tmp_path)["status"] == "done"


def test_check_workdir_creates_and_rejects_files(tmp_path):
  created = workdir_lib.check_workdir(tmp_path / "a" / "b")
  assert os.path.isdir(created) and os.listdir(created) == []
  afile = tmp_path / "file"
  afile.write_text("x")
  with pytest.raises(WorkdirError, match="is a file"):
    workdir_lib.check_workdir(afile)
  with pytest.raises(WorkdirError, match="cannot create"):
    workdir_lib.check_workdir(afile / "sub")


@pytest.mark.skipif(
  hasattr(os, "geteuid") and os.geteuid() == 0,
  reason="root ignores directory permissions, so chmod cannot make a read-only dir",
)
def test_check_workdir_read_only_by_permissions(tmp_path):
  ro = tmp_path / "ro"
  ro.mkdir()
  ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
  try:
    with pytest.raises(WorkdirError, match="not writable"):
      workdir_lib.check_workdir(ro)
  finally:
    ro.chmod(stat.S_IRWXU)


def _unwritable_dir():
  """/sys is mounted read-only in containers: not writable even for root."""
  try:
    open("/sys/.cnn_depth_probe", "w").close()
  except OSError:
    return "/sys"
  os.remove("/sys/.cnn_depth_probe")
  return None


@pytest.mark.skipif(_unwritable_dir() is None, reason="no directory here that root cannot write")
def test_check_workdir_read_only_filesystem():
  with pytest.raises(WorkdirError, match="not writable"):
    workdir_lib.check_workdir("/sys")


@pytest.mark.parametrize(
  "error",
  [
    PermissionError(errno.EACCES, "Permission denied"),
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
  ],
)
def test_check_workdir_write_probe_failure(tmp_path, monkeypatch, error):
  """Any OSError of the write probe (read-only mount, full disk, quota, permissions) is a
  WorkdirError that names the cause, before any training time is spent."""

  def refuse(*args, **kwargs):
    raise error

  monkeypatch.setattr("builtins.open", refuse)
  with pytest.raises(
    WorkdirError, match=f"--workdir {tmp_path} is not writable \\({error.strerror}\\)"
  ):
    workdir_lib.check_workdir(tmp_path)


def test_check_resume_compatible_names_the_field():
  saved = {
    "model": {"depth": 20, "width": 16, "family": "cifar_resnet", "widths": [16, 32]},
    "dataset": {"name": "cifar10"},
  }
  same = {
    "model": {"depth": 20, "width": 16, "family": "cifar_resnet", "widths": (16, 32)},
    "dataset": {"name": "cifar10"},
    "lr": 0.1,
  }
  fields = ["model.depth", "model.width", "model.family", "model.widths", "dataset.name"]
  workdir_lib.check_resume_compatible(saved, same, fields)
  deeper = {**same, "model": {**same["model"], "depth": 56}}
  with pytest.raises(WorkdirError, match=r"model\.depth=20.*model\.depth=56.*new --workdir"):
    workdir_lib.check_resume_compatible(saved, deeper, fields)
  other_data = {**same, "dataset": {}}
  with pytest.raises(WorkdirError, match=r"dataset\.name='cifar10'.*'<missing>'"):
    workdir_lib.check_resume_compatible(saved, other_data, fields)


def test_check_resume_compatible_fills_fields_added_later():
  """A workdir written before a shape field existed resumes when the field holds its old value."""
  saved = {"model": {"depth": 20}}
  current = {"model": {"depth": 20, "growth_rate": 0}}
  fields, added = ["model.depth", "model.growth_rate"], {"model.growth_rate": 0}
  workdir_lib.check_resume_compatible(saved, current, fields, added)
  with pytest.raises(WorkdirError, match=r"model\.growth_rate='<missing>'"):
    workdir_lib.check_resume_compatible(saved, current, fields)
  with pytest.raises(WorkdirError, match=r"model\.growth_rate=0.*model\.growth_rate=24"):
    workdir_lib.check_resume_compatible(
      saved, {"model": {"depth": 20, "growth_rate": 24}}, fields, added
    )


# --------------------------------------------------------------------------------------------------
# Workdirs written by older code (tests/fixtures/workdirs_e358d80/).

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "workdirs_e358d80")


def shapes(tree):
  return jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)


def saved_config(workdir) -> ml_collections.ConfigDict:
  """config.base() with every value the workdir's config.json holds."""
  config = config_lib.base()
  for key, value in workdir_lib.read_config(workdir).items():
    if isinstance(value, dict):
      for sub, v in value.items():
        config[key][sub] = v
    else:
      config[key] = tuple(value) if isinstance(value, list) else value
  return config


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet14", "densenet_bc10"])
def test_an_old_workdir_restores_and_resumes(tmp_path, name):
  workdir = str(tmp_path / name)
  shutil.copytree(os.path.join(FIXTURES, name), workdir)

  model, variables, config, ds = runs.load_trained(workdir)
  fresh = models.init_shapes(model, ds.image_shape)
  assert shapes(variables["params"]) == shapes(fresh["params"])
  assert shapes(variables["batch_stats"]) == shapes(fresh["batch_stats"])
  error = lesion.make_error_fn(model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std)
  # The saved test error of step 2, measured again from the restored variables.
  assert error() == pytest.approx(workdir_lib.read_status(workdir)["test_error"], abs=1e-6)

  c = saved_config(workdir)
  c.num_train_steps = 3
  final = train.train_and_evaluate(c, workdir)
  assert final["steps"] == 3 and workdir_lib.read_status(workdir)["status"] == "done"
  assert [m["step"] for m in workdir_lib.read_metrics(workdir)] == [1, 2, 3]
  assert np.isfinite(final["test_error"])


# --------------------------------------------------------------------------------------------------
# The recipe of a run: a relaunch that changes it is refused, unless allowed and then recorded.


def tree_bytes(folder) -> dict:
  """Every file under `folder` with its bytes (a refusal must change none)."""
  return {
    os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f), "rb").read()
    for d, _, files in os.walk(folder)
    for f in files
  }


def test_check_recipe_names_each_change_and_records_allowed_ones(tmp_path):
  wd = str(tmp_path)
  run = {"num_train_steps": 800, "learning_rate": 0.1, "lr_boundaries": [400, 600], "warmup": 0}
  assert workdir_lib.check_recipe(wd, 8, run, {**run, "lr_boundaries": (400, 600)}) == []
  changed = {**run, "learning_rate": 0.5, "warmup": 4}
  with pytest.raises(WorkdirError) as e:
    workdir_lib.check_recipe(wd, 8, run, changed, allow=("warmup",))
  message = str(e.value)
  assert "learning_rate 0.1 -> 0.5" in message and "warmup" not in message.split(";")[0]
  assert "--allow_changes=learning_rate " in message and "from step 8" in message
  assert not os.listdir(wd)
  # Shortening is a change; extending is allowed and returned to be recorded like any other.
  with pytest.raises(WorkdirError, match="num_train_steps 800 -> 400"):
    workdir_lib.check_recipe(wd, 8, run, {**run, "num_train_steps": 400})
  longer = workdir_lib.check_recipe(wd, 8, run, {**run, "num_train_steps": 1600})
  assert longer == [{"field": "num_train_steps", "old": 800, "new": 1600}]
  workdir_lib.record_changes(wd, 8, longer)
  # The recorded change is part of the run's recipe from then on: no change at a later step...
  assert workdir_lib.check_recipe(wd, 9, run, {**run, "num_train_steps": 1600}) == []
  # ...but a resume from before it (an earlier checkpoint) compares against the first recipe, and
  # recording there drops it.
  assert workdir_lib.check_recipe(wd, 8, run, {**run, "num_train_steps": 1600}) == []
  assert workdir_lib.check_recipe(wd, 7, run, {**run, "num_train_steps": 1600}) == longer
  workdir_lib.record_changes(wd, 7, [])
  assert workdir_lib.read_changes(wd) == []


def test_latest_checkpoint_step_lists_only_finished_steps(tmp_path):
  assert workdir_lib.latest_checkpoint_step(str(tmp_path)) is None
  for name in ("5", "10", "15.orbax-checkpoint-tmp", "checksums.json"):
    os.makedirs(os.path.join(workdir_lib.checkpoint_dir(tmp_path), name))
  assert workdir_lib.latest_checkpoint_step(str(tmp_path)) == 10


def test_a_relaunch_that_changes_the_recipe_is_refused_or_recorded(tmp_path):
  """In-process: a run of 10 steps (lr drops at 5 and 7, checkpoints at 5 and 10); a relaunch at
  lr 0.5 is refused with nothing changed; allowed and extended to 15, it goes on at 0.5 with the
  drops where they were (lr 0.5 * 0.01 after step 7), keeps config.json and records both changes
  at step 10; an old workdir's spelling of the same schedule in steps is no change."""
  from helpers.training import tiny_config

  wd = str(tmp_path / "run")
  tiny = {"num_train_steps": 10, "checkpoint_every_steps": 5, "eval_every_steps": 10}
  train.train_and_evaluate(tiny_config(**tiny), wd)
  before = tree_bytes(wd)
  with pytest.raises(WorkdirError) as e:
    train.train_and_evaluate(tiny_config(**tiny, learning_rate=0.5), wd)
  assert "learning_rate 0.1 -> 0.5" in str(e.value) and "--allow_changes=learning_rate " in str(
    e.value
  )
  with pytest.raises(ValueError, match="--allow_changes names 'lr', which is not a field"):
    train.train_and_evaluate(tiny_config(**tiny), wd, allow_changes=["lr"])
  assert tree_bytes(wd) == before

  longer = tiny_config(**{**tiny, "num_train_steps": 15}, learning_rate=0.5)
  train.train_and_evaluate(longer, wd, allow_changes=["learning_rate"])
  after = tree_bytes(wd)
  assert after["config.json"] == before["config.json"]
  changes = [(c["step"], c["field"], c["old"], c["new"]) for c in workdir_lib.read_changes(wd)]
  assert changes == [(10, "num_train_steps", 10, 15), (10, "learning_rate", 0.1, 0.5)]
  lrs = {m["step"]: m["lr"] for m in workdir_lib.read_metrics(wd)}
  assert lrs[10] == pytest.approx(0.001) and lrs[11] == lrs[15] == pytest.approx(0.005)
  # The same command again: already done, nothing recorded twice.
  train.train_and_evaluate(longer, wd, allow_changes=["learning_rate"])
  assert len(workdir_lib.read_changes(wd)) == 2

  # A workdir saved before fractions: lr_unit 'steps' (5, 7) is the same schedule as the
  # config's (0.5, 0.75) of its 15... of its first 10 steps.
  old = json.loads(after["config.json"])
  old.update(lr_unit="steps", lr_boundaries=[5, 7])
  workdir_lib.write_config(wd, old)
  train.train_and_evaluate(tiny_config(**{**tiny, "num_train_steps": 15}, learning_rate=0.5), wd)
  with pytest.raises(WorkdirError, match=r"lr_boundaries \[5, 7\] -> \[4, 7\]"):
    c = tiny_config(**{**tiny, "num_train_steps": 15}, learning_rate=0.5, lr_boundaries=(0.4, 0.75))
    train.train_and_evaluate(c, wd)


@pytest.mark.slow  # 30 s on the loaded 2-core machine: three jax starts
def test_the_command_line_refuses_a_changed_recipe_in_one_line(tmp_path):
  """scripts/train.py relaunching a run at another lr, and with an --allow_changes that names no
  recipe field: exit 2, one `error:` line, the workdir's bytes unchanged."""
  import subprocess
  from concurrent import futures

  from helpers.training import cli, env, tiny_config

  wd = tmp_path / "run"
  tiny = {"num_train_steps": 2, "checkpoint_every_steps": 2, "eval_every_steps": 2}
  train.train_and_evaluate(tiny_config(**tiny), str(wd))
  before = tree_bytes(wd)
  cases = [
    (cli(wd, **tiny, learning_rate=0.5), "learning_rate 0.1 -> 0.5"),
    (cli(wd, "--allow_changes=lr", **tiny), "--allow_changes names 'lr'"),
  ]
  run = lambda args: subprocess.run(args, env=env(1), capture_output=True, text=True, timeout=240)
  with futures.ThreadPoolExecutor(2) as pool:
    procs = list(pool.map(run, [args for args, _ in cases]))
  for (args, message), proc in zip(cases, procs):
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
  assert tree_bytes(wd) == before
