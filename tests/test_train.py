"""The training loop end to end: workdir files, determinism, exact resume after SIGKILL (also while
a checkpoint is being written), SIGTERM preemption, divergence, 1 vs 8 devices, two processes, and
every bad input of the README's troubleshooting table through scripts/train.py
(tests/test_multihost.py: a process of two lost).

Everything runs the quickstart config shrunk to seconds: plain-8 at width 4 on the embedded digits,
batch 32, 40 steps, a log line every step, a checkpoint every 5. One uninterrupted in-process run on
the 8 fake CPU devices of conftest.py (the `reference` fixture) is what the interrupted, 1-device
and two-process runs are compared with. Subprocesses run scripts/train.py with the persistent
compilation cache, so the same programs compile once per machine.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.data_files import write_cifar_pickles
from helpers.training import (
  DEPTH,
  DIVERGENT,
  STEPS,
  SUBPROCESS_TIMEOUT,
  Proc,
  assert_one_error_line,
  checkpoint_steps,
  cli,
  free_port,
  read_metrics,
  read_status,
  run_cli,
  tiny_config,
  wait_until,
)

from cnn_depth import checkpoint as ckpt_lib
from cnn_depth import train

BOUNDARIES = (STEPS // 2, STEPS * 3 // 4)  # what configs/quickstart.py derives from steps=40
# A shorter run compared with the reference's first steps keeps the reference's lr drops (a
# shortened run's own drops move with its length: lr_unit 'fraction').
REFERENCE_SCHEDULE = {"lr_unit": "steps", "lr_boundaries": BOUNDARIES}
REFERENCE_SCHEDULE_FLAGS = {
  "lr_unit": "steps",
  "lr_boundaries": f"({BOUNDARIES[0]},{BOUNDARIES[1]})",
}
# Values that must not depend on how the run was interrupted (images_per_sec does).
DETERMINISTIC = (
  "epoch",
  "lr",
  "train_loss",
  "train_error",
  "grad_norm",
  "param_norm",
  "block_grad_norms",
  "block_param_norms",
  "test_loss",
  "test_error",
)


# --------------------------------------------------------------------------------------------------
# Helpers


def key_bits(tree):
  def leaf(x):
    x = jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
    return np.asarray(x)

  return jax.tree.map(leaf, tree)


def assert_same_checkpoint(dir_a, dir_b, step, other_step=None):
  """Checkpoint `step` of dir_a equals `other_step` (default `step`) of dir_b, bit for bit (all but
  the step counter itself when the steps differ)."""
  a = ckpt_lib.load_for_analysis(Path(dir_a) / "checkpoints", step)
  b = ckpt_lib.load_for_analysis(
    Path(dir_b) / "checkpoints", step if other_step is None else other_step
  )
  if other_step is not None and other_step != step:
    a, b = ({k: v for k, v in t.items() if k != "step"} for t in (a, b))
  a, b = key_bits(a), key_bits(b)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  paths_a = jax.tree_util.tree_flatten_with_path(a)[0]
  for (path, x), y in zip(paths_a, jax.tree.leaves(b)):
    name = jax.tree_util.keystr(path)
    assert x.dtype == y.dtype and x.shape == y.shape, name
    assert x.tobytes() == y.tobytes(), f"{name} differs: max |a-b| = {np.max(np.abs(x - y))}"


def assert_one_line_per_step(records, total=STEPS, every=1):
  steps = [r["step"] for r in records]
  assert steps == list(range(every, total + 1, every)), f"steps logged: {steps}"


def assert_same_metrics(records, reference):
  """Same steps, and every deterministic value bit-identical (JSON floats of float32 sums)."""
  assert [r["step"] for r in records] == [r["step"] for r in reference]
  for r, ref in zip(records, reference):
    for key in DETERMINISTIC:
      assert (key in r) == (key in ref), (r["step"], key)
      if key in r:
        assert r[key] == ref[key], f"step {r['step']} {key}: {r[key]!r} != {ref[key]!r}"


def all_finite(tree) -> bool:
  return all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree))


# --------------------------------------------------------------------------------------------------
# The uninterrupted reference run (in-process, 8 devices)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  if jax.device_count() != 8:
    pytest.skip(
      f"needs the 8 fake CPU devices of conftest.py, have {jax.device_count()} (XLA_FLAGS="
      f"{os.environ.get('XLA_FLAGS')!r})"
    )
  workdir = tmp_path_factory.mktemp("reference")
  final = train.train_and_evaluate(tiny_config(), str(workdir))
  return workdir, final


# --------------------------------------------------------------------------------------------------
# 1. End to end, in-process


def test_end_to_end_workdir(reference):
  workdir, final = reference
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"]["depth"] == DEPTH and config["model"]["width"] == 4
  assert config["num_train_steps"] == STEPS and config["dataset"]["name"] == "digits"

  status = read_status(workdir)
  assert status["status"] == "done" and status["step"] == STEPS
  assert math.isfinite(status["test_error"]) and 0 <= status["test_error"] <= 1
  assert final["test_error"] == status["test_error"]
  # wall time of the steps after the first (compiling) one, evaluations included
  assert status["timed_steps"] == STEPS - 1 and status["timed_seconds"] > 0

  records = read_metrics(workdir)
  assert_one_line_per_step(records)
  num_blocks = (DEPTH - 2) // 2  # plain 6n+2 net: 3 stages of n two-conv blocks
  for r in records:
    for key in ("epoch", "lr", "train_loss", "train_error", "grad_norm"):
      assert isinstance(r[key], float) and math.isfinite(r[key]), (r["step"], key, r.get(key))
    # A rate is recorded where one was measured: not for the first (compiling) step alone.
    assert ("images_per_sec" in r) == (r["step"] > 1), r
    assert r.get("images_per_sec", 1.0) > 0
    assert len(r["block_grad_norms"]) == num_blocks
    assert all(math.isfinite(g) and g > 0 for g in r["block_grad_norms"])
    assert r["epoch"] == pytest.approx(r["step"] / (1500 // 32))
    # lr of the update that ended at `step` (optax count = step - 1): /10 at each boundary passed
    expected_lr = 0.1 * 0.1 ** sum(r["step"] - 1 >= b for b in BOUNDARIES)
    assert r["lr"] == pytest.approx(expected_lr, rel=1e-6), r["step"]
  evals = [r["step"] for r in records if "test_error" in r]
  assert evals == list(range(10, STEPS + 1, 10))

  losses = [r["train_loss"] for r in records]
  assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3, losses

  assert checkpoint_steps(workdir) == [STEPS]  # keep_checkpoints=1: only the last one is left
  saved = ckpt_lib.load_for_analysis(workdir / "checkpoints")
  assert int(saved["step"]) == STEPS and all_finite(saved["params"])


# --------------------------------------------------------------------------------------------------
# 1b. Determinism: the same config and seed give the same numbers, bit for bit (float32, CPU)


@pytest.mark.slow
def test_same_config_and_seed_give_bit_identical_metrics(reference, tmp_path):
  ref_dir, _ = reference
  steps = 8
  config = tiny_config(num_train_steps=steps, eval_every_steps=100, **REFERENCE_SCHEDULE)
  assert config.model.dtype == "float32"
  train.train_and_evaluate(config, str(tmp_path))
  records = read_metrics(tmp_path)
  assert_one_line_per_step(records, total=steps)
  training = [
    k for k in DETERMINISTIC if not k.startswith("test_")
  ]  # the reference evaluates at 10
  for r, ref in zip(records, read_metrics(ref_dir)[:steps]):
    assert {k: r[k] for k in training} == {k: ref[k] for k in training}, r["step"]


# --------------------------------------------------------------------------------------------------
# 2. Resume after SIGKILL is exact


@pytest.mark.slow
def test_resume_after_sigkill_is_exact(reference, tmp_path):
  ref_dir, _ = reference
  workdir = tmp_path / "run"
  proc = Proc(cli(workdir), tmp_path / "killed")
  # Kill between two checkpoints, with metrics lines after the last one to be dropped on resume.
  wait_until(lambda: any(s >= 10 for s in checkpoint_steps(workdir)), proc, "checkpoint >= 10")
  wait_until(
    lambda: max((r["step"] for r in read_metrics(workdir)), default=0) >= 12,
    proc,
    "a metrics line for step >= 12",
  )
  proc.popen.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
  killed_ckpt = max(checkpoint_steps(workdir))
  assert killed_ckpt < STEPS
  assert read_status(workdir)["status"] == "running"
  assert max(r["step"] for r in read_metrics(workdir)) > killed_ckpt, (
    "the kill landed on a checkpoint step: nothing to truncate, the test proves less"
  )

  resumed = run_cli(cli(workdir), tmp_path / "resumed")
  assert resumed.popen.returncode == 0, resumed.tail()
  assert read_status(workdir)["status"] == "done"
  records = read_metrics(workdir)
  assert_one_line_per_step(records)  # the killed run's lines after its checkpoint were dropped
  assert_same_metrics(records, read_metrics(ref_dir))
  assert_same_checkpoint(workdir, ref_dir, STEPS)


# --------------------------------------------------------------------------------------------------
# 2b. Killed while writing a checkpoint: the partial one is ignored, the previous one is used

# scripts/train.py run with orbax's commit of one step replaced by a SIGKILL: every file of that
# step is written into `<step>.orbax-checkpoint-tmp`, but neither its commit_success.txt nor the
# rename to `<step>`.
KILL_BEFORE_COMMIT = """
import os, runpy, signal, sys
from orbax.checkpoint._src.path import atomicity
kill_step, sys.argv = sys.argv[1], sys.argv[2:]
finalize = atomicity.AtomicRenameTemporaryPath.finalize
async def killed_before_commit(self):
  if self.get().name.split(".")[0] == kill_step:
    os.kill(os.getpid(), signal.SIGKILL)
  return await finalize(self)
