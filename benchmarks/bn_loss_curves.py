"""The correctness check of the fused BatchNorm (benchmarks/NOTES.md): the same short run with
bn_impl='fused' and 'flax', its training loss logged at every step, in float32 and bfloat16.

Bit-identical curves are not to be had: the two sum the batch statistics in different orders, and
training at lr 0.1 amplifies float32 rounding differences step by step. So the record shows how the
difference grows from the first step, beside a control that changes nothing but the summation
order: the flax run again on 8 (virtual CPU) devices, where the batch statistics are sums of
per-device sums.

  python benchmarks/bn_loss_curves.py --depth=20 --steps=60 \
      --out=results/benchmarks/bn_loss_curves.md
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_integer("depth", 20, "CIFAR ResNet depth (6n+2).")
flags.DEFINE_integer("steps", 60, "Training steps of each run (the recipe's schedule for them).")
flags.DEFINE_string("out", "", "Markdown file to write ('' prints only).")
flags.DEFINE_string("single", "", "Internal: 'bn_impl,dtype' of one run; prints its losses (JSON).")
FLAGS = flags.FLAGS

SHOW = (1, 2, 3, 5, 10, 20, 30, 40, 50, 60, 80, 100, 150, 200)


def losses(bn_impl: str, dtype: str) -> list[float]:
  """The training loss of every step of one quickstart-recipe run on the embedded digits."""
  sys.path.insert(0, os.path.join(ROOT, "configs"))
  import quickstart  # configs/ is not a package

  from cnn_depth import train

  c = quickstart.get_config(f"depth={FLAGS.depth},steps={FLAGS.steps}")
  c.model.dtype, c.model.bn_impl = dtype, bn_impl
  c.log_every_steps, c.eval_every_steps = 1, FLAGS.steps
  c.eval_train_set, c.log_block_norms = False, False
  with tempfile.TemporaryDirectory() as workdir:
    train.train_and_evaluate(c, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      return [r["train_loss"] for r in map(json.loads, f) if "train_loss" in r]


def run(bn_impl: str, dtype: str, devices: int) -> list[float]:
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  proc = subprocess.run(
    [
      sys.executable,
      __file__,
      f"--single={bn_impl},{dtype}",
      f"--depth={FLAGS.depth}",
      f"--steps={FLAGS.steps}",
    ],
    env=env,
    capture_output=True,
    text=True,
    check=True,
  )
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  if FLAGS.single:
    print(json.dumps(losses(*FLAGS.single.split(","))))
    return
  import jax

  lines = [
    "# Fused vs flax BatchNorm: the same run's training loss, step by step",
    "",
    f"Made by `benchmarks/bn_loss_curves.py` (jax {jax.__version__}, CPU): "
    f"ResNet-{FLAGS.depth} on the embedded digits with the quickstart recipe for "
    f"{FLAGS.steps} steps (batch 128, lr 0.1), seed 0, the loss of each step. |Δ| is the "
    f"relative difference to the flax run on one device; the control is that same flax run "
    f"on 8 devices, which changes only the order in which the batch statistics are summed.",
    "",
  ]
  for dtype in ("float32", "bfloat16"):
    ref, fused, control = run("flax", dtype, 1), run("fused", dtype, 1), run("flax", dtype, 8)
    rel = lambda a, i: abs(a[i] - ref[i]) / abs(ref[i])
    lines += [
      f"## {dtype}",
      "",
      "| step | loss, flax | loss, fused | \\|Δ\\| fused | loss, flax on 8 devices "
      "| \\|Δ\\| control |",
      "|---|---|---|---|---|---|",
    ]
    lines += [
      f"| {s} | {ref[s - 1]:.6f} | {fused[s - 1]:.6f} | {rel(fused, s - 1):.1e} | "
      f"{control[s - 1]:.6f} | {rel(control, s - 1):.1e} |"
      for s in SHOW
      if s <= len(ref)
    ]
    lines.append("")
  text = "\n".join(lines)
  print(text)
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      f.write(text)


if __name__ == "__main__":
  app.run(main)
