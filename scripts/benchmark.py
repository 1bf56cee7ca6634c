r"""Time the project's own compiled train step on whatever devices are present.

For each configuration (family x depth x batch x dtype x stage layout) this measures the lowering +
compile time, the steady-state images/s (median over repeats after warm-up) and the peak device
memory of the real step: uint8 CIFAR-shaped batches already on the device, normalisation and
pad/crop/flip augmentation inside the step, SGD with momentum and weight decay, BN statistics
updated. Each configuration runs in its own subprocess so that compile caches and peak-memory
counters start fresh.

Records go to results/benchmarks/<device>.jsonl (one JSON object a line, appended) and a Markdown
table is printed. Example (one H100):

  python scripts/benchmark.py --depths=20,56,110,1202 --batches=128,1024 --dtypes=bfloat16,float32 \
      --stages=scan,unroll --out_dir=results/benchmarks

--what=loop also times the end-to-end training loop, `train.train_and_evaluate` on the 'synthetic'
dataset (CIFAR-10-shaped random data held on the device) with the config's logging (every
--log_every steps, block norms included), evaluation on the 10k test images (every --eval_every) and
checkpoints (every --checkpoint_every and at the end), for --loop_steps steps, and records its
images/s (first step, which compiles, excluded) and `loop_share` = loop images/s / bare-step
images/s measured in the same process. Defaults are the He et al. recipe's intervals
(cnn_depth/config.py).

  python scripts/benchmark.py --what=loop --depths=56,110 --loop_steps=3000

--what=kernels needs no GPU: it compiles the same step for the GPU --target_config describes (an
H100 by default) on this machine's CPU (deviceless compilation: needs the jax-cuda12-plugin and
jax-cuda12-pjrt wheels of the installed jax) and counts the kernels one step launches
(cnn_depth/analysis/benchmarks.py): a count, not a timing. Records: kernels_<target>.jsonl and .md.

  pip install jax-cuda12-plugin==$(python -c 'import jax; print(jax.__version__)') \
      jax-cuda12-pjrt==...
  python scripts/benchmark.py --what=kernels --depths=20,56,110 --unroll=64 --bn_impls=fused,flax

--fixes benchmarks the fixes for depth by preset name (cnn_depth/models/fixes.py; 'all': every
one), each preset's net with the optimiser its paper uses, at --depths or, by default, at the
smallest depth whose stages scan; --model_options adds config.model fields to every net (checked
as scripts/train.py checks them; a net that refuses them stops the grid before anything runs).
Both are recorded and shown beside the family. --one_process compiles every --what=kernels
configuration in this process (benchmarks/gpu_compile_check.sh compiles every fix this way):

  python scripts/benchmark.py --what=kernels --fixes=all --batches=8 --one_process
  python scripts/benchmark.py --families=cifar_plain --depths=32 \
      --model_options=norm=none,init=delta_orthogonal,activation=tanh,sigma_w2=1.0

Synthetic data only: no data library is imported, so this runs with just jax, flax and optax.
The measurements and the per-configuration processes are cnn_depth/analysis/speed.py's.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from cnn_depth import console
from cnn_depth.analysis import benchmarks, speed

flags.DEFINE_list(
  "what",
  ["step"],
  "What to measure: step (the bare train step), loop (the training "
  "loop with logging, evaluation and checkpoints, beside the bare step) and/or kernels "
  "(the kernels of one step compiled for --target_config, no GPU needed).",
)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string(
  "target_config",
  os.path.join(ROOT, "benchmarks", "gpu_specs", "h100_sxm.txtpb"),
  "--what=kernels: the GPU to compile for (an XLA GpuTargetConfig text proto), "
  "or 'local' for the first device present, compiled as a training run would be.",
)
flags.DEFINE_string(
  "hlo_dir",
  "",
  "--what=kernels: also write each configuration's optimised HLO text "
  "here (to read what the kernels are).",
)
flags.DEFINE_bool(
  "log_block_norms",
  False,
  "--what=kernels: compile the step with the per-block "
  "norms that training logs (config.log_block_norms); step and loop keep their own.",
)
flags.DEFINE_bool(
  "loop_program",
  False,
  "--what=kernels: count the program the training loop runs "
  "each step on an in-memory dataset (batch gather, step, metric sums; block norms "
  "as --log_block_norms) instead of the bare step. Needs ml_collections.",
)
flags.DEFINE_list("families", ["cifar_resnet"], "Model families (cnn_depth.models.FAMILIES).")
flags.DEFINE_list(
  "fixes",
  [],
  "Fixes for depth by preset name (cnn_depth/models/fixes.py; 'all': every one), "
  "instead of --families: each preset's net with the optimiser its paper uses.",
)
flags.DEFINE_string(
  "model_options",
  "",
  "config.model fields for every net, as field=value,... (e.g. norm=none,branch=fixup), "
  "checked as scripts/train.py checks --config.model overrides.",
)
flags.DEFINE_list(
  "depths",
  ["20", "56", "110", "1202"],
  "Depths (with --fixes, default: each preset's smallest depth whose stages scan).",
)
flags.DEFINE_list("batches", ["128"], "Global batch sizes.")
flags.DEFINE_list("dtypes", ["bfloat16"], "Computation dtypes (params stay float32).")
flags.DEFINE_list("stages", ["scan"], "Stage layouts: scan and/or unroll.")
flags.DEFINE_integer(
  "unroll",
  1,
  "Scan unroll factor (0: models.resolve_unroll's backend default, what the configs use).",
)
flags.DEFINE_bool("remat", False, "Rematerialise blocks in the backward pass.")
flags.DEFINE_list(
  "bn_impls",
  ["fused"],
  "BatchNorm implementations: fused (layers.BatchNorm, the "
  "default) and/or flax (flax.linen.BatchNorm, the reference).",
)
flags.DEFINE_integer("width", 16, "Base width (16 for the paper's CIFAR nets).")
flags.DEFINE_integer("warmup", 10, "Steps run before timing.")
flags.DEFINE_integer("iters", 0, "Steps per timed repeat; 0 picks enough for --repeat_seconds.")
flags.DEFINE_float("repeat_seconds", 1.0, "Target duration of one timed repeat when --iters=0.")
flags.DEFINE_integer("repeats", 5, "Timed repeats; the median is reported.")
flags.DEFINE_integer("max_unroll_depth", 110, "Skip stages=unroll above this depth (compile time).")
flags.DEFINE_integer("loop_steps", 2000, "--what=loop: training steps of the loop.")
flags.DEFINE_integer("log_every", 100, "--what=loop: logging interval (steps).")
flags.DEFINE_integer("eval_every", 1000, "--what=loop: test-set evaluation interval (steps).")
flags.DEFINE_integer("checkpoint_every", 5000, "--what=loop: checkpoint interval (steps).")
flags.DEFINE_string("out_dir", "results/benchmarks", "Where <device>.jsonl goes ('': nowhere).")
flags.DEFINE_string("tag", "", "A label stored with each record (e.g. the XLA flags tried).")
flags.DEFINE_bool("report", False, "Only rewrite each <name>.md from <name>.jsonl in --out_dir.")
flags.DEFINE_bool(
  "one_process",
  False,
  "--what=kernels: compile every configuration in this process, one after another, instead of "
  "each in a fresh one (one start of jax and its CUDA plugin for all).",
)
flags.DEFINE_string("single", "", "Internal: run one configuration (JSON), print its record.")

FLAGS = flags.FLAGS


def main(argv):
  del argv
  console.quiet_unless_verbose()
  try:
    if FLAGS.single:  # one configuration's own process, started by speed.run_all below
      speed.run_child(json.loads(FLAGS.single))
    elif FLAGS.report:
      benchmarks.write_reports(FLAGS.out_dir)
    else:
      child = None if FLAGS.one_process else [sys.executable, __file__, "--single"]
      speed.run_all(configurations(), FLAGS.out_dir, child)
  except speed.NoCudaPlugin as e:  # the same for every configuration: say so once, write nothing
    print(f"error: {e}", file=sys.stderr)
    raise SystemExit(2) from None


def configurations() -> list[dict]:
  """The grid the flags describe (speed.configurations), each run with the flags it records."""
  if FLAGS.fixes and FLAGS["families"].present:
    raise app.UsageError("--fixes sets each net's family: leave --families out")
  if FLAGS.one_process and set(FLAGS.what) != {"kernels"}:
    raise app.UsageError(f"--one_process: {speed.ONE_PROCESS}")
  try:
    return speed.configurations(
      what=FLAGS.what,
      families=FLAGS.families,
      fixes=FLAGS.fixes,
      model_options=speed.parse_model_options(FLAGS.model_options),
      depths=None if FLAGS.fixes and not FLAGS["depths"].present else FLAGS.depths,
      batches=FLAGS.batches,
      dtypes=FLAGS.dtypes,
      stages=FLAGS.stages,
      bn_impls=FLAGS.bn_impls,
      max_unroll_depth=FLAGS.max_unroll_depth,
      settings={k: FLAGS[k].value for k in speed.RECORDED + speed.RECORDED_KERNELS},
    )
  except ValueError as e:
    raise app.UsageError(str(e)) from e


if __name__ == "__main__":
  app.run(main)
