"""scripts/sweep.py end to end: the commands and sbatch script it prints, a real two-run sweep that
a second call skips, the status table, bad input refused before any run starts (each run's config
and model, --parallel, --status of a missing root) (the library: tests/test_sweep.py,
tests/test_launchers.py; SLURM itself: tests/scripts/test_sweep_slurm.py)."""

import json
import os
import shlex
import sys
from concurrent import futures

import pytest
from helpers.runner import ROOT, run_script

SWEEP = os.path.join(ROOT, "scripts", "sweep.py")
TINY = (
  "--config.num_train_steps=4,--config.log_every_steps=2,--config.eval_every_steps=4,"
  "--config.checkpoint_every_steps=4,--config.model.width=4,--config.batch_size=32"
)


def sweep(*args, timeout=120, env=None):
  # One CPU device for the training subprocesses (conftest's 8 fake devices only slow them down).
  return run_script(SWEEP, *args, timeout=timeout, env={**(env or {}), "JAX_PLATFORMS": "cpu"})


def test_dry_run_prints_the_grid(tmp_path):
  root = str(tmp_path / "grid")
  out = sweep(
    "--config=configs/cifar_resnet.py",
    f"--workdir={root}",
    "--depths=20,56",
    "--seeds=0,1",
    "--residual=true,false",
    "--extra=--config.num_train_steps=10,--config.lr_boundaries=(0.4,0.8)",
    "--train_flags=--compilation_cache=/tmp/cache",
    "--dry_run",
  )
  assert out.returncode == 0, out.stderr
  lines = out.stdout.strip().splitlines()
  expected = [
    (seed, res, depth) for seed in (0, 1) for res in ("true", "false") for depth in (20, 56)
  ]
  assert len(lines) == len(expected)
  for line, (seed, res, depth) in zip(lines, expected):
    cmd = shlex.split(line)
    assert cmd[0] == sys.executable and cmd[1] == os.path.join("scripts", "train.py")
    name = f"{'resnet' if res == 'true' else 'plain'}_d{depth}_s{seed}"
    assert cmd[2:] == [
      f"--config=configs/cifar_resnet.py:depth={depth},residual={res},seed={seed}",
      f"--workdir={os.path.join(root, name)}",
      "--config.num_train_steps=10",
      "--config.lr_boundaries=(0.4,0.8)",
      "--compilation_cache=/tmp/cache",
    ]
  assert not os.path.exists(root)  # a dry run creates nothing


def test_dry_run_without_residual_argument(tmp_path):
  out = sweep(
    "--config=configs/stochastic_depth.py:survival_last=1.0",
    f"--workdir={tmp_path}",
    "--depths=110",
    "--seeds=2",
    "--dry_run",
  )
  assert out.returncode == 0, out.stderr
  (cmd,) = [shlex.split(line) for line in out.stdout.strip().splitlines()]
  assert cmd[2:] == [
    "--config=configs/stochastic_depth.py:survival_last=1.0,depth=110,seed=2",
    f"--workdir={tmp_path / 'stochastic_depth_d110_s2'}",
  ]
  out = sweep(
    "--config=configs/stochastic_depth.py", f"--workdir={tmp_path}", "--residual=true", "--dry_run"
  )
  assert out.returncode == 2 and "residual" in out.stderr


def test_bad_grid_fails_before_running(tmp_path):
  out = sweep("--config=configs/cifar_resnet.py:dept=3", f"--workdir={tmp_path}", "--dry_run")
  assert out.returncode == 2 and "'dept'" in out.stderr and not out.stdout
  out = sweep("--config=configs/cifar_resnet.py", f"--workdir={tmp_path}", "--depths=20,x")
  assert out.returncode == 2 and "--depths" in out.stderr


@pytest.mark.slow
def test_mini_sweep_runs_then_skips(tmp_path):
  root = str(tmp_path / "sweep")
  args = [
    "--config=configs/quickstart.py",
    f"--workdir={root}",
    "--depths=8",
    "--seeds=0",
    "--residual=true,false",
    f"--extra={TINY}",
    f"--train_flags=--compilation_cache={os.path.join(ROOT, '.jax_cache')}",
  ]
  out = sweep(*args)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  for name in ("resnet_d8_s0", "plain_d8_s0"):
    with open(os.path.join(root, name, "status.json")) as f:
      status = json.load(f)
    assert status["status"] == "done" and status["step"] == 4
    with open(os.path.join(root, name, "config.json")) as f:
      config = json.load(f)
    assert config["model"]["family"] == (
      "cifar_resnet" if name.startswith("resnet") else "cifar_plain"
    )
    assert config["model"]["width"] == 4 and config["batch_size"] == 32
  table = out.stdout[out.stdout.index("\nrun ") :]
  assert "resnet_d8_s0" in table and "plain_d8_s0" in table and "FAILED" not in table

  again = sweep(*args, timeout=30)
  assert again.returncode == 0, again.stdout + again.stderr
  assert "train.py" not in again.stdout  # nothing started
  assert again.stdout.count("skipped") >= 2
  dry = sweep(*args, "--dry_run", timeout=30)
  assert dry.returncode == 0 and dry.stdout == "" and dry.stderr.count("done") == 2


# A run the sweep cannot check for (its config and model are fine): data that are not there, so
# each scripts/train.py exits 2 at once.
NO_DATA = "--extra=--config.dataset.name=cifar10,--config.dataset.data_dir=/nonexistent/cifar"


@pytest.mark.slow
def test_failed_run_is_reported_and_the_sweep_goes_on(tmp_path):
  out = sweep(
    "--config=configs/quickstart.py",
    f"--workdir={tmp_path}",
    "--depths=8,14",
    "--residual=true",
    f"--extra={TINY}",
    NO_DATA,
  )
  assert out.returncode == 1
  rows = out.stdout[out.stdout.index("\nrun ") :]
  assert rows.count("FAILED") == 2 and "resnet_d8_s0" in rows and "resnet_d14_s0" in rows


