r"""Time the project's own compiled train step on whatever devices are present.

For each configuration (family x depth x batch x dtype x stage layout) this measures the lowering +
compile time, the steady-state images/s (median over repeats after warm-up) and the peak device memory
of the real step: uint8 CIFAR-shaped batches already on the device, normalisation and pad/crop/flip
augmentation inside the step, SGD with momentum and weight decay, BN statistics updated. Each
configuration runs in its own subprocess so that compile caches and peak-memory counters start fresh.

Records go to results/benchmarks/<device>.jsonl (one JSON object a line, appended) and a Markdown table
is printed. Example (one H100):

  python scripts/benchmark.py --depths=20,56,110,1202 --batches=128,1024 --dtypes=bfloat16,float32 \
      --stages=scan,unroll --out_dir=results/benchmarks

--what=loop also times the end-to-end training loop, `train.train_and_evaluate` on the 'synthetic'
dataset (CIFAR-10-shaped random data held on the device) with the config's logging (every
--log_every steps, block norms included), evaluation on the 10k test images (every --eval_every) and
checkpoints (every --checkpoint_every and at the end), for --loop_steps steps, and records its
images/s (first step, which compiles, excluded) and `loop_share` = loop images/s / bare-step images/s
measured in the same process. Defaults are the He et al. recipe's intervals (cnn_depth/config.py).

  python scripts/benchmark.py --what=loop --depths=56,110 --loop_steps=3000

Synthetic data only: no data library is imported, so this runs on a machine with just jax/flax/optax.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_list("what", ["step"], "What to time: step (the bare train step) and/or loop (the "
                  "training loop with logging, evaluation and checkpoints, beside the bare step).")
flags.DEFINE_list("families", ["cifar_resnet"], "Model families (cnn_depth.models.FAMILIES).")
flags.DEFINE_list("depths", ["20", "56", "110", "1202"], "Depths.")
flags.DEFINE_list("batches", ["128"], "Global batch sizes.")
flags.DEFINE_list("dtypes", ["bfloat16"], "Computation dtypes (params stay float32).")
flags.DEFINE_list("stages", ["scan"], "Stage layouts: scan and/or unroll.")
flags.DEFINE_integer("unroll", 1, "Scan unroll factor (0: models.resolve_unroll's backend default, "
                     "what the configs use).")
flags.DEFINE_bool("remat", False, "Rematerialise blocks in the backward pass.")
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
flags.DEFINE_string("out_dir", "results/benchmarks", "Where <device>.jsonl goes; '' writes nothing.")
flags.DEFINE_string("tag", "", "Free-text label stored with each record (e.g. the XLA flags tried).")
flags.DEFINE_bool("report", False, "Only rewrite <device>.md from every <device>.jsonl in --out_dir.")
flags.DEFINE_string("single", "", "Internal: run one configuration given as JSON and print its record.")

FLAGS = flags.FLAGS


def run_one(cfg: dict) -> dict:
  """Compile and time one configuration in this process."""
  import jax
  import numpy as np

  from cnn_depth import models, optim, sharding, state as state_lib, steps

  mesh = sharding.data_mesh()
  model = models.build_model({
      "family": cfg["family"], "depth": cfg["depth"], "width": cfg["width"], "dtype": cfg["dtype"],
      "stages": cfg["stages"], "unroll": cfg["unroll"], "remat": cfg["remat"]})
  tx = optim.sgd(optim.step_decay_schedule(0.1, [32000, 48000]), momentum=0.9, weight_decay=1e-4)
  repl, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  sharding.check_batch_size(cfg["batch"], mesh)
  state = state_lib.create_train_state(model, tx, jax.random.key(0), (32, 32, 3), repl)
  rng = np.random.default_rng(0)
  batch = jax.device_put({
      "image": rng.integers(0, 256, (cfg["batch"], 32, 32, 3), dtype=np.uint8),
      "label": rng.integers(0, 10, (cfg["batch"],), dtype=np.int32)}, data)
  step = steps.compile_train_step(model, tx, (125.3, 123.0, 113.9), (63.0, 62.1, 66.7), repl, data)

  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0

  t0 = time.perf_counter()
  for _ in range(cfg["warmup"]):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(metrics)
  if not cfg["iters"]:
    per_step = (time.perf_counter() - t0) / max(cfg["warmup"], 1)
    cfg = dict(cfg, iters=max(5, int(cfg["repeat_seconds"] / per_step)))
  rates = []
  for _ in range(cfg["repeats"]):
    t0 = time.perf_counter()
    for _ in range(cfg["iters"]):
      state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    rates.append(cfg["iters"] * cfg["batch"] / (time.perf_counter() - t0))
  loss = float(metrics["loss_sum"]) / cfg["batch"]
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  dev = jax.devices()[0]
  return dict(
      cfg, what="step", device=getattr(dev, "device_kind", dev.platform), num_devices=jax.device_count(),
      platform=dev.platform, images_per_sec=statistics.median(rates), images_per_sec_all=rates,
      step_ms=1000 * cfg["batch"] / statistics.median(rates), compile_s=compile_s,
      peak_mem_gb=None if peak is None else peak / 2**30, final_loss=loss,
      jax_version=jax.__version__, xla_flags=os.environ.get("XLA_FLAGS", ""),
      date=datetime.date.today().isoformat(), host=platform.node())


def run_loop(cfg: dict) -> dict:
  """The bare step, then `train.train_and_evaluate` on synthetic data, in this process."""
  import tempfile

  from cnn_depth import config as config_lib, train

  step = run_one(dict(cfg, what="step"))
  c = config_lib.base()
  c.dataset.name = "synthetic"
  for key in ("family", "depth", "width", "dtype", "stages", "unroll", "remat"):
    c.model[key] = cfg[key]
  c.batch_size, c.num_train_steps = cfg["batch"], cfg["loop_steps"]
  c.log_every_steps, c.eval_every_steps = cfg["log_every"], cfg["eval_every"]
  c.checkpoint_every_steps, c.keep_checkpoints = cfg["checkpoint_every"], 1
  with tempfile.TemporaryDirectory() as workdir:
    t0 = time.perf_counter()
    final = train.train_and_evaluate(c, workdir)
    wall = time.perf_counter() - t0
  loop = final["timed_steps"] * cfg["batch"] / final["timed_seconds"]
  return dict(step, what="loop", images_per_sec=loop, images_per_sec_all=[loop],
              step_ms=1000 * cfg["batch"] / loop, step_images_per_sec=step["images_per_sec"],
              loop_share=loop / step["images_per_sec"], loop_wall_s=wall,
              final_loss=final.get("train_loss"))


def configurations():
  for what, fam, depth, batch, dtype, stages in itertools.product(
      FLAGS.what, FLAGS.families, FLAGS.depths, FLAGS.batches, FLAGS.dtypes, FLAGS.stages):
    if stages == "unroll" and int(depth) > FLAGS.max_unroll_depth:
      continue
    if what not in ("step", "loop"):
      raise app.UsageError(f"--what takes step and/or loop, got {what!r}")
    yield dict(what=what, family=fam, depth=int(depth), batch=int(batch), dtype=dtype, stages=stages,
               unroll=FLAGS.unroll, remat=FLAGS.remat, width=FLAGS.width, warmup=FLAGS.warmup,
               iters=FLAGS.iters, repeat_seconds=FLAGS.repeat_seconds, repeats=FLAGS.repeats,
               tag=FLAGS.tag, loop_steps=FLAGS.loop_steps, log_every=FLAGS.log_every,
               eval_every=FLAGS.eval_every, checkpoint_every=FLAGS.checkpoint_every)


HEADER = ("| what | family | depth | batch | dtype | stages | images/s | step ms | compile s | peak GB "
          "| loop share |\n|---|---|---|---|---|---|---|---|---|---|---|")


def write_reports(out_dir: str):
  """<device>.md for each <device>.jsonl: one table per tag (XLA flags / experiment), in record order."""
  for name in sorted(os.listdir(out_dir)):
    if not name.endswith(".jsonl"):
      continue
    with open(os.path.join(out_dir, name)) as f:
      records = [json.loads(line) for line in f if line.strip()]
    by_tag = {}
    for r in records:
      by_tag.setdefault(r.get("tag") or "untagged", []).append(r)
    first = records[0]
    lines = [f"# Train-step benchmark: {first['device']}", "",
             f"Made by `scripts/benchmark.py` (jax {first['jax_version']}, {first['date']}); the raw "
             f"records are in `{name}`. Synthetic uint8 CIFAR batches on the device, augmentation and "
             f"SGD inside the step; images/s is the median of the timed repeats.", ""]
    for tag, rs in by_tag.items():
      flags_used = sorted({r.get("xla_flags", "") for r in rs} - {""})
      lines += [f"## {tag}" + (f" (XLA_FLAGS={', '.join(flags_used)})" if flags_used else ""), "",
                HEADER, *map(table_row, rs), ""]
    with open(os.path.join(out_dir, name[:-len(".jsonl")] + ".md"), "w") as f:
      f.write("\n".join(lines))


def table_row(r: dict) -> str:
  mem = "-" if r.get("peak_mem_gb") is None else f"{r['peak_mem_gb']:.2f}"
  share = f"{100 * r['loop_share']:.1f}%" if r.get("what") == "loop" else "-"
  what = r.get("what", "step") + (f" (eval /{r['eval_every']})" if r.get("what") == "loop" else "")
  return (f"| {what} | {r['family']} | {r['depth']} | {r['batch']} | {r['dtype']} | {r['stages']}"
          f"{'' if r['unroll'] == 1 else ' u' + str(r['unroll'])}{' remat' if r['remat'] else ''} | "
          f"{r['images_per_sec']:,.0f} | {r['step_ms']:.2f} | {r['compile_s']:.1f} | {mem} | {share} |")


def main(argv):
  del argv
  if FLAGS.single:
    cfg = json.loads(FLAGS.single)
    record = run_loop(cfg) if cfg.get("what") == "loop" else run_one(cfg)
    print("RECORD " + json.dumps(record), flush=True)
    return
  if FLAGS.report:
    write_reports(FLAGS.out_dir)
    return
  print(HEADER, flush=True)
  records = []
  for cfg in configurations():
    proc = subprocess.run([sys.executable, __file__, "--single", json.dumps(cfg)],
                          capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RECORD ")]
    if proc.returncode or not lines:
      print(f"| {cfg['family']} | {cfg['depth']} | {cfg['batch']} | {cfg['dtype']} | {cfg['stages']} "
            f"| failed: {proc.stderr.strip().splitlines()[-1:] } |", flush=True)
      continue
    record = json.loads(lines[-1][len("RECORD "):])
    records.append(record)
    print(table_row(record), flush=True)
    if FLAGS.out_dir:
      os.makedirs(FLAGS.out_dir, exist_ok=True)
      name = record["device"].replace(" ", "_").lower()
      with open(os.path.join(FLAGS.out_dir, f"{name}.jsonl"), "a") as f:
        f.write(json.dumps(record) + "\n")
  if FLAGS.out_dir and records:
    write_reports(FLAGS.out_dir)


if __name__ == "__main__":
  app.run(main)
