"""scripts/sweep.py --launcher=slurm and scripts/train.py --distributed=auto on a real single-node
SLURM cluster on 127.0.0.1 (tests/helpers/slurm_cluster.py: munged, slurmctld, slurmd from Debian's
packages, installed here with apt-get when missing; started for this module, stopped after). Kept
apart from tests/scripts/test_sweep.py for that cluster and for its minutes of runs.

* a 3-run grid through one submitit job array ends 'done' with the same metrics as the same runs
  launched here;
* a run preempted mid-way (USR2 as SLURM sends before the time limit, or `scontrol requeue`)
  checkpoints, is requeued, resumes and ends with the metrics of an uninterrupted run;
* `srun -n 2 scripts/train.py --distributed=auto` (2 processes x 1 CPU device, gloo), and a sweep
  run of 2 tasks (--tasks_per_node=2), match one process with 2 devices;
* a partition (or GPU count) that sbatch refuses is one `error:` line naming the flag with sbatch's
  reason, exit 2, and the submission files are removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from helpers import slurm_cluster
from helpers.runner import ROOT, TEST_XLA_FLAGS, run_script

SWEEP = os.path.join(ROOT, "scripts", "sweep.py")
CACHE = f"--compilation_cache={os.path.join(ROOT, '.jax_cache')}"
STEPS = "--extra=--config.num_train_steps=150,--config.eval_every_steps=150"
TINY = (
  "--config.log_every_steps=2,--config.eval_every_steps=1000,--config.checkpoint_every_steps=1000,"
  "--config.model.width=4,--config.batch_size=32"
)
# resnet_d8_s0, resnet_d8_s1, resnet_d8_s2 (with "--seeds=0,1,2")
GRID = ["--config=configs/quickstart.py", "--depths=8", "--residual=true", f"--extra={TINY}", STEPS,
        f"--train_flags={CACHE}"]  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
  reason = slurm_cluster.ensure_installed()
  if reason:
    pytest.skip(f"no SLURM cluster can run here: {reason}")
  with slurm_cluster.SlurmCluster(str(tmp_path_factory.mktemp("slurm"))) as c:
    yield c


def _env(cluster=None) -> dict:
  env = dict(cluster.env if cluster else os.environ)
  env["XLA_FLAGS"] = TEST_XLA_FLAGS  # one CPU device per training process, compiled as all others
  env["JAX_PLATFORMS"] = "cpu"
  return env


def sweep(*args, cluster=None, timeout=300) -> subprocess.CompletedProcess:
  return run_script(SWEEP, *args, env=_env(cluster), timeout=timeout)


def final_records(root) -> dict:
  """run -> its last metrics.jsonl record, without the timing fields."""
  out = {}
  for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "metrics.jsonl")
    if os.path.exists(path):
      with open(path) as f:
        last = json.loads(f.read().splitlines()[-1])
      out[name] = {k: v for k, v in last.items() if k != "images_per_sec"}
  return out


def all_records(root) -> dict:
  """run -> every metrics.jsonl record, without the timing fields: a requeued run's first line
  after its resume included (the running sums travel with the checkpoint)."""
  out = {}
  for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "metrics.jsonl")
    if os.path.exists(path):
      with open(path) as f:
        records = [json.loads(line) for line in f.read().splitlines()]
      out[name] = [{k: v for k, v in r.items() if k != "images_per_sec"} for r in records]
  return out


@pytest.fixture(scope="module")
def local_grid(tmp_path_factory):
  """The grid run here, one at a time: the reference for the SLURM runs (150 steps each, ~5 s).

  One at a time, so that each run's XLA has every core, as the SLURM jobs do here (task/none binds
  nothing): on CPU, Eigen's convolutions sum in an order that depends on the thread count."""
  root = str(tmp_path_factory.mktemp("local") / "grid")
  out = sweep(*GRID, "--seeds=0,1,2", f"--workdir={root}", "--parallel=1")
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  return all_records(root)


