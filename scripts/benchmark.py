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

Synthetic data only: no data library is imported, so this runs with just jax, flax and optax.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags

from cnn_depth.analysis import benchmarks

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
flags.DEFINE_list("depths", ["20", "56", "110", "1202"], "Depths.")
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
flags.DEFINE_string("single", "", "Internal: run one configuration (JSON), print its record.")

FLAGS = flags.FLAGS
MEAN, STD = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)


MODEL_FIELDS = ("family", "depth", "width", "dtype", "stages", "unroll", "remat", "bn_impl")
# Flags every record carries, and those of --what=kernels only.
RECORDED = ("unroll", "remat", "width", "warmup", "iters", "repeat_seconds", "repeats", "tag")
RECORDED += ("loop_steps", "log_every", "eval_every", "checkpoint_every")
RECORDED_KERNELS = ("target_config", "log_block_norms", "loop_program", "hlo_dir")


def model_and_optimizer(cfg: dict):
  """The benchmarked network and the He et al. optimiser (momentum SGD, weight decay, step
  decay)."""
  from cnn_depth import models, optim

  model = models.build_model({k: cfg[k] for k in MODEL_FIELDS})
  tx = optim.sgd(optim.step_decay_schedule(0.1, [32000, 48000]), momentum=0.9, weight_decay=1e-4)
  return model, tx


def time_steps(compiled, state, batch, cfg: dict):
  """(cfg with the iterations per repeat, images/s of each timed repeat, the last step's metrics),
  after cfg['warmup'] untimed steps."""
  import jax

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
  return cfg, rates, metrics


def run_one(cfg: dict) -> dict:
  """Compile and time one configuration in this process."""
  import jax
  import numpy as np

  from cnn_depth import sharding, steps
  from cnn_depth import state as state_lib

  mesh = sharding.data_mesh()
  model, tx = model_and_optimizer(cfg)
  repl, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  sharding.check_batch_size(cfg["batch"], mesh)
  state = state_lib.create_train_state(model, tx, jax.random.key(0), (32, 32, 3), repl)
  rng = np.random.default_rng(0)
  batch = jax.device_put(
    {
      "image": rng.integers(0, 256, (cfg["batch"], 32, 32, 3), dtype=np.uint8),
      "label": rng.integers(0, 10, (cfg["batch"],), dtype=np.int32),
    },
    data,
  )
  step = steps.compile_train_step(model, tx, MEAN, STD, repl, data)

  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0

  cfg, rates, metrics = time_steps(compiled, state, batch, cfg)
  loss = float(metrics["loss_sum"]) / cfg["batch"]
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  dev = jax.devices()[0]
  return dict(
    cfg,
    what="step",
    device=getattr(dev, "device_kind", dev.platform),
    num_devices=jax.device_count(),
    platform=dev.platform,
    images_per_sec=statistics.median(rates),
    images_per_sec_all=rates,
    step_ms=1000 * cfg["batch"] / statistics.median(rates),
    compile_s=compile_s,
    peak_mem_gb=None if peak is None else peak / 2**30,
    final_loss=loss,
    jax_version=jax.__version__,
    xla_flags=os.environ.get("XLA_FLAGS", ""),
    date=datetime.date.today().isoformat(),
    host=platform.node(),
  )


def run_loop(cfg: dict) -> dict:
  """The bare step, then `train.train_and_evaluate` on synthetic data, in this process."""
  import tempfile

  from cnn_depth import config as config_lib
  from cnn_depth import train

  step = run_one(dict(cfg, what="step"))
  c = config_lib.base()
  c.dataset.name = "synthetic"
  for key in ("family", "depth", "width", "dtype", "stages", "unroll", "remat"):
    c.model[key] = cfg[key]
  c.model.bn_impl = cfg["bn_impl"]
  c.batch_size, c.num_train_steps = cfg["batch"], cfg["loop_steps"]
  c.log_every_steps, c.eval_every_steps = cfg["log_every"], cfg["eval_every"]
  c.checkpoint_every_steps, c.keep_checkpoints = cfg["checkpoint_every"], 1
  with tempfile.TemporaryDirectory() as workdir:
    t0 = time.perf_counter()
    final = train.train_and_evaluate(c, workdir)
    wall = time.perf_counter() - t0
  loop = final["timed_steps"] * cfg["batch"] / final["timed_seconds"]
  return dict(
    step,
    what="loop",
    images_per_sec=loop,
    images_per_sec_all=[loop],
    step_ms=1000 * cfg["batch"] / loop,
    step_images_per_sec=step["images_per_sec"],
    loop_share=loop / step["images_per_sec"],
    loop_wall_s=wall,
    final_loss=final.get("train_loss"),
  )


def target_device(target_config: str):
  """The first local device ('local'), or the GPU a GpuTargetConfig text proto describes, compiled
  for on this host's CPU."""
  import jax

  if target_config == "local":
    return jax.devices()[0]
  jax.config.update("jax_platforms", "cpu")  # the host compiles; no GPU is looked for
  from jax.experimental import topologies

  with open(target_config) as f:
    target = f.read()
  try:
    topo = topologies.get_topology_desc(platform="cuda", target_config=target, topology="1x1x1")
  except Exception as e:  # no CUDA plugin, or one of another jax version
    raise SystemExit(
      f"error: --what=kernels compiles for a GPU without one and needs the "
      f"jax-cuda12-plugin and jax-cuda12-pjrt wheels of jax {jax.__version__} "
      f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    )
  return topo.devices[0]