@pytest.mark.slow
def test_status_table_marks_the_failed_runs_and_exits_1(tmp_path):
  out = sweep(
    "--config=configs/quickstart.py", f"--workdir={tmp_path}", "--depths=8", "--residual=true",
    NO_DATA,
  )  # fmt: skip
  assert out.returncode == 1
  table = sweep("--status", f"--workdir={tmp_path}", timeout=30)
  assert table.returncode == 1, table.stdout + table.stderr
  header, row = table.stdout.strip().splitlines()[:2]
  columns = ["run", "status", "step", "train", "err", "test", "err", "exit", "job"]
  assert header.split()[:9] == columns
  assert row.split()[:6] == ["resnet_d8_s0", "failed", "-", "-", "-", "2"] and "FAILED" in row


def test_slurm_dry_run_prints_the_sbatch_script_of_one_job_array(tmp_path):
  root = tmp_path / "grid"
  out = sweep(
    "--config=configs/quickstart.py", f"--workdir={root}", "--depths=8,14", "--residual=true",
    "--launcher=slurm", "--partition=gpu", "--gpus_per_node=1", "--cpus_per_task=8",
    "--time_min=600", "--parallel=1", "--sbatch=--account=abc,--exclusive", "--dry_run",
  )  # fmt: skip
  assert out.returncode == 0, out.stderr
  lines = set(out.stdout.splitlines())
  for option in ("--array=0-1%1", "--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8",
                 "--time=600", "--account=abc", "--exclusive", "--signal=USR2@120"):  # fmt: skip
    assert f"#SBATCH {option}" in lines, (option, out.stdout)
  assert "-m submitit.core._submit" in out.stdout and out.stderr.count("scripts/train.py") == 2
  assert not root.exists()  # a dry run creates nothing


def test_bad_input_is_one_sentence_and_changes_nothing(tmp_path):
  """Each bad flag, --extra value or grid point: one `error:` line naming it, exit 2, and the root
  not created, before any run starts (a dry run included): every run's config and model are built
  and checked first."""
  root = tmp_path / "grid"
  cores = len(os.sched_getaffinity(0))
  cpu_host = {"CUDA_VISIBLE_DEVICES": ""}  # no GPU visible: --parallel counts cores
  no_slurm = {"PATH": os.path.dirname(sys.executable)}
  cases = [
    (["--launcher=pbs"], {}, "--launcher must be local or slurm"),
    (["--launcher=slurm"], no_slurm, "sbatch, srun, squeue, scontrol are not on PATH"),
    (["--parallel=3"], {"CUDA_VISIBLE_DEVICES": "0,1"}, "more than the 2 GPUs"),
    ([f"--parallel={cores + 1}"], cpu_host, f"--parallel={cores + 1} is more than the {cores} CPU"),
    (["--extra=--config.nope=1"], {}, "has no field 'nope'"),
    (["--sbatch=account=abc", "--launcher=slurm"], {}, "--sbatch items"),
    (["--depths=8,9", "--dry_run"], {}, "--depths=8,9: run resnet_d9_s0 cannot start: depth 9"),
    (["--depths=9", "--launcher=slurm", "--dry_run"], {}, "nearest valid depths: 8 and 14"),
    (["--extra=--config.model.width=abc", "--dry_run"], {}, "--config.model.width=abc is not a"),
    (["--extra=--config.learning_rate=-0.1"], {}, "learning_rate=-0.1 cannot be used"),
    (["--extra=--config.dataset.name=mnist", "--dry_run"], {}, "unknown dataset 'mnist'"),
  ]
  with futures.ThreadPoolExecutor(3) as pool:
    procs = list(
      pool.map(
        lambda c: sweep(
          "--config=configs/quickstart.py", f"--workdir={root}", "--depths=8", *c[0], env=c[1]
        ),
        cases,
      )
    )
  for (args, _, message), out in zip(cases, procs):
    assert out.returncode == 2, (args, out.stdout + out.stderr)
    assert out.stderr.startswith("error: ") and message in out.stderr, (args, out.stderr)
    assert len(out.stderr.strip().splitlines()) == 1 and not out.stdout, (args, out.stdout)
  assert not root.exists()
  # A dry run prints a grid meant for another host (the README's 8-GPU example) whatever the cores.
  dry = sweep(
    "--config=configs/quickstart.py", f"--workdir={root}", "--depths=8", "--residual=true",
    f"--parallel={cores + 1}", "--dry_run", env=cpu_host,
  )  # fmt: skip
  assert dry.returncode == 0 and dry.stdout.count("scripts/train.py") == 1, dry.stderr
  assert not root.exists()


def test_status_of_a_folder_that_is_no_sweep_root_is_refused(tmp_path):
  """--status on a missing path or a file: one line naming --workdir (it used to print `0 runs: 0
  done, 0 failed` and exit 0); the path stays as it was."""
  (tmp_path / "a_file").write_text("x")
  cases = [(tmp_path / "does" / "not" / "exist", "does not exist"), (tmp_path / "a_file", "a file")]
  with futures.ThreadPoolExecutor(2) as pool:
    procs = list(pool.map(lambda c: sweep("--status", f"--workdir={c[0]}", timeout=60), cases))
  for (path, message), out in zip(cases, procs):
    assert out.returncode == 2 and not out.stdout, out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: --workdir={path} ") and message in line, line
  assert os.listdir(tmp_path) == ["a_file"] and (tmp_path / "a_file").read_text() == "x"