@pytest.mark.slow
def test_grid_on_slurm_matches_the_same_grid_run_here(cluster, local_grid, tmp_path):
  root = str(tmp_path / "grid")
  args = ["--seeds=0,1,2", f"--workdir={root}", "--launcher=slurm", "--cpus_per_task=1", "--wait"]
  out = sweep(*GRID, *args, "--time_min=10", cluster=cluster)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:] + cluster.logs()
  assert "submitted 3 runs" in out.stdout
  assert all_records(root) == local_grid
  table = sweep("--status", f"--workdir={root}")
  assert table.returncode == 0, table.stdout + table.stderr
  for seed in (0, 1, 2):
    (row,) = [line for line in table.stdout.splitlines() if line.startswith(f"resnet_d8_s{seed}")]
    assert row.split()[1:3] == ["done", "150/150"] and row.split()[6].endswith(f"_{seed}"), row
    assert row.split()[7:] == ["0", "-"], row  # no restarts, no recipe changes


@pytest.mark.slow
@pytest.mark.parametrize("how", ["usr2", "requeue"])
def test_a_preempted_run_is_requeued_and_ends_as_if_never_stopped(
  cluster, local_grid, tmp_path, how
):
  root = str(tmp_path / "grid")
  args = [*GRID, "--seeds=0", f"--workdir={root}", "--launcher=slurm", "--time_min=10", "--wait"]
  proc = subprocess.Popen(
    [sys.executable, SWEEP, *args], cwd=ROOT, env=_env(cluster), stdout=subprocess.PIPE,
    stderr=subprocess.PIPE, text=True,
  )  # fmt: skip
  metrics = os.path.join(root, "resnet_d8_s0", "metrics.jsonl")
  deadline = time.monotonic() + 120
  while not (os.path.exists(metrics) and len(open(metrics).readlines()) >= 2):
    assert proc.poll() is None and time.monotonic() < deadline, cluster.logs()
    time.sleep(0.1)
  # What SLURM does before a job's time limit (submitit asked for --signal=USR2@...), or a requeue.
  job = json.load(open(os.path.join(root, "sweep", "resnet_d8_s0.json")))["job_id"]
  cmd = ["scancel", "--signal=USR2", job] if how == "usr2" else ["scontrol", "requeue", job]
  assert cluster.run(*cmd).returncode == 0
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, out[-2000:] + err[-2000:]
  record = json.load(open(os.path.join(root, "sweep", "resnet_d8_s0.json")))
  assert record["restarts"] == 1 and record["exit_code"] == 0, record
  log = open(os.path.join(root, "sweep", "slurm", job, f"{job}_0_log.err")).read()
  assert "SIGTERM at step" in log and "checkpoint saved" in log, log[-2000:]
  assert all_records(root) == {"resnet_d8_s0": local_grid["resnet_d8_s0"]}  # every line
  table = sweep("--status", f"--workdir={root}")
  (row,) = [line for line in table.stdout.splitlines() if line.startswith("resnet_d8_s0")]
  assert row.split()[7] == "1", row  # the restarts column


TWO_DEVICES = [CACHE, "--config=configs/quickstart.py:depth=8", *TINY.split(","),
               "--config.num_train_steps=4", "--config.eval_every_steps=4"]  # fmt: skip
TRAIN = os.path.join(ROOT, "scripts", "train.py")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
  """The last metrics of the run in one process with 2 CPU devices."""
  workdir = tmp_path_factory.mktemp("one") / "run"
  one = run_script(TRAIN, f"--workdir={workdir}", *TWO_DEVICES, devices=2, env=_env(), timeout=300)
  assert one.returncode == 0, one.stderr[-3000:]
  return final_records(workdir.parent)["run"]


def assert_same_run(a: dict, b: dict) -> None:
  assert a.keys() == b.keys() and a["step"] == b["step"] == 4
  for key in a:  # the same global batch and BN statistics; sums may be reassociated (1e-5)
    assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


@pytest.mark.slow
def test_two_processes_under_srun_match_one_process_with_two_devices(
  cluster, one_process, tmp_path
):
  two = subprocess.run(
    ["srun", "-n", "2", "--cpus-per-task=1", sys.executable, TRAIN, "--distributed=auto",
     f"--workdir={tmp_path / 'two'}", *TWO_DEVICES],
    cwd=ROOT, env=_env(cluster), capture_output=True, text=True, timeout=300,
  )  # fmt: skip
  assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-3000:]
  assert_same_run(final_records(tmp_path)["two"], one_process)
  assert two.stdout.count("done: step") == 1  # only process 0 prints the final metrics