atomicity.AtomicRenameTemporaryPath.finalize = killed_before_commit
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_killed_while_writing_a_checkpoint_resumes_from_the_previous(reference, tmp_path):
  ref_dir, _ = reference
  workdir = tmp_path / "run"
  args = cli(workdir)
  args[1:1] = ["-c", KILL_BEFORE_COMMIT, "10"]  # python -c CODE 10 scripts/train.py --flags...
  killed = run_cli(args, tmp_path / "killed")
  assert killed.popen.returncode == -signal.SIGKILL, killed.tail()
  partial = workdir / "checkpoints" / f"10{ckpt_lib.TMP_SUFFIX}"
  assert any(p.is_file() for p in partial.rglob("d/*")), "no array file was written before the kill"
  assert not (partial / "commit_success.txt").exists()
  assert checkpoint_steps(workdir) == [5]
  assert read_status(workdir)["status"] == "running"

  resumed = run_cli(cli(workdir), tmp_path / "resumed")
  assert resumed.popen.returncode == 0, resumed.tail()
  progress = [line for line in resumed.out.read_text().splitlines() if line.startswith("step ")]
  assert progress[0].startswith("step 6/"), resumed.tail()  # from step 5's checkpoint
  assert not partial.exists()  # the leftover is deleted when the checkpoints are opened for writing
  assert read_status(workdir)["status"] == "done"
  records = read_metrics(workdir)
  assert_one_line_per_step(records)
  assert_same_metrics(records, read_metrics(ref_dir))
  assert_same_checkpoint(workdir, ref_dir, STEPS)


