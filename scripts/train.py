r"""Train one configuration into a workdir (resuming it if it holds a checkpoint).

  python scripts/train.py --config=configs/cifar_resnet.py:depth=110 --workdir=runs/r110 \
      --config.dataset.data_dir=/data/cifar --config.num_train_steps=1000

Multi-host: start the same command on every host with --distributed=auto under a cluster JAX
knows (`srun` of SLURM, `mpirun` of Open MPI, every worker of a Cloud TPU pod slice: JAX reads the
coordinator, process count and rank from there), or with --coordinator_address=host0:1234
--num_processes=N --process_id=i (or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID).
Each process then uses its local accelerators and the batch is split over all. If a process dies,
the others stop within --peer_timeout seconds (exit 5) naming it.

Exit codes: 0 done; 2 bad input (config, data, workdir, checkpoint: one line saying what to do);
3 diverged (non-finite loss); 4 preempted (SIGTERM: checkpoint saved, relaunch to resume);
5 another process of a multi-host run was lost.
"""

import errno
import os
import sys
import traceback

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "A configs/*.py file.", lock_config=True)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Run directory (created; resumed if it has checkpoints)."
)
_COORD = flags.DEFINE_string(
  "coordinator_address",
  os.environ.get("JAX_COORDINATOR_ADDRESS"),
  "host:port of process 0, for multi-host runs.",
)
_NPROC = flags.DEFINE_integer(
  "num_processes", int(os.environ.get("JAX_NUM_PROCESSES", "1")), "Number of processes (hosts)."
)
_PID = flags.DEFINE_integer(
  "process_id", int(os.environ.get("JAX_PROCESS_ID", "0")), "This process's index."
)
_DISTRIBUTED = flags.DEFINE_string(
  "distributed",
  "",
  "'auto': jax.distributed.initialize() with no arguments, JAX taking coordinator, process count "
  "and id from SLURM, Open MPI or a Cloud TPU pod; '' (default): the explicit flags below.",
)
_PEER_TIMEOUT = flags.DEFINE_float(
  "peer_timeout",
  60.0,
  "Multi-host: seconds without a sign of life from another process after "
  "which this one stops (exit 5, naming it) instead of waiting for it forever.",
)
_CACHE = flags.DEFINE_string(
  "compilation_cache",
  os.environ.get("CNN_DEPTH_JAX_CACHE", ""),
  "Persistent compilation cache directory ('' = none). It keeps the programs that took 1 s or "
  "more to compile; JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS, where set, is the threshold "
  "instead (the tests set 0: their many tiny runs then compile nothing twice).",
)
_ALLOW_CHANGES = flags.DEFINE_list(
  "allow_changes",
  [],
  "Recipe fields a relaunch may change (e.g. learning_rate,weight_decay); the workdir keeps its "
  "config.json and records each change, with the step it took effect, in changes.jsonl. Without "
  "it a relaunch that changes the recipe is refused (extending num_train_steps is always allowed).",
)
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv):
  """absl flag parsing, with a bad flag or --config override reported in one line (exit 2), not a
  traceback; positional arguments are refused (they would be ignored)."""
  from cnn_depth import console

  program = "scripts/train.py"
  try:
    rest = flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as e:
    print(f"error: {console.flag_error(e, [program, *argv[1:]])}", file=sys.stderr)
    sys.exit(2)
  if len(rest) > 1:
    print(
      f"error: {program} takes only flags, got {' '.join(map(repr, rest[1:]))}; write each "
      "as --name=value (--help lists them)",
      file=sys.stderr,
    )
    sys.exit(2)
  if not _WORKDIR.value.strip():
    print(
      f"error: --workdir={_WORKDIR.value!r} is empty; give the run's directory, e.g. "
      "--workdir=runs/r20",
      file=sys.stderr,
    )
    sys.exit(2)
  return rest


