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

Every run's config (the config file, --extra, the model of each depth) is checked before anything
starts, --dry_run included, and --parallel against this host's GPUs or cores before the runs start:
a grid with one run scripts/train.py would refuse starts none (one `error:` line, exit 2).

Resumable: a run whose status.json says 'done' is skipped (even if --extra changed since; use
--rerun_done or a new --workdir); any other is (re)started and resumes from its latest checkpoint.
A failing run never stops the others. SLURM: a job near its time limit (or sent USR2) checkpoints
and is requeued by submitit, then resumes (cnn_depth/launchers.py); --nodes/--tasks_per_node above
1 run each grid point as one multi-process job (scripts/train.py --distributed=auto).

--extra and --train_flags take comma-separated lists (a comma splits only before a '-'), or repeat.
"""

from __future__ import annotations

import os
import shlex
import sys

from absl import app, flags

from cnn_depth import cli, sweep

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


_LAUNCH = cli.define_launch_flags()
_STATUS = flags.DEFINE_bool("status", False, "Print the table of every run under --workdir.")


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


def _plan() -> list[sweep.Run]:
  cli.check_launcher(_LAUNCH, [])
  if not _CONFIG.value:
    raise sweep.SweepError("--config is required (unless --status)")
  return sweep.plan(
    _CONFIG.value, _WORKDIR.value, _ints("depths", _DEPTHS.value), _ints("seeds", _SEEDS.value),
    _residuals(), cli.split_list(_EXTRA.value), cli.split_list(_TRAIN_FLAGS.value),
  )  # fmt: skip


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIR.value:
    cli.fail("--workdir is required")
  if _STATUS.value:
    if not os.path.isdir(_WORKDIR.value):
      what = "is a file, not a folder" if os.path.exists(_WORKDIR.value) else "does not exist"
      cli.fail(
        f"--workdir={_WORKDIR.value} {what}, so it holds no runs; give the root folder the sweep "
        "was started with (--status --workdir=ROOT)"
      )
    return cli.table(_WORKDIR.value)
  root = _WORKDIR.value
  status = shlex.join([sys.executable, sys.argv[0], "--status", f"--workdir={root}"])
  try:
    code = cli.launch(
      _plan(), root, _LAUNCH, "sweep_" + os.path.basename(os.path.abspath(root)), status
    )
  except sweep.SweepError as e:
    cli.fail(str(e))
  return max(code, 0)


if __name__ == "__main__":
  app.run(main)