# --------------------------------------------------------------------------------------------------
# 3. SIGTERM: checkpoint, status 'preempted', exit 4; the relaunch finishes


@pytest.mark.slow
def test_sigterm_preempts_and_relaunch_finishes(reference, tmp_path):
  ref_dir, _ = reference
  workdir = tmp_path / "run"
  every = 15  # periodic checkpoints at 15, 30: a stop after 15, before 30 comes from the signal
  proc = Proc(cli(workdir, checkpoint_every_steps=every), tmp_path / "preempted")
  # Past the first periodic checkpoint's step. Not "once checkpoints/15 exists": the first save is
  # written in the background and can take seconds, by which time the loop may be near step 30.
  wait_until(
    lambda: max((r["step"] for r in read_metrics(workdir)), default=0) > every,
    proc,
    f"a metrics line for step > {every}",
  )
  proc.popen.send_signal(signal.SIGTERM)
  assert proc.wait() == 4, proc.tail()
  assert "Traceback" not in proc.stderr(), proc.tail()
  status = read_status(workdir)
  assert status["status"] == "preempted", status
  stopped = status["step"]
  assert every <= stopped < 2 * every, f"stopped at {stopped}: not at the first step after SIGTERM"
  assert checkpoint_steps(workdir) == [stopped]  # saved where it stopped (keep_checkpoints=1)
  assert int(ckpt_lib.load_for_analysis(workdir / "checkpoints")["step"]) == stopped

  relaunched = run_cli(cli(workdir, checkpoint_every_steps=every), tmp_path / "relaunched")
  assert relaunched.popen.returncode == 0, relaunched.tail()
  assert read_status(workdir)["status"] == "done"
  records = read_metrics(workdir)
  assert_one_line_per_step(records)
  assert_same_metrics(records, read_metrics(ref_dir))  # a log line every step: all comparable
  assert_same_checkpoint(workdir, ref_dir, STEPS)