def run_kernels(cfg: dict) -> dict:
  """Compile the step for --target_config (without its GPU) and count the kernels of one step."""
  import jax

  from cnn_depth import state as state_lib
  from cnn_depth import steps

  local = cfg["target_config"] == "local"
  device = target_device(cfg["target_config"])
  on_device = jax.sharding.SingleDeviceSharding(device)
  spec = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=on_device)
  model, tx = model_and_optimizer(cfg)
  shapes = state_lib.train_state_shapes(model, tx, (32, 32, 3))
  state = jax.tree_util.tree_map(lambda a: spec(a.shape, a.dtype), shapes)
  batch = {
    "image": spec((cfg["batch"], 32, 32, 3), jax.numpy.uint8),
    "label": spec((cfg["batch"],), jax.numpy.int32),
  }
  if cfg.get("loop_program"):  # feeds.DeviceData's step on a CIFAR-10-sized set
    from cnn_depth import feeds

    norms = cfg["log_block_norms"]
    step_fn = functools.partial(
      steps.train_step, model=model, tx=tx, mean=MEAN, std=STD, log_block_norms=norms
    )
    step = feeds.compile_gather_step(step_fn, cfg["batch"], 50_000 // cfg["batch"])
    sums = jax.tree_util.tree_map(lambda a: spec(a.shape, a.dtype), jax.eval_shape(feeds.zero_sums))
    labels = spec((50_000,), jax.numpy.int32)
    args = (state, sums, spec((50_000, 32, 32, 3), jax.numpy.uint8), labels, labels)
  else:
    step = steps.compile_train_step(model, tx, MEAN, STD, log_block_norms=cfg["log_block_norms"])
    args = (state, batch)
  t0 = time.perf_counter()
  compiled = step.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  kind = getattr(device, "device_kind", device.platform)
  if cfg["hlo_dir"]:
    os.makedirs(cfg["hlo_dir"], exist_ok=True)
    name = f"{cfg['family']}{cfg['depth']}_b{cfg['batch']}_{cfg['dtype']}_{benchmarks.layout(cfg)}"
    name = (name + ("_norms" if cfg["log_block_norms"] else "")).replace(" ", "_")
    Path(cfg["hlo_dir"], name + ".hlo.txt").write_text(compiled.as_text())
  return dict(
    cfg,
    **benchmarks.count_kernels(compiled.as_text()),
    device=kind if local else f"{kind} (compiled without it)",
    target=kind.replace(" ", "_").lower() if local else Path(cfg["target_config"]).stem,
    compile_s=compile_s,
    jax_version=jax.__version__,
    date=datetime.date.today().isoformat(),
    host=platform.node(),
    xla_flags=os.environ.get("XLA_FLAGS", ""),
  )


def configurations():
  for what, fam, depth, batch, dtype, stages, bn_impl in itertools.product(
    FLAGS.what,
    FLAGS.families,
    FLAGS.depths,
    FLAGS.batches,
    FLAGS.dtypes,
    FLAGS.stages,
    FLAGS.bn_impls,
  ):
    if stages == "unroll" and int(depth) > FLAGS.max_unroll_depth:
      continue
    if what not in ("step", "loop", "kernels"):
      raise app.UsageError(f"--what takes step, loop and/or kernels, got {what!r}")
    recorded = RECORDED + (RECORDED_KERNELS if what == "kernels" else ())
    yield dict(
      what=what,
      family=fam,
      depth=int(depth),
      batch=int(batch),
      dtype=dtype,
      stages=stages,
      bn_impl=bn_impl,
      **{k: FLAGS[k].value for k in recorded},
    )


def main(argv):
  del argv
  from cnn_depth import console

  console.quiet_unless_verbose()
  if FLAGS.single:
    cfg = json.loads(FLAGS.single)
    run = {"loop": run_loop, "kernels": run_kernels}.get(cfg.get("what"), run_one)
    record = run(cfg)
    print("RECORD " + json.dumps(record), flush=True)
    return
  if FLAGS.report:
    benchmarks.write_reports(FLAGS.out_dir)
    return
  records, header = [], None
  for cfg in configurations():
    if header != benchmarks.header(cfg):
      header = benchmarks.header(cfg)
      print(header, flush=True)
    proc = subprocess.run(
      [sys.executable, __file__, "--single", json.dumps(cfg)], capture_output=True, text=True
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RECORD ")]
    if proc.returncode or not lines:
      print(
        f"| {cfg['family']} | {cfg['depth']} | {cfg['batch']} | {cfg['dtype']} | {cfg['stages']} "
        f"| failed: {proc.stderr.strip().splitlines()[-1:]} |",
        flush=True,
      )
      if cfg["what"] == "kernels" and "error: --what=kernels" in proc.stderr:
        print(proc.stderr.strip().splitlines()[-1], file=sys.stderr)
        raise SystemExit(2)  # the same for every configuration: no CUDA plugin here
      continue
    record = json.loads(lines[-1][len("RECORD ") :])
    records.append(record)
    print(benchmarks.table_row(record), flush=True)
    if FLAGS.out_dir:
      os.makedirs(FLAGS.out_dir, exist_ok=True)
      with open(os.path.join(FLAGS.out_dir, benchmarks.record_file(record)), "a") as f:
        f.write(json.dumps(record) + "\n")
  if FLAGS.out_dir and records:
    benchmarks.write_reports(FLAGS.out_dir)


if __name__ == "__main__":
  app.run(main)