def main(argv):
  del argv
  from cnn_depth import console

  console.quiet_unless_verbose()
  try:
    config = _CONFIG.value
    config.to_dict()  # a config file that failed to load raises here, on first use
  except OSError as e:  # config_flags defers a missing or unreadable config file to here
    print(f"error: cannot load --config ({' '.join(str(e).split())})", file=sys.stderr)
    sys.exit(2)
  from cnn_depth import config as config_lib

  try:  # the fields' own rules, before jax is imported: a mistyped value is refused at once
    config_lib.check(config)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  import jax

  if _CACHE.value:
    jax.config.update("jax_compilation_cache_dir", _CACHE.value)
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
      jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  watchdog = _start_processes()
  from cnn_depth import checkpoint, train

  try:
    final = train.train_and_evaluate(config, _WORKDIR.value, _ALLOW_CHANGES.value)
  except (train.TrainingDiverged, train.Preempted) as e:  # every process stops at the same step
    if watchdog is not None:
      watchdog.finish()
    print(f"error: {e}", file=sys.stderr)  # once: not through absl's logging too
    sys.exit(3 if isinstance(e, train.TrainingDiverged) else 4)
  except (ValueError, checkpoint.CheckpointError) as e:  # bad config/data/workdir/checkpoint
    _fail(2, str(e), watchdog)
  except BaseException as e:
    if isinstance(e, OSError) and e.errno in _NO_ROOM:  # the write probe only checks the start
      _fail(
        2,
        f"could not write to the workdir {_WORKDIR.value} ({e.strerror}: {e.filename}); free "
        "space (or fix permissions) and relaunch the same command: the run resumes from its last "
        "finished checkpoint",
        watchdog,
      )
    if watchdog is None:
      raise
    if type(e).__name__ in ("JaxRuntimeError", "XlaRuntimeError"):
      # A collective that failed (gloo: "Connection reset by peer") usually means a lost process:
      # let the watchdog name it (it exits 5) before reporting the error itself.
      watchdog.await_loss()
    traceback.print_exc()
    _fail(1, f"{type(e).__name__}: {e}", watchdog)
  if watchdog is not None:
    watchdog.finish()
  if jax.process_index() == 0:
    from cnn_depth import reporting

    print(reporting.final_line(final, config.batch_size))


def _start_processes():
  """jax.distributed for a multi-process run (--distributed=auto or --num_processes > 1) and its
  PeerWatchdog; None for a single process."""
  if _DISTRIBUTED.value not in ("", "auto"):
    print(
      f"error: --distributed must be auto or empty, got {_DISTRIBUTED.value!r}", file=sys.stderr
    )
    sys.exit(2)
  if _DISTRIBUTED.value != "auto" and _NPROC.value <= 1:
    return None
  import jax

  from cnn_depth import multihost

  explicit = (_COORD.value, _NPROC.value, _PID.value)
  try:
    multihost.initialize(
      *((None,) * 3 if _DISTRIBUTED.value == "auto" else explicit), _PEER_TIMEOUT.value
    )
  except ValueError as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(2)
  if jax.process_count() == 1:
    return None
  return multihost.PeerWatchdog(
    _PEER_TIMEOUT.value, on_lost=lambda message: _record_lost(_WORKDIR.value, message)
  ).start()


# Errors of a workdir that filled up or went read-only after the run started.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


def _fail(code: int, message: str, watchdog) -> None:
  """Prints the one-line error and exits; with several processes, tells the others first and exits
  at once (the normal exit would wait for them at jax.distributed's shutdown barrier)."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  if watchdog is None:
    sys.exit(code)
  watchdog.fail(message)
  sys.stdout.flush()
  os._exit(code)


def _record_lost(workdir: str, message: str) -> None:
  """Status 'failed' with the reason, when another process was lost (process 0 writes the logs)."""
  import jax

  from cnn_depth import workdir as workdir_lib

  if jax.process_index() != 0:
    return
  status = workdir_lib.read_status(workdir) or {}
  # The loop may have recorded the failed collective first: the lost process is the reason.
  collective = str(status.get("reason", "")).startswith(("JaxRuntimeError", "XlaRuntimeError"))
  if status.get("status") in (None, "running") or collective:
    workdir_lib.write_status(workdir, "failed", reason=message)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
