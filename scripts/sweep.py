r"""Run a depth x seed (x plain/residual) grid of scripts/train.py runs: here, N at a time, or on
SLURM as one job array; and show every run of a grid in one table.

  # here, 4 runs at once (one GPU each on a GPU host; a share of the cores each on a CPU host)
  python scripts/sweep.py --config=configs/cifar_resnet.py --workdir=runs/fig6 \
      --depths=20,32,44,56 --seeds=0,1 --parallel=4 --extra=--config.dataset.data_dir=/data/cifar
  # SLURM: one array job, one GPU per run; --dry_run prints the sbatch script instead
  python scripts/sweep.py --config=configs/cifar_resnet.py --workdir=runs/fig6 --launcher=slurm \
      --partition=gpu --gpus_per_node=1 --cpus_per_task=8 --time_min=600 --sbatch=--account=abc
  # the grid, while it runs or after (exit status 1 if a run failed)
  python scripts/sweep.py --status --workdir=runs/fig6

Each grid point is one command, `<python> scripts/train.py --config=<config>:depth=D[,residual=R],
seed=S --workdir=<root>/<name>_dD_sS <--extra ...> <--train_flags ...>`. `<name>` is resnet/plain
for configs that take a `residual` argument (each --residual value is a run), else the config
file's name. Order: seed, then residual, then depth, so an interrupted sweep covers whole seeds.

Resumable: a run whose status.json says 'done' is skipped (even if --extra changed since; use
--rerun_done or a new --workdir); any other is (re)started and resumes from its latest checkpoint.
A failing run never stops the others. SLURM: a job near its time limit (or sent USR2) checkpoints
and is requeued by submitit, then resumes (cnn_depth/launchers.py); --nodes/--tasks_per_node above
1 run each grid point as one multi-process job (scripts/train.py --distributed=auto).

--extra and --train_flags take comma-separated lists (a comma splits only before a '-'), or repeat.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import sys

from absl import app, flags

from cnn_depth import launchers, sweep

_CONFIG = flags.DEFINE_string("config", None, "A configs/*.py file, optionally with ':args'.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Root directory; each run goes to a sub-directory.")
_DEPTHS = flags.DEFINE_list("depths", ["20", "32", "44", "56"], "Depths to run.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds to run.")
_RESIDUAL = flags.DEFINE_list(
  "residual", ["true", "false"], "Values of the config's `residual` argument (configs with one)."
)
_EXTRA = flags.DEFINE_multi_string(
  "extra", [], "Config overrides for every run, e.g. --extra=--config.num_train_steps=100."
)
_TRAIN_FLAGS = flags.DEFINE_multi_string(
  "train_flags", [], "Other scripts/train.py flags for every run, e.g. --compilation_cache=DIR."
)
_DRY_RUN = flags.DEFINE_bool(
  "dry_run", False, "Print the commands (local) or the sbatch script (slurm); start nothing."
)
_RERUN_DONE = flags.DEFINE_bool("rerun_done", False, "Also start runs whose status is 'done'.")
_STATUS = flags.DEFINE_bool("status", False, "Print the table of every run under --workdir.")
_LAUNCHER = flags.DEFINE_string("launcher", "local", "local (this host) or slurm (via submitit).")
_PARALLEL = flags.DEFINE_integer(
  "parallel", None, "Runs at once: local default 1, each on its own GPU(s) or cores; slurm: the "
  "job array's limit (default: none)."
)  # fmt: skip
_WAIT = flags.DEFINE_bool("wait", False, "slurm: wait for every job, then print the table.")
_PARTITION = flags.DEFINE_string("partition", None, "slurm: partition.")
_TIME = flags.DEFINE_integer("time_min", 240, "slurm: time limit of each job, in minutes.")
_GPUS = flags.DEFINE_integer("gpus_per_node", 0, "slurm: GPUs per node of each run.")
_CPUS = flags.DEFINE_integer("cpus_per_task", 1, "slurm: CPUs per task (process).")
_NODES = flags.DEFINE_integer("nodes", 1, "slurm: nodes per run.")
_TASKS = flags.DEFINE_integer(
  "tasks_per_node", 1, "slurm: processes per node (e.g. one per GPU); more than one process in all "
  "runs scripts/train.py --distributed=auto."
)  # fmt: skip
_SIGNAL_DELAY = flags.DEFINE_integer(
  "signal_delay_s", 120, "slurm: seconds before the time limit at which a job checkpoints and is "
  "requeued."
)  # fmt: skip
_SBATCH = flags.DEFINE_multi_string(
  "sbatch", [], "slurm: other sbatch options, e.g. --sbatch=--account=abc,--qos=high."
)


def split_list(values: list[str]) -> list[str]:
  """Comma-separated items, split only before a '-' (values may contain commas)."""
  return [item for v in values for item in re.split(r",(?=-)", v) if item]


def _ints(name: str, values: list[str]) -> list[int]:
  try:
    out = [int(v) for v in values]
  except ValueError:
    raise sweep.SweepError(
      f"--{name} must be a comma-separated list of integers, got {','.join(values)!r}"
    ) from None
  if not out:
    raise sweep.SweepError(f"--{name} is empty")
  return out


def _residuals() -> list[bool] | None:
  if not flags.FLAGS["residual"].present:
    return None
  out = []
  for v in _RESIDUAL.value:
    if v.lower() not in ("true", "1", "yes", "false", "0", "no"):
      raise sweep.SweepError(f"--residual values must be true or false, got {v!r}")
    out.append(v.lower() in ("true", "1", "yes"))
  return out


def _slurm_options() -> launchers.SlurmOptions:
  return launchers.SlurmOptions(
    partition=_PARTITION.value, time_min=_TIME.value, gpus_per_node=_GPUS.value,
    cpus_per_task=_CPUS.value, nodes=_NODES.value, tasks_per_node=_TASKS.value,
    array_parallelism=_PARALLEL.value, signal_delay_s=_SIGNAL_DELAY.value,
    sbatch=tuple(split_list(_SBATCH.value)),
  )  # fmt: skip


def _plan() -> list[sweep.Run]:
  if _LAUNCHER.value not in ("local", "slurm"):
    raise sweep.SweepError(f"--launcher must be local or slurm, got {_LAUNCHER.value!r}")
  if not _CONFIG.value:
    raise sweep.SweepError("--config is required (unless --status)")
  runs = sweep.plan(
    _CONFIG.value, _WORKDIR.value, _ints("depths", _DEPTHS.value), _ints("seeds", _SEEDS.value),
    _residuals(), split_list(_EXTRA.value), split_list(_TRAIN_FLAGS.value),
  )  # fmt: skip
  if _LAUNCHER.value == "slurm" and _NODES.value * _TASKS.value > 1:
    runs = [dataclasses.replace(r, command=r.command + ("--distributed=auto",)) for r in runs]
  return runs


def _table(root: str, names=None) -> int:
  rows = sweep.grid_status(root, names)
  print("\n" + sweep.format_table(rows), flush=True)
  failed = sum(r["failed"] for r in rows)
  print(f"{len(rows)} runs: {sum(r['status'] == 'done' for r in rows)} done, {failed} failed")
  return 1 if failed else 0


def _launch(runs: list[sweep.Run]) -> int:
  root = _WORKDIR.value
  if _LAUNCHER.value == "slurm":
    options = _slurm_options()
    options.parameters("check")  # bad --sbatch items fail before anything is submitted
    launchers.check_slurm()
    ids = launchers.submit_slurm(runs, root, options, _job_name(), _RERUN_DONE.value)
    print(f"submitted {len(ids)} runs: jobs {ids[0]}..{ids[-1]}; progress: {_status_command()}")
    if not _WAIT.value:
      return 0
    launchers.wait_slurm(ids)
    return _table(root, [r.name for r in runs])
  slots = launchers.local_slots(_PARALLEL.value or 1)
  if not launchers.run_local(runs, root, slots):
    _table(root, [r.name for r in runs])
    print("interrupted: the runs still queued were not started", flush=True)
    return 130
  return _table(root, [r.name for r in runs])


def _job_name() -> str:
  return "sweep_" + os.path.basename(os.path.abspath(_WORKDIR.value))


def _status_command() -> str:
  return shlex.join([sys.executable, sys.argv[0], "--status", f"--workdir={_WORKDIR.value}"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIR.value:
    print("error: --workdir is required", file=sys.stderr)
    return 2
  if _STATUS.value:
    return _table(_WORKDIR.value)
  try:
    runs = _plan()
    todo = [r for r in runs if _RERUN_DONE.value or not sweep.is_done(r.workdir)]
    if _DRY_RUN.value:
      for r in sorted(set(runs) - set(todo), key=runs.index):
        print(f"skip {r.name}: {r.workdir}/status.json says done", file=sys.stderr)
      if _LAUNCHER.value == "slurm" and todo:
        options = _slurm_options()
        print(launchers.sbatch_script(_WORKDIR.value, len(todo), options, _job_name()))
      for r in todo:
        print(shlex.join(r.command), file=sys.stderr if _LAUNCHER.value == "slurm" else sys.stdout)
      return 0
    for i, r in enumerate(runs, 1):
      if r not in todo:
        print(f"=== [{i}/{len(runs)}] {r.name}: done, skipped", flush=True)
    return _launch(todo) if todo else _table(_WORKDIR.value, [r.name for r in runs])
  except sweep.SweepError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  app.run(main)