# --------------------------------------------------------------------------------------------------
# 4. Divergence


@pytest.mark.slow
def test_divergence_stops_with_status_and_a_finite_checkpoint(tmp_path):
  with pytest.raises(train.TrainingDiverged):
    train.train_and_evaluate(tiny_config(**DIVERGENT), str(tmp_path))
  status = read_status(tmp_path)
  assert status["status"] == "diverged", status
  assert isinstance(status["step"], int) and 1 <= status["step"] < 10
  records = read_metrics(tmp_path)
  assert all(r["step"] < status["step"] for r in records)  # the NaN step is not logged as a record
  kept = checkpoint_steps(tmp_path)
  assert kept and max(kept) < status["step"]
  assert status.get("last_checkpoint") == max(kept)
  saved = ckpt_lib.load_for_analysis(tmp_path / "checkpoints")
  # Parameters only: the divergence check looks at the loss and the parameter norm, and at lr 1e4
  # the BN running variances of this step-4 checkpoint already hold two infinities (reported, not
  # tested).
  assert all_finite(saved["params"])


@pytest.fixture(scope="module")
def skip_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("skip")
  config = tiny_config(
    **{**DIVERGENT, "on_nonfinite": "skip", "checkpoint_every_steps": 1, "keep_checkpoints": 10}
  )
  final = train.train_and_evaluate(config, str(workdir))
  return workdir, final


def test_skip_nonfinite_finishes_and_counts_skipped_steps(skip_run):
  workdir, _ = skip_run
  assert read_status(workdir)["status"] == "done"
  records = read_metrics(workdir)
  assert_one_line_per_step(records, total=10)
  skipped = [r["skipped_steps"] for r in records]
  assert skipped[0] == 0 and sum(skipped) > 0, skipped
  # From the first skipped step on every step is skipped (same state, same non-finite loss): the
  # state saved after the last good step must come out of the skipped steps bit for bit.
  last_good = skipped.index(1)
  assert skipped[last_good:] == [1] * (10 - last_good), skipped
  assert checkpoint_steps(workdir) == list(range(1, 11))
  assert_same_checkpoint(workdir, workdir, 10, other_step=last_good)
  saved = ckpt_lib.load_for_analysis(workdir / "checkpoints")
  assert int(saved["step"]) == 10 and all_finite(saved["params"])


def test_skipped_steps_do_not_log_a_zero_training_loss(skip_run):
  workdir, _ = skip_run
  all_skipped = [r for r in read_metrics(workdir) if r["skipped_steps"] == 1]  # log window = 1 step
  assert all_skipped
  for r in all_skipped:
    assert "train_loss" not in r or math.isnan(r["train_loss"]), r