@pytest.mark.slow
def test_a_sweep_run_of_two_tasks_is_one_distributed_run(cluster, one_process, tmp_path):
  root = tmp_path / "grid"
  out = sweep(
    "--config=configs/quickstart.py", "--depths=8", "--residual=true", "--seeds=0",
    f"--extra={','.join(TWO_DEVICES[2:])}", f"--train_flags={CACHE}", f"--workdir={root}",
    "--launcher=slurm", "--tasks_per_node=2", "--time_min=10", "--wait", cluster=cluster,
  )  # fmt: skip
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  record = json.load(open(root / "sweep" / "resnet_d8_s0.json"))
  assert record["command"][-1] == "--distributed=auto" and record["exit_code"] == 0
  assert_same_run(final_records(root)["resnet_d8_s0"], one_process)


def _task_pid(workdir, rank: int) -> int | None:
  """The pid of the training process of SLURM task `rank` that writes to `workdir`."""
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
      environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    except OSError:
      continue
    if f"--workdir={workdir}".encode() in cmdline and f"SLURM_PROCID={rank}".encode() in environ:
      if any(arg.endswith(b"train.py") for arg in cmdline):
        return int(pid)
  return None


@pytest.mark.slow
def test_a_lost_process_under_distributed_auto_stops_the_other(cluster, tmp_path):
  """The peer watchdog works when JAX took the ranks from SLURM: task 1 SIGKILLed, task 0 exits 5
  within --peer_timeout naming it, and status.json says failed."""
  workdir = tmp_path / "run"
  flags = [CACHE, "--config=configs/quickstart.py:depth=8", *TINY.split(","),
           "--config.num_train_steps=100000", "--config.eval_every_steps=100000"]  # fmt: skip
  proc = subprocess.Popen(
    ["srun", "-n", "2", "--cpus-per-task=1", "--kill-on-bad-exit=0", sys.executable, TRAIN,
     "--distributed=auto", "--peer_timeout=5", f"--workdir={workdir}", *flags],
    cwd=ROOT, env=_env(cluster), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
  )  # fmt: skip
  try:
    metrics, deadline = workdir / "metrics.jsonl", time.monotonic() + 180
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
      assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
      time.sleep(0.2)
    os.kill(_task_pid(workdir, 1), 9)
    _, err = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert "process 1 of 2 stopped responding" in err, err[-3000:]
  status = json.load(open(workdir / "status.json"))
  assert status["status"] == "failed" and "process 1 of 2" in status["reason"], status


@pytest.mark.slow
def test_a_partition_sbatch_refuses_is_one_line_and_leaves_nothing(cluster, tmp_path):
  """--partition=nosuch: sbatch refuses the job array; the sweep says so in one line naming
  --partition with sbatch's own reason, exit 2, and removes the submission files (the root did not
  exist: it does not now; a root with an earlier sweep's SLURM folder keeps only what it had)."""
  root = tmp_path / "grid"
  args = [*GRID, "--seeds=0,1", f"--workdir={root}", "--launcher=slurm", "--partition=nosuch"]
  out = sweep(*args, cluster=cluster, timeout=120)
  assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
  (line,) = out.stderr.strip().splitlines()
  assert line.startswith("error: --partition=nosuch was refused by sbatch (") and "sinfo" in line
  assert "invalid partition" in line.lower(), line  # sbatch's own words
  assert not root.exists(), sorted(str(p) for p in root.rglob("*"))
  earlier = root / "sweep" / "slurm" / "123"
  earlier.mkdir(parents=True)
  (earlier / "123_0_log.out").write_text("an earlier job's log")
  one = [*GRID, "--seeds=0", f"--workdir={root}", "--launcher=slurm", "--partition=nosuch"]
  out = sweep(*one, cluster=cluster, timeout=120)  # one run: one job, not an array
  assert out.returncode == 2 and "--partition=nosuch" in out.stderr, out.stderr[-2000:]
  assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
    "sweep", "sweep/slurm", "sweep/slurm/123", "sweep/slurm/123/123_0_log.out"
  ]  # fmt: skip
  gpus = [*GRID, "--seeds=0", f"--workdir={tmp_path / 'g2'}", "--launcher=slurm"]
  gpus.append("--gpus_per_node=3")
  out = sweep(*gpus, cluster=cluster, timeout=120)  # this cluster's node has no GPUs (gres)
  assert out.returncode == 2 and not (tmp_path / "g2").exists(), out.stderr[-2000:]
  assert out.stderr.startswith("error: --gpus_per_node=3 was refused by sbatch ("), out.stderr
