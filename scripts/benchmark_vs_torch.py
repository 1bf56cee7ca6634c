r"""The project's train step against PyTorch eager, alternated in one run: a ratio, not two timings.

Each side runs in its own process, built once and warmed up, then timed in turns (cnn_depth,
PyTorch, cnn_depth, PyTorch, ...) for --repeats rounds of about --repeat_seconds each, so that a
noisy machine slows both alike. Reported: each side's median images/s, the ratio of the medians
(above 1: we are faster) and the spread of the per-round ratios. The same net on both sides: He et
al.'s CIFAR ResNet with option-A shortcuts (or its plain twin), float32, SGD with momentum 0.9 and
weight decay 1e-4, BN statistics updated, a synthetic batch already in memory. Our step also
normalises and augments uint8 images (pad/crop/flip), about 1 ms of a ResNet-20 step on 2 cores;
PyTorch's gets a ready float batch.

PyTorch is not a dependency: install it with `pip install -e '.[torch]'`, or point --torch_python at
an interpreter that has it. Records go to results/benchmarks/<device>_vs_torch.jsonl and .md.

  python scripts/benchmark_vs_torch.py --depths=20,56 --families=cifar_resnet
  python scripts/benchmark_vs_torch.py --inputs=digits --depths=8,32 \
      --families=cifar_resnet,cifar_plain        # the quickstart's nets
"""

from __future__ import annotations

import datetime
import importlib.util
import itertools
import json
import os
import platform
import sys
import time

from absl import app, flags

from cnn_depth import console
from cnn_depth.analysis import benchmarks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What each --inputs name feeds the net: (height = width, channels, classes).
INPUTS = {"cifar": (32, 3, 10), "digits": (8, 1, 10)}

flags.DEFINE_list("families", ["cifar_resnet"], "cifar_resnet and/or cifar_plain.")
flags.DEFINE_list("depths", ["20", "56"], "Depths (6n+2).")
flags.DEFINE_list("inputs", ["cifar"], f"Input shapes: {', '.join(INPUTS)}.")
flags.DEFINE_integer("batch", 128, "Batch size.")
flags.DEFINE_integer("repeats", 7, "Timed rounds per side; medians are reported.")
flags.DEFINE_float("repeat_seconds", 2.0, "About how long one side's round lasts.")
flags.DEFINE_integer("warmup", 3, "Untimed steps on each side after building.")
flags.DEFINE_string("torch_python", "", "A Python with PyTorch ('': this one).")
flags.DEFINE_bool("torch_channels_last", False, "PyTorch in channels-last (its default is not).")
flags.DEFINE_integer(
  "threads", 0, "PyTorch's intra-op threads (0: the cores this process may use)."
)
flags.DEFINE_string("out_dir", "results/benchmarks", "Where the records go ('': nowhere).")
flags.DEFINE_string("tag", "", "A label stored with each record.")
flags.DEFINE_string("serve", "", "Internal: the cnn_depth side of one net (JSON).")
FLAGS = flags.FLAGS


def serve(spec: dict):
  """The cnn_depth side: compile the real train step, warm up, print one JSON line (ready), then
  for each line N on stdin run N steps and print {"seconds": ...}."""
  import jax
  import numpy as np

  from cnn_depth import layers, models, optim, steps
  from cnn_depth import state as state_lib

  size, channels, classes = spec["image_size"], spec["in_channels"], spec["classes"]
  model = models.build_model(
    {"family": spec["family"], "depth": spec["depth"], "num_classes": classes, "width": 16}
  )
  tx = optim.sgd(0.1, momentum=0.9, weight_decay=1e-4)
  state = state_lib.create_train_state(model, tx, jax.random.key(0), (size, size, channels))
  rng = np.random.default_rng(0)
  batch = {
    "image": rng.integers(0, 256, (spec["batch"], size, size, channels), dtype=np.uint8),
    "label": rng.integers(0, classes, (spec["batch"],), dtype=np.int32),
  }
  batch = jax.device_put(batch)
  step = steps.compile_train_step(model, tx, (128.0,) * channels, (64.0,) * channels)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0

  def run(n):
    t0, s = time.perf_counter(), state
    for _ in range(n):
      s, metrics = compiled(s, batch)
    jax.block_until_ready(metrics)
    return time.perf_counter() - t0

  warm = run(spec["warmup"])
  n_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
  ready = dict(ready=True, params=int(n_params), jax_version=jax.__version__, warmup_s=warm)
  ready.update(compile_s=compile_s, compiler_options=layers.compiler_options())
  ready.update(device=getattr(jax.devices()[0], "device_kind", jax.default_backend()))
  print(json.dumps(ready), flush=True)
  for line in sys.stdin:
    if not line.strip():
      break
    print(json.dumps({"seconds": run(int(line))}), flush=True)