@pytest.mark.slow
def test_divergence_through_the_command_line_exits_3_within_the_log_interval(skip_run, tmp_path):
  skip_dir, _ = skip_run  # the same run with on_nonfinite='skip', logged every step
  first_bad = min(r["step"] for r in read_metrics(skip_dir) if r["skipped_steps"])
  every = 4  # checked at every log, eval and checkpoint step: here 2, 4, 6, 8
  proc = run_cli(cli(tmp_path, **{**DIVERGENT, "log_every_steps": every}), tmp_path / "cli")
  assert proc.popen.returncode == 3, proc.tail()
  line = assert_one_error_line(proc, "non-finite loss")
  assert proc.stderr().count(line.removeprefix("error: ")) == 1, proc.tail()  # not absl's too
  status = read_status(tmp_path)
  assert status["status"] == "diverged", status
  assert first_bad <= status["step"] < first_bad + every, (first_bad, status)
  kept = checkpoint_steps(tmp_path)
  assert kept and status["last_checkpoint"] == max(kept) < first_bad
  assert all_finite(ckpt_lib.load_for_analysis(tmp_path / "checkpoints")["params"])


@pytest.mark.slow
def test_divergence_before_the_first_checkpoint_says_none_was_written(tmp_path):
  args = cli(tmp_path / "run", **{**DIVERGENT, "checkpoint_every_steps": 100})
  proc = run_cli(args, tmp_path / "cli")
  assert proc.popen.returncode == 3, proc.tail()
  line = assert_one_error_line(proc, "no checkpoint was written yet (the first was due at step 10)")
  assert "step None" not in line and proc.stderr().count("non-finite loss") == 1, proc.tail()
  assert read_status(tmp_path / "run")["last_checkpoint"] is None
  assert checkpoint_steps(tmp_path / "run") == []


