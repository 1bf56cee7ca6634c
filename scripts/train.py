r"""Train one configuration into a workdir (resuming it if it holds a checkpoint).

  python scripts/train.py --config=configs/cifar_resnet.py:depth=110 --workdir=runs/r110 \
      --config.dataset.data_dir=/data/cifar --config.num_train_steps=1000

Multi-host: start the same command on every host with --coordinator_address=host0:1234
--num_processes=N --process_id=i (or set JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
JAX_PROCESS_ID); each process then uses its local accelerators and the batch is split over all.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "A configs/*.py file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; resumed if it has checkpoints).")
_COORD = flags.DEFINE_string("coordinator_address", os.environ.get("JAX_COORDINATOR_ADDRESS"),
                             "host:port of process 0, for multi-host runs.")
_NPROC = flags.DEFINE_integer("num_processes", int(os.environ.get("JAX_NUM_PROCESSES", "1")),
                              "Number of processes (hosts).")
_PID = flags.DEFINE_integer("process_id", int(os.environ.get("JAX_PROCESS_ID", "0")),
                            "This process's index.")
_CACHE = flags.DEFINE_string("compilation_cache", os.environ.get("CNN_DEPTH_JAX_CACHE", ""),
                             "Persistent compilation cache directory ('' = none).")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv):
  """absl flag parsing, with a bad --config override reported in one line (exit 2), not a traceback."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as e:
    overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    print(f"error: {type(e).__name__}: {e}. Config overrides given: {', '.join(overrides) or 'none'}; "
          "each must name an existing field (e.g. --config.model.depth=56).", file=sys.stderr)
    sys.exit(2)


def main(argv):
  del argv
  import jax
  if _CACHE.value:
    jax.config.update("jax_compilation_cache_dir", _CACHE.value)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  if _NPROC.value > 1:
    jax.distributed.initialize(_COORD.value, _NPROC.value, _PID.value)
  from cnn_depth import checkpoint, train
  try:
    final = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (train.TrainingDiverged, train.Preempted) as e:
    logging.error("%s", e)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(3 if isinstance(e, train.TrainingDiverged) else 4)
  except (ValueError, checkpoint.CheckpointError) as e:  # bad config/data/workdir/checkpoint
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print({k: round(v, 5) if isinstance(v, float) else v for k, v in final.items()})


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
