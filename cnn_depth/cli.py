"""What the scripts share: launching a list of training runs (here N at a time, or a SLURM job
array) with one set of flags, and the error handling of the analysis scripts.

`scripts/sweep.py` (a depth x seed grid) and `scripts/reproduce.py` (a study's runs) both call
`define_launch_flags()` at import and `launch(runs, root, flags)` in main, so every reproduction
takes the sweep's --parallel, --launcher=slurm and its options, --dry_run and --rerun_done.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
from typing import Callable, Sequence

from cnn_depth import launchers, sweep


def fail(message: str, code: int = 2):
  """The one-sentence error every script ends with on bad input: `error: ...`, exit 2."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def require(flag: str, value, ok: bool, must: str) -> None:
  """Unless `ok`: the one `error:` line naming --flag, its value and what it must be, exit 2. The
  analysis scripts check every numeric flag this way before any workdir or data is read."""
  if not ok:
    fail(f"--{flag}={value} cannot be used: it must be {must}; pass such a value or leave it out")


def whole(low: int) -> Callable[[object], bool]:
  """A test for `require`: an int >= low."""
  return lambda v: isinstance(v, int) and v >= low


def positive(v) -> bool:
  """A test for `require`: a finite number > 0."""
  return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def check_out_dir(path: str | None, flag: str = "out_dir") -> None:
  """Exits with one line naming --out_dir where that folder cannot be made or written to (a file in
  the way, a parent that holds no folders such as /proc, no permission): tried by making it and a
  file in it, then removing what the try made, so nothing stays. None: the flag was not given."""
  if path is None:
    return
  first_new, parent = None, os.path.abspath(path)
  while not os.path.exists(parent):
    first_new, parent = parent, os.path.dirname(parent)
  try:
    os.makedirs(path, exist_ok=True)
    handle, probe = tempfile.mkstemp(prefix=".write_probe_", dir=path)
    os.close(handle)
    os.remove(probe)
  except OSError as e:
    reason = e.strerror or type(e).__name__
    if isinstance(e, FileExistsError) or os.path.isfile(path):
      reason = "a file of that name is in the way"
    fail(
      f"--{flag}={path} cannot be made or written to ({reason}); choose a folder you can write to"
    )
  finally:
    if first_new is not None:
      shutil.rmtree(first_new, ignore_errors=True)


def split_list(values: Sequence[str]) -> list[str]:
  """Comma-separated items, split only before a '-' (values may contain commas)."""
  return [item for v in values for item in re.split(r",(?=-)", v) if item]


@dataclasses.dataclass(frozen=True)
class LaunchFlags:
  """The absl flag holders of a launching script (see `define_launch_flags`)."""

  launcher: object
  parallel: object
  dry_run: object
  rerun_done: object
  wait: object
  partition: object
  time_min: object
  gpus_per_node: object
  cpus_per_task: object
  nodes: object
  tasks_per_node: object
  signal_delay_s: object
  sbatch: object


def define_launch_flags() -> LaunchFlags:
  """Defines the launch flags in the calling script (once, at its import)."""
  from absl import flags

  d = flags
  return LaunchFlags(
    launcher=d.DEFINE_string("launcher", "local", "local (this host) or slurm (via submitit)."),
    parallel=d.DEFINE_integer(
      "parallel",
      None,
      "Runs at once: local default 1, each on its own GPU(s) or cores; slurm: "
      "the job array's limit (default: none).",
    ),  # fmt: skip
    dry_run=d.DEFINE_bool(
      "dry_run", False, "Print the commands (local) or the sbatch script (slurm); start nothing."
    ),
    rerun_done=d.DEFINE_bool("rerun_done", False, "Also start runs whose status is 'done'."),
    wait=d.DEFINE_bool("wait", False, "slurm: wait for every job, then go on."),
    partition=d.DEFINE_string("partition", None, "slurm: partition."),
    time_min=d.DEFINE_integer("time_min", 240, "slurm: time limit of each job, in minutes."),
    gpus_per_node=d.DEFINE_integer("gpus_per_node", 0, "slurm: GPUs per node of each run."),
    cpus_per_task=d.DEFINE_integer("cpus_per_task", 1, "slurm: CPUs per task (process)."),
    nodes=d.DEFINE_integer("nodes", 1, "slurm: nodes per run."),
    tasks_per_node=d.DEFINE_integer(
      "tasks_per_node",
      1,
      "slurm: processes per node (e.g. one per GPU); more than one process "
      "in all runs scripts/train.py --distributed=auto.",
    ),  # fmt: skip
    signal_delay_s=d.DEFINE_integer(
      "signal_delay_s",
      120,
      "slurm: seconds before the time limit at which a job checkpoints and is requeued.",
    ),  # fmt: skip
    sbatch=d.DEFINE_multi_string(
      "sbatch", [], "slurm: other sbatch options, e.g. --sbatch=--account=abc,--qos=high."
    ),
  )


