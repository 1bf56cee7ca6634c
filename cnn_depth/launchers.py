"""Where a grid's runs execute: here, N at a time on this host's devices, or as one SLURM job array
through submitit. Both start the same `scripts/train.py` command per run and write the same launch
record (`cnn_depth.sweep`), so `scripts/sweep.py --status` reads them alike.

Preemption on SLURM: submitit asks SLURM for `--signal=USR2@<signal_delay_s>` before the time limit
and, on USR2, calls `TrainJob.checkpoint`. That sends SIGTERM to the training process, which saves a
checkpoint and exits 4 (scripts/train.py), and returns the same job for submitit to requeue
(`scontrol requeue`); the requeued job runs the same command, which resumes from that checkpoint.
The training process ignores USR2 itself (SLURM signals every process of the job). A job that SLURM
preempts with SIGTERM (PreemptMode=REQUEUE) or that `scontrol requeue` restarts takes the same path:
the training process checkpoints on SIGTERM, and the restarted job resumes.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Sequence

from cnn_depth import sweep
from cnn_depth import workdir as workdir_lib
from cnn_depth.sweep import Run, SweepError

# --------------------------------------------------------------------------------------------------
# Here: N runs at once, each on its own device(s)


@dataclasses.dataclass(frozen=True)
class Slot:
  """One place a run can execute: environment additions and the CPUs it may use (None: all)."""

  label: str
  env: dict
  cpus: frozenset | None = None


def visible_gpus() -> list[str]:
  """This host's GPUs as CUDA_VISIBLE_DEVICES entries: the variable's own list if it is set, else
  what `nvidia-smi -L` lists; [] on a host without NVIDIA GPUs. Asks no framework, so the sweep
  process itself holds no GPU memory."""
  if "CUDA_VISIBLE_DEVICES" in os.environ:
    listed = [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    return [] if listed[:1] == ["-1"] else listed
  if shutil.which("nvidia-smi") is None:
    return []
  out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
  return [str(i) for i, line in enumerate(out.stdout.splitlines()) if line.startswith("GPU ")]


def _split(items: list, parts: int) -> list[list]:
  """`items` in `parts` contiguous groups of (nearly) equal size."""
  size, extra = divmod(len(items), parts)
  groups, start = [], 0
  for i in range(parts):
    end = start + size + (i < extra)
    groups.append(items[start:end])
    start = end
  return groups


def local_slots(parallel: int) -> list[Slot]:
  """`parallel` slots over this host's devices: GPUs split evenly through CUDA_VISIBLE_DEVICES
  (one each when parallel equals the GPU count); on a CPU host the cores, split through the
  processes' CPU affinity (XLA:CPU sizes its thread pool from it). One slot leaves everything as it
  is. Raises SweepError when `parallel` is more than the GPUs of a GPU host or the cores this
  process may use on a CPU host.

  More runs than cores is refused rather than pinning two runs to one core (or letting them share
  cores unpinned): a training run keeps its cores busy, so two runs on one core each take twice as
  long and the grid ends no sooner than with one run per core and the rest queued; and a run's
  thread count, which decides its float sums on CPU (README, Determinism), would then depend on
  how many runs happened to share, not on the slot it was given."""
  if parallel < 1:
    raise SweepError(f"--parallel must be at least 1, got {parallel}")
  gpus = visible_gpus()
  if gpus and parallel > len(gpus):
    raise SweepError(
      f"--parallel={parallel} is more than the {len(gpus)} GPUs of this host "
      f"({','.join(gpus)}); use --parallel={len(gpus)} or fewer, one GPU (or more) per run"
    )
  if parallel == 1:
    return [Slot("all devices", {})]
  if gpus:
    return [
      Slot(f"GPU {','.join(g)}", {"CUDA_VISIBLE_DEVICES": ",".join(g)})
      for g in _split(gpus, parallel)
    ]
  cpus = sorted(os.sched_getaffinity(0))
  if parallel > len(cpus):
    raise SweepError(
      f"--parallel={parallel} is more than the {len(cpus)} CPU cores this process may use "
      f"({','.join(map(str, cpus))}); use --parallel={len(cpus)} or fewer, one core (or more) per "
      "run, and the other runs wait their turn"
    )
  return [Slot(f"CPU {','.join(map(str, g))}", {}, frozenset(g)) for g in _split(cpus, parallel)]


def _start(run: Run, root: str, slot: Slot, log: str | None) -> subprocess.Popen:
  os.makedirs(workdir_lib.sweep_dir(root), exist_ok=True)
  out = open(log, "a") if log else None
  try:
    proc = subprocess.Popen(
      run.command, env={**os.environ, **slot.env}, stdout=out,
      stderr=subprocess.STDOUT if out else None,
    )  # fmt: skip
  finally:
    if out:
      out.close()
  if slot.cpus:  # before the interpreter has started, long before XLA sizes its thread pool
    os.sched_setaffinity(proc.pid, slot.cpus)
  sweep.update_record(
    root, run.name, launcher="local", launched=time.time(), started=time.time(), slot=slot.label,
    host=socket.gethostname(), pid=proc.pid, command=list(run.command), log=log, exit_code=None,
    ended=None,
  )  # fmt: skip
  return proc


def run_local(
  runs: Sequence[Run], root: str, slots: Sequence[Slot], say: Callable[[str], None] = print
) -> bool:
  """Runs `runs` on `slots`, one run per slot at a time, the rest queued, until all ended; returns
  False if interrupted (Ctrl-C: every running run gets SIGTERM, saves a checkpoint and exits 4).
  With one slot the runs print to this console; with more, each to ROOT/sweep/<run>.log."""
  queue, running, free = collections.deque(runs), {}, list(slots)
  total = len(runs)
  try:
    while queue or running:
      while queue and free:
        run, slot = queue.popleft(), free.pop(0)
        log = workdir_lib.log_path(root, run.name) if len(slots) > 1 else None
        n = total - len(queue)
        say(f"=== [{n}/{total}] {run.name} on {slot.label}: {shlex.join(run.command)}")
        running[run] = (_start(run, root, slot, log), slot)
      for run, (proc, slot) in list(running.items()):
        if proc.poll() is not None:
          sweep.update_record(root, run.name, exit_code=proc.returncode, ended=time.time())
          if len(slots) > 1:
            say(f"=== {run.name} ended with exit code {proc.returncode}")
          del running[run]
          free.append(slot)
      time.sleep(0.1 if running else 0)
  except KeyboardInterrupt:
    for proc, _ in running.values():
      proc.send_signal(signal.SIGTERM)
    for run, (proc, _) in running.items():
      sweep.update_record(root, run.name, exit_code=proc.wait(), ended=time.time())
    return False
  return True


# --------------------------------------------------------------------------------------------------
# SLURM, through submitit


def _ignore_usr2() -> None:
  signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # inherited through exec


class TrainJob:
  """What a SLURM job runs (pickled by submitit): one run's training command, in a child process.

  Every task of the job runs the command (a multi-node run passes --distributed=auto, and JAX reads
  its rank from SLURM's variables); task 0 writes the launch record. `checkpoint` is submitit's
  preemption hook (see the module docstring)."""

  def __init__(self, run: Run, root: str, rerun_done: bool = False):
    self.run, self.root, self.rerun_done = run, root, rerun_done
    self._proc: subprocess.Popen | None = None

  def __getstate__(self):
    return {k: v for k, v in self.__dict__.items() if k != "_proc"}

  def __setstate__(self, state):
    self.__dict__.update(state, _proc=None)

  def _record(self, **fields) -> None:
    if os.environ.get("SLURM_PROCID", "0") == "0":
      sweep.update_record(self.root, self.run.name, **fields)

  def __call__(self) -> int:
    self._record(
      job_id=_job_id(), started=time.time(), host=socket.gethostname(),
      restarts=int(os.environ.get("SLURM_RESTART_COUNT", "0")), exit_code=None, ended=None,
      requeued=False, skipped=False,
    )  # fmt: skip
    if not self.rerun_done and sweep.is_done(self.run.workdir):
      self._record(exit_code=0, ended=time.time(), skipped=True)
      return 0
    self._proc = subprocess.Popen(self.run.command, preexec_fn=_ignore_usr2)
    code = self._proc.wait()
    self._record(exit_code=code, ended=time.time())
    if code not in (0, sweep.EXIT_PREEMPTED):
      raise RuntimeError(f"{self.run.name}: scripts/train.py exited with {code}")
    return code

  def checkpoint(self):
    """On USR2: stop the training process (SIGTERM: it saves and exits 4) and hand submitit the same
    job to requeue. Runs in a signal handler while `__call__` waits, so it waits for the child with
    `waitid(WNOWAIT)`, which leaves the reaping (and Popen's lock) to `__call__`."""
    import submitit

    proc = self._proc
    if proc is not None and proc.returncode is None:
      proc.send_signal(signal.SIGTERM)
      try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        self._record(exit_code=info.si_status, ended=time.time(), requeued=True)
      except ChildProcessError:
        pass
    return submitit.helpers.DelayedSubmission(TrainJob(self.run, self.root, self.rerun_done))


def _job_id() -> str | None:
  array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
  return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
  """The resources of each run of a grid (one array task per run)."""

  partition: str | None = None
  time_min: int = 240
  gpus_per_node: int = 0
  cpus_per_task: int = 1
  nodes: int = 1
  tasks_per_node: int = 1
  array_parallelism: int | None = None
  signal_delay_s: int = 120
  sbatch: tuple[str, ...] = ()  # free-form: ("--account=abc", "--qos=high", "--exclusive")

  def parameters(self, job_name: str) -> dict:
    """submitit SlurmExecutor parameters (also `_make_sbatch_string`'s keywords)."""
    extra = {}
    for option in self.sbatch:
      if not option.startswith("--") or len(option) < 3:
        raise SweepError(
          f"--sbatch items must be long sbatch options like --qos=high, got {option!r}"
        )
      key, eq, value = option[2:].partition("=")
      extra[key] = value if eq else True
    params = dict(
      job_name=job_name, time=self.time_min, nodes=self.nodes, ntasks_per_node=self.tasks_per_node,
      cpus_per_task=self.cpus_per_task, signal_delay_s=self.signal_delay_s,
      additional_parameters=extra,
    )  # fmt: skip
    if self.partition:
      params["partition"] = self.partition
    if self.gpus_per_node:
      params["gpus_per_node"] = self.gpus_per_node
    if self.array_parallelism:
      params["array_parallelism"] = self.array_parallelism
    return params


def slurm_folder(root: str) -> str:
  """submitit's folder template: one subfolder of the sweep's SLURM folder per job id."""
  return os.path.join(os.path.abspath(workdir_lib.slurm_dir(root)), "%j")


def sbatch_script(root: str, n_runs: int, options: SlurmOptions, job_name: str) -> str:
  """The sbatch script submitit writes for a grid of `n_runs` (what --dry_run prints)."""
  from submitit.slurm import slurm

  command = f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {slurm_folder(root)}"
  count = n_runs if n_runs > 1 else None
  return slurm._make_sbatch_string(
    command=command, folder=slurm_folder(root), map_count=count, **options.parameters(job_name)
  )


def check_slurm() -> None:
  missing = [c for c in ("sbatch", "srun", "squeue", "scontrol") if shutil.which(c) is None]
  if missing:
    raise SweepError(
      f"--launcher=slurm needs SLURM's commands, and {', '.join(missing)} "
      f"{'is' if len(missing) == 1 else 'are'} not on PATH here; run the sweep on a SLURM login "
      "node (or use --launcher=local)"
    )


def submit_slurm(
  runs: Sequence[Run], root: str, options: SlurmOptions, job_name: str, rerun_done: bool = False
) -> list[str]:
  """Submits the runs as one job array (a single run as one job); returns the job ids. A submission
  sbatch refuses is a SweepError naming the option (with sbatch's reason), and the submission files
  it left are removed: nothing was submitted, nothing stays behind."""
  import submitit

  check_slurm()
  executor = submitit.SlurmExecutor(folder=slurm_folder(root), python=sys.executable)
  executor.update_parameters(**options.parameters(job_name))
  undo = _undo_new_files(workdir_lib.slurm_dir(root))
  printed = io.StringIO()  # submitit prints sbatch's error lines itself: they go into the sentence
  try:
    with contextlib.redirect_stderr(printed), executor.batch():
      jobs = [executor.submit(TrainJob(run, root, rerun_done)) for run in runs]
  except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as e:
    undo()
    raise SweepError(_sbatch_refusal(str(e) or printed.getvalue(), options)) from None
  except BaseException:
    sys.stderr.write(printed.getvalue())
    raise
  sys.stderr.write(printed.getvalue())
  for run, job in zip(runs, jobs):
    sweep.update_record(
      root, run.name, launcher="slurm", launched=time.time(), job_id=job.job_id,
      command=list(run.command), started=None, exit_code=None, ended=None, restarts=0,
    )  # fmt: skip
  return [job.job_id for job in jobs]


def _undo_new_files(folder: str) -> Callable[[], None]:
  """A function that removes what was created under `folder` (and `folder` and its parents, up to
  the first that exists now) after this call."""
  path = os.path.abspath(folder)
  first_new = None
  while not os.path.exists(path):
    first_new, path = path, os.path.dirname(path)
  before = set(os.listdir(folder)) if first_new is None else set()

  def undo() -> None:
    if first_new is not None:
      shutil.rmtree(first_new, ignore_errors=True)
      return
    for name in set(os.listdir(folder)) - before:
      target = os.path.join(folder, name)
      if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target, ignore_errors=True)
      else:
        os.remove(target)

  return undo


def _sbatch_refusal(stderr: str, options: SlurmOptions) -> str:
  """One sentence for a submission sbatch refused: its reason, and the option to change."""
  lines = [line.strip() for line in stderr.splitlines() if line.strip()]
  errors = [line.removeprefix("sbatch: error: ") for line in lines if "error" in line.lower()]
  reason = "; ".join(errors or lines) or "no reason given"
  if options.partition and "partition" in reason.lower():
    return (
      f"--partition={options.partition} was refused by sbatch ({reason}); choose a partition "
      "that `sinfo` lists, or leave --partition out for the cluster's default; nothing was "
      "submitted"
    )
  if options.gpus_per_node and "gres" in reason.lower():  # SLURM's word for GPUs
    return (
      f"--gpus_per_node={options.gpus_per_node} was refused by sbatch ({reason}); ask for the "
      "GPUs a node of the partition has (`sinfo -o '%P %G'`); nothing was submitted"
    )
  return (
    f"sbatch refused the job ({reason}); change the launch option at fault (--partition, "
    "--gpus_per_node, --cpus_per_task, --nodes, --tasks_per_node, --time_min or --sbatch); "
    "nothing was submitted"
  )


# squeue states of a job that has not ended yet (a requeued job goes back to PENDING).
_ACTIVE = {
  "PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
  "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "PREEMPTED",
}  # fmt: skip


def active_jobs(job_ids: Sequence[str]) -> set[str]:
  """The ids among `job_ids` that SLURM still runs or will run (squeue, one line per array task)."""
  arrays = sorted({j.split("_")[0] for j in job_ids})
  out = subprocess.run(
    ["squeue", "--states=all", "-h", "-r", "-o", "%i %T", "-j", ",".join(arrays)],
    capture_output=True, text=True, timeout=60,
  )  # fmt: skip
  states = dict(line.split()[:2] for line in out.stdout.splitlines() if len(line.split()) >= 2)
  return {j for j in job_ids if states.get(j) in _ACTIVE}


def wait_slurm(job_ids: Sequence[str], poll: float = 2.0) -> None:
  """Returns once none of the jobs is pending or running (requeued ones included)."""
  while active_jobs(job_ids):
    time.sleep(poll)