def torch_python() -> str | None:
  """The interpreter for the PyTorch side, or None where there is none."""
  if FLAGS.torch_python:
    return FLAGS.torch_python if os.path.exists(FLAGS.torch_python) else None
  return sys.executable if importlib.util.find_spec("torch") else None


def compare(family: str, depth: int, inputs: str, python: str) -> dict:
  """Build both sides of one net, alternate them, and return the record."""
  size, channels, classes = INPUTS[inputs]
  threads = FLAGS.threads or len(os.sched_getaffinity(0))
  spec = dict(depth=depth, image_size=size, in_channels=channels, classes=classes)
  spec.update(batch=FLAGS.batch, warmup=FLAGS.warmup)
  ours_spec = json.dumps(dict(spec, family=family))
  theirs_spec = dict(spec, residual=family == "cifar_resnet", threads=threads)
  theirs_spec["channels_last"] = FLAGS.torch_channels_last
  sides = {
    "cnn_depth": benchmarks.Server([sys.executable, __file__, f"--serve={ours_spec}"]),
    "torch": benchmarks.Server(
      [python, os.path.join(ROOT, "benchmarks", "torch_reference.py")]
      + ["--serve", json.dumps(theirs_spec)]
    ),
  }
  try:
    if sides["cnn_depth"].ready["params"] != sides["torch"].ready["params"]:
      raise SystemExit(f"error: the two nets differ: {sides['cnn_depth'].ready['params']} vs "
                       f"{sides['torch'].ready['params']} parameters")  # fmt: skip
    rates = benchmarks.alternate(sides, FLAGS.batch, FLAGS.warmup, FLAGS.repeats,
                                 FLAGS.repeat_seconds)  # fmt: skip
  finally:
    for side in sides.values():
      side.close()
  ours, theirs = sides["cnn_depth"].ready, sides["torch"].ready
  return dict(
    benchmarks.ratio_summary(rates["cnn_depth"], rates["torch"]),
    what="vs_torch",
    device=ours["device"],
    family=family,
    depth=depth,
    inputs=inputs,
    batch=FLAGS.batch,
    dtype="float32",
    params=ours["params"],
    compile_s=ours["compile_s"],
    compiler_options=ours["compiler_options"],
    torch_channels_last=FLAGS.torch_channels_last,
    torch_threads=theirs["threads"],
    torch_version=theirs["torch_version"],
    jax_version=ours["jax_version"],
    repeats=FLAGS.repeats,
    repeat_seconds=FLAGS.repeat_seconds,
    xla_flags=os.environ.get("XLA_FLAGS", ""),
    tag=FLAGS.tag,
    cpu=platform.processor() or platform.machine(),
    date=datetime.date.today().isoformat(),
    host=platform.node(),
  )


def main(argv):
  del argv
  console.quiet_unless_verbose()
  if FLAGS.serve:
    return serve(json.loads(FLAGS.serve))
  python = torch_python()
  if python is None:
    print(
      "error: the PyTorch side needs torch: pip install -e '.[torch]', or pass "
      "--torch_python=/path/to/python of an environment that has it",
      file=sys.stderr,
    )
    return 2
  unknown = sorted(set(FLAGS.inputs) - set(INPUTS)) + sorted(
    set(FLAGS.families) - {"cifar_resnet", "cifar_plain"}
  )
  if unknown:
    print(f"error: unknown --inputs or --families: {', '.join(unknown)}", file=sys.stderr)
    return 2
  print(benchmarks.VS_TORCH_HEADER, flush=True)
  for inputs, family, depth in itertools.product(FLAGS.inputs, FLAGS.families, FLAGS.depths):
    record = compare(family, int(depth), inputs, python)
    print(benchmarks.vs_torch_row(record), flush=True)
    if FLAGS.out_dir:
      os.makedirs(FLAGS.out_dir, exist_ok=True)
      with open(os.path.join(FLAGS.out_dir, benchmarks.record_file(record)), "a") as f:
        f.write(json.dumps(record) + "\n")
  if FLAGS.out_dir:
    benchmarks.write_reports(FLAGS.out_dir)
  return 0


if __name__ == "__main__":
  app.run(main)