def slurm_options(f: LaunchFlags) -> launchers.SlurmOptions:
  return launchers.SlurmOptions(
    partition=f.partition.value, time_min=f.time_min.value, gpus_per_node=f.gpus_per_node.value,
    cpus_per_task=f.cpus_per_task.value, nodes=f.nodes.value, tasks_per_node=f.tasks_per_node.value,
    array_parallelism=f.parallel.value, signal_delay_s=f.signal_delay_s.value,
    sbatch=tuple(split_list(f.sbatch.value)),
  )  # fmt: skip


def check_launcher(f: LaunchFlags, runs: list[sweep.Run]) -> list[sweep.Run]:
  """The runs as the launcher starts them (multi-process runs get --distributed=auto); raises
  SweepError on an unknown launcher."""
  if f.launcher.value not in ("local", "slurm"):
    raise sweep.SweepError(f"--launcher must be local or slurm, got {f.launcher.value!r}")
  if f.launcher.value == "slurm" and f.nodes.value * f.tasks_per_node.value > 1:
    runs = [dataclasses.replace(r, command=r.command + ("--distributed=auto",)) for r in runs]
  return runs


def table(root: str, names: Sequence[str] | None = None) -> int:
  """Prints the grid's table and a count line; 1 if a run failed, else 0."""
  rows = sweep.grid_status(root, names)
  print("\n" + sweep.format_table(rows), flush=True)
  failed = sum(r["failed"] for r in rows)
  print(f"{len(rows)} runs: {sum(r['status'] == 'done' for r in rows)} done, {failed} failed")
  return 1 if failed else 0


def launch(
  runs: list[sweep.Run], root: str, f: LaunchFlags, job_name: str, status_command: str
) -> int:
  """Starts the runs not yet done (all with --rerun_done): here, --parallel at a time, or as one
  SLURM job array (waiting for it with --wait). --dry_run prints the commands (and the sbatch
  script) instead. Returns the exit status: 0, 1 (a run failed), 130 (interrupted), or -1 where
  SLURM jobs were submitted without --wait (still running). Raises SweepError on bad flags."""
  runs = check_launcher(f, runs)
  todo = [r for r in runs if f.rerun_done.value or not sweep.is_done(r.workdir)]
  slurm = f.launcher.value == "slurm"
  if f.dry_run.value:
    for r in sorted(set(runs) - set(todo), key=runs.index):
      print(f"skip {r.name}: {r.workdir}/status.json says done", file=sys.stderr)
    if slurm and todo:
      print(launchers.sbatch_script(root, len(todo), slurm_options(f), job_name))
    for r in todo:
      print(shlex.join(r.command), file=sys.stderr if slurm else sys.stdout)
    return 0
  # --parallel against this host's GPUs or cores, before anything starts. Not in a dry run, which
  # may print the commands of a grid meant for another host (the README's 8-GPU example).
  slots = None if slurm else launchers.local_slots(f.parallel.value or 1)
  for i, r in enumerate(runs, 1):
    if r not in todo:
      print(f"=== [{i}/{len(runs)}] {r.name}: done, skipped", flush=True)
  names = [r.name for r in runs]
  if not todo:
    return table(root, names)
  if slurm:
    options = slurm_options(f)
    options.parameters("check")  # bad --sbatch items fail before anything is submitted
    launchers.check_slurm()
    ids = launchers.submit_slurm(todo, root, options, job_name, f.rerun_done.value)
    print(f"submitted {len(ids)} runs: jobs {ids[0]}..{ids[-1]}; progress: {status_command}")
    if not f.wait.value:
      return -1
    launchers.wait_slurm(ids)
    return table(root, [r.name for r in todo])
  if not launchers.run_local(todo, root, slots):
    table(root, [r.name for r in todo])
    print("interrupted: the runs still queued were not started", flush=True)
    return 130
  return table(root, [r.name for r in todo])


def analysis_main(measure: Callable[[], list[str]], out_dir: str) -> None:
  """Runs an analysis script's measurement and prints its lines and where the results went; bad
  input (no workdir, no checkpoint, a bad option) is one `error:` line and exit 2."""
  from cnn_depth import checkpoint, console

  console.quiet_unless_verbose()
  try:
    lines = measure()
  except (ValueError, OSError, checkpoint.CheckpointError) as e:
    fail(str(e))
  print("\n".join([*lines, f"results in {out_dir}"]))