# scripts/train.py with the metrics writer failing like a full disk from step 6 on.
DISK_FULL_AT_6 = """
import errno, runpy, sys
from cnn_depth import workdir as workdir_lib
write = workdir_lib.MetricsWriter.write
def full(self, step, **scalars):
  if step >= 6:
    raise OSError(errno.ENOSPC, "No space left on device", "metrics.jsonl")
  return write(self, step, **scalars)
workdir_lib.MetricsWriter.write = full
sys.argv = sys.argv[1:]  # python -c CODE scripts/train.py --flags...
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_a_disk_that_fills_up_mid_run_is_one_line_and_exit_2(tmp_path):
  args = cli(tmp_path / "run", checkpoint_every_steps=5)
  args[1:1] = ["-c", DISK_FULL_AT_6]
  proc = run_cli(args, tmp_path / "full")
  assert proc.popen.returncode == 2, proc.tail()
  line = assert_one_error_line(proc, "No space left on device")
  assert "relaunch" in line and "resumes from its last finished checkpoint" in line
  assert read_status(tmp_path / "run")["status"] == "failed"
  assert checkpoint_steps(tmp_path / "run") == [5]  # what was saved before is kept


# --------------------------------------------------------------------------------------------------
# 5. 1 device vs 8


@pytest.mark.slow
def test_one_device_matches_eight(reference, tmp_path):
  ref_dir, _ = reference
  steps = 10
  one_dev = cli(tmp_path / "one", num_train_steps=steps, **REFERENCE_SCHEDULE_FLAGS)
  proc = run_cli(one_dev, tmp_path / "one", devices=1)
  assert proc.popen.returncode == 0, proc.tail()
  one = [r["train_loss"] for r in read_metrics(tmp_path / "one")]
  eight = [r["train_loss"] for r in read_metrics(ref_dir)][:steps]
  assert len(one) == steps
  assert one[0] == pytest.approx(eight[0], rel=1e-5)
  np.testing.assert_allclose(one, eight, rtol=1e-3)


# --------------------------------------------------------------------------------------------------
# 6. Two processes x 4 devices vs one process x 8 devices


@pytest.mark.slow
def test_two_processes_match_one(reference, tmp_path):
  ref_dir, _ = reference
  steps = 5
  workdir = tmp_path / "run"  # one workdir, as on a shared filesystem: only process 0 writes logs
  port = free_port()
  procs = [
    Proc(
      cli(
        workdir,
        f"--coordinator_address=127.0.0.1:{port}",
        "--num_processes=2",
        f"--process_id={i}",
        num_train_steps=steps,
        **REFERENCE_SCHEDULE_FLAGS,
      ),
      tmp_path / f"process{i}",
      devices=4,
    )
    for i in range(2)
  ]
  # If one process fails the other waits for it in a collective: stop both at the first failure.
  deadline = time.monotonic() + SUBPROCESS_TIMEOUT
  try:
    while any(p.popen.poll() is None for p in procs):
      failed = [p for p in procs if p.popen.poll() not in (None, 0)]
      assert not failed and time.monotonic() < deadline, "\n".join(p.tail() for p in procs)
      time.sleep(0.05)
  finally:
    for p in procs:
      p.kill()
  for p in procs:
    assert p.popen.returncode == 0, p.tail()
  assert read_status(workdir)["status"] == "done"
  records = read_metrics(workdir)
  assert_one_line_per_step(records, total=steps)  # no line written twice
  assert checkpoint_steps(workdir) == [steps]
  two = [r["train_loss"] for r in records]
  one = [r["train_loss"] for r in read_metrics(ref_dir)][:steps]
  assert two[0] == pytest.approx(one[0], rel=1e-5)
  np.testing.assert_allclose(two, one, rtol=1e-3)


# --------------------------------------------------------------------------------------------------
# 7. Bad inputs through the command line: exit 2, one line "error: ...", the workdir left as it was


def files_of(path: Path) -> dict | None:
  """Every file under `path` with its bytes (None if `path` does not exist; a file maps to
  itself)."""
  if not path.exists():
    return None
  if path.is_file():
    return {path.name: path.read_bytes()}
  return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def reference_copy(reference_dir, workdir, **saved_config):
  """A copy of the finished reference run; `saved_config` ({'dataset.name': ...}) edits its
  config.json as if it had been another run (e.g. a CIFAR run whose data has since gone bad)."""
  shutil.copytree(reference_dir, workdir)
  if saved_config:
    config = json.loads((workdir / "config.json").read_text())
    for dotted, value in saved_config.items():
      *parents, name = dotted.split(".")
      node = config
      for p in parents:
        node = node[p]
      node[name] = value
    (workdir / "config.json").write_text(json.dumps(config, sort_keys=True, indent=2) + "\n")


# case: (--config overrides, text the error line must hold, the workdir it meets)
#   'none': no workdir (it must not be created); 'run': a copy of the finished 8-device reference
#   run; 'cifar run': that copy relabelled as a CIFAR-10 run; 'corrupt run': that copy with its
#   checkpoint's array files cut in half, relaunched for more steps (a finished run would not
#   restore it); 'file': --workdir is a file. Data dirs under {tmp}: empty/, cifar100/ (CIFAR-100
#   pickles), truncated/ (CIFAR-10 with half of data_batch_3).
BAD_INPUTS = {
  "unknown config key": ({"dept": 56}, "--config.dept names no field of the config", "run"),
  "unknown config key, no workdir": ({"dept": 56}, "--config.dept", "none"),
  "depth not 6n+2": ({"model.depth": 21}, "6n+2", "run"),
  "depth not 6n+2, no workdir": ({"model.depth": 21}, "6n+2", "none"),
  "depth not 9n+2": (
    {"model.family": "cifar_preact", "model.block": "bottleneck", "model.depth": 21},
    "9n+2",
    "run",
  ),
  "bottleneck blocks at a basic-block depth": ({"model.block": "bottleneck"}, "9n+2", "none"),
  "a field the family does not read": (
    {"model.family": "imagenet_resnet", "model.depth": 18, "model.block": "bottleneck"},
    "block='bottleneck' does not apply to family",
    "none",
  ),
  "unknown model family": ({"model.family": "vgg99"}, "unknown model family 'vgg99'", "run"),
  "unknown dataset": ({"dataset.name": "mnist"}, "unknown dataset 'mnist'", "run"),
  "unknown optimiser": ({"optimizer": "adam"}, "optimizer='adam' cannot be used", "run"),
  "unknown BN implementation": (
    {"model.bn_impl": "cudnn"},
    "model.bn_impl='cudnn' cannot be used: it must be 'fused' or 'flax'",
    "none",
  ),
  "survival above 1": (
    {"model.family": "cifar_resnet", "model.survival_last": 1.5},
    "[0, 1]",
    "run",
  ),
  "survival below 0": ({"model.survival_last": -0.5}, "[0, 1]", "none"),
  "batch not divisible by devices": ({"batch_size": 36}, "not divisible by the 8 devices", "run"),
  "data dir missing": (
    {"dataset.name": "cifar10", "dataset.data_dir": "{tmp}/nonexistent"},
    "does not exist",
    "cifar run",
  ),
  "data dir empty": (
    {"dataset.name": "cifar10", "dataset.data_dir": "{tmp}/empty"},
    "the folder is empty",
    "cifar run",
  ),
  "data dir holds CIFAR-100": (
    {"dataset.name": "cifar10", "dataset.data_dir": "{tmp}/cifar100"},
    "holds CIFAR-100 data, but 'cifar10' was asked for",
    "cifar run",
  ),
  "truncated data file": (
    {"dataset.name": "cifar10", "dataset.data_dir": "{tmp}/truncated"},
    "data_batch_3 is corrupt or truncated",
    "cifar run",
  ),
  "corrupt checkpoint": (
    {"num_train_steps": 50},
    "could not restore checkpoint step 40",
    "corrupt run",
  ),
  "resume with another depth": ({"model.depth": 14}, "model.depth=8", "run"),
  "resume with another width": ({"model.width": 8}, "model.width=4", "run"),
  "resume with another dataset": (  # the data is checked first: here it is fine
    {"dataset.name": "cifar10", "dataset.data_dir": "{tmp}/cifar10", "batch_size": 16},
    "dataset.name='digits'",
    "run",
  ),
  "workdir is a file": ({}, "is a file, not a directory", "file"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_sentence(case, request, tmp_path):
  overrides, expect, kind = BAD_INPUTS[case]
  overrides = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in overrides.items()}
  workdir = tmp_path / "run"
  if kind in ("run", "cifar run", "corrupt run"):
    saved = {"dataset.name": "cifar10"} if kind == "cifar run" else {}
    reference_copy(request.getfixturevalue("reference")[0], workdir, **saved)
  if kind == "corrupt run":  # the checkpoint's array files cut in half (a full disk, a bad copy)
    array_files = list((workdir / "checkpoints" / str(STEPS)).rglob("d/*"))
    assert array_files
    for f in array_files:
      os.truncate(f, f.stat().st_size // 2)
  if kind == "file":
    workdir.write_text("not a directory\n")
  (tmp_path / "empty").mkdir()
  write_cifar_pickles(tmp_path / "cifar100", "cifar100")
  write_cifar_pickles(tmp_path / "cifar10")
  folder, _ = write_cifar_pickles(tmp_path / "truncated")
  raw = (folder / "data_batch_3").read_bytes()
  (folder / "data_batch_3").write_bytes(raw[: len(raw) // 2])
  before = files_of(workdir)

  proc = run_cli(cli(workdir, **overrides), tmp_path / "cli")
  assert proc.popen.returncode == 2, proc.tail()
  assert_one_error_line(proc, expect)
  assert files_of(workdir) == before  # nothing created, changed or deleted


# --------------------------------------------------------------------------------------------------
# Regressions for bugs found while writing the above


def test_relaunch_after_a_kill_before_the_first_checkpoint_logs_each_step_once(reference, tmp_path):
  ref_dir, _ = reference
  # What a run killed at step 3, before its first checkpoint (step 5), leaves behind.
  shutil.copy(ref_dir / "config.json", tmp_path / "config.json")
  lines = (ref_dir / "metrics.jsonl").read_text().splitlines(keepends=True)[:3]
  (tmp_path / "metrics.jsonl").write_text("".join(lines))
  train.train_and_evaluate(tiny_config(num_train_steps=5), str(tmp_path))
  assert_one_line_per_step(read_metrics(tmp_path), total=5)


def test_relaunching_a_finished_run_keeps_its_final_metrics(reference, tmp_path, capsys):
  ref_dir, ref_final = reference
  workdir = tmp_path / "run"
  shutil.copytree(ref_dir, workdir)
  capsys.readouterr()
  final = train.train_and_evaluate(tiny_config(), str(workdir))
  assert capsys.readouterr().out == f"{workdir} is already done at step {STEPS}; nothing to train\n"
  status = read_status(workdir)
  assert status["status"] == "done"
  assert status.get("test_error") == read_status(ref_dir)["test_error"]
  assert final.get("test_error") == ref_final["test_error"]
