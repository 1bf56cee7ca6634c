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

--what=kernels needs no GPU: it compiles the same step for a GPU described by --target_config (an
H100 by default) on the CPU of whatever machine runs it ("deviceless" ahead-of-time compilation,
which needs the jax-cuda12-plugin and jax-cuda12-pjrt wheels of the installed jax version) and counts
the kernels one step launches in XLA's optimised HLO: fusions, cuDNN convolutions, cuBLAS calls and
copies, a while loop's body times its trip count, plus one device-to-host sync per loop iteration.
The step is launch-bound at batch 128 (benchmarks/NOTES.md), so the count is what a change to the
step should move; it is a count, not a timing. Records go to kernels_<target>.jsonl and .md.

  pip install jax-cuda12-plugin==$(python -c 'import jax; print(jax.__version__)') jax-cuda12-pjrt==...
  python scripts/benchmark.py --what=kernels --depths=20,56,110 --unroll=64 --bn_impls=fused,flax

Synthetic data only: no data library is imported, so this runs on a machine with just jax/flax/optax.
"""

from __future__ import annotations

import collections
import datetime
import functools
import itertools
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

from absl import app, flags

flags.DEFINE_list(
  "what",
  ["step"],
  "What to measure: step (the bare train step), loop (the training "
  "loop with logging, evaluation and checkpoints, beside the bare step) and/or kernels "
  "(the kernels of one step compiled for --target_config, no GPU needed).",
)
flags.DEFINE_string(
  "target_config",
  os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "benchmarks",
    "gpu_specs",
    "h100_sxm.txtpb",
  ),
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
flags.DEFINE_string(
  "out_dir", "results/benchmarks", "Where <device>.jsonl goes; '' writes nothing."
)
flags.DEFINE_string(
  "tag", "", "Free-text label stored with each record (e.g. the XLA flags tried)."
)
flags.DEFINE_bool(
  "report", False, "Only rewrite <device>.md from every <device>.jsonl in --out_dir."
)
flags.DEFINE_string(
  "single", "", "Internal: run one configuration given as JSON and print its record."
)

FLAGS = flags.FLAGS


MEAN, STD = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)


def model_and_optimizer(cfg: dict):
  """The benchmarked network and the He et al. optimiser (momentum SGD, weight decay, step decay)."""
  from cnn_depth import models, optim

  model = models.build_model(
    {
      "family": cfg["family"],
      "depth": cfg["depth"],
      "width": cfg["width"],
      "dtype": cfg["dtype"],
      "stages": cfg["stages"],
      "unroll": cfg["unroll"],
      "remat": cfg["remat"],
      "bn_impl": cfg["bn_impl"],
    }
  )
  tx = optim.sgd(optim.step_decay_schedule(0.1, [32000, 48000]), momentum=0.9, weight_decay=1e-4)
  return model, tx


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


# HLO instructions that launch nothing on a GPU (views, tuples, constants folded into kernels).
NO_KERNEL = {
  "parameter",
  "get-tuple-element",
  "tuple",
  "bitcast",
  "constant",
  "after-all",
  "add-dependency",
  "opt-barrier",
  "partition-id",
  "replica-id",
  "domain",
}


def parse_hlo(text: str) -> tuple[str, dict[str, list[tuple[str, str]]]]:
  """(entry name, {computation: [(opcode, instruction line)]}) of an HLO module's text."""
  comps: dict[str, list[tuple[str, str]]] = {}
  entry, current = None, None
  for line in text.splitlines():
    head = re.match(r"(ENTRY )?%([\w.\-]+) .*\{\s*$", line)
    if head and not line.startswith(" "):
      current = head.group(2)
      comps[current] = []
      entry = current if head.group(1) else entry
    elif line.startswith("}"):
      current = None
    elif current is not None:
      inst = re.match(r"\s*(?:ROOT )?%[\w.\-]+ = (.*)$", line)
      if inst:
        comps[current].append((_opcode(inst.group(1)), line))
  if entry is None:
    raise ValueError("no ENTRY computation in this HLO text")
  return entry, comps


def _opcode(rhs: str) -> str:
  """The opcode of an instruction's right-hand side: what follows its (possibly tuple) shape."""
  if rhs.startswith("("):  # tuple shape: skip to its closing parenthesis
    depth = 0
    for i, ch in enumerate(rhs):
      depth += (ch == "(") - (ch == ")")
      if depth == 0:
        break
    rhs = rhs[i + 1 :]
  else:
    rhs = rhs.split(" ", 1)[1]
  return re.match(r"\s*([\w\-]+)", rhs).group(1)


def count_kernels(hlo_text: str) -> dict:
  """Kernels one execution of an optimised XLA:GPU module launches, by kind.

  Every instruction outside NO_KERNEL is one launch: a fusion (by its kind: kLoop elementwise, kInput
  reductions and transposes, kCustom Triton/cuDNN fusions), a custom call (cuDNN convolution, cuBLAS
  gemm, by target), a copy. A while loop counts its body times its known trip count, and its
  condition once per iteration plus one, each a device-to-host sync ('loop_syncs'); calls and
  conditionals count their computations once.
  """
  entry, comps = parse_hlo(hlo_text)
  kinds: collections.Counter = collections.Counter()

  def walk(name: str, times: int):
    for op, line in comps[name]:
      if op in NO_KERNEL:
        continue
      if op == "while":
        trip = re.search(r'"known_trip_count":\{"n":"(\d+)"', line)
        if trip is None:
          raise ValueError(f"a while loop without a known trip count: {line.strip()[:200]}")
        n = int(trip.group(1))
        walk(re.search(r"body=%([\w.\-]+)", line).group(1), times * n)
        kinds["loop_syncs"] += times * (n + 1)
      elif op in ("call", "conditional"):
        for callee in re.findall(
          r"(?:to_apply=|calls=|branch_computations=\{|, )%([\w.\-]+)", line
        ):
          walk(callee, times)
      elif op == "fusion":
        kinds["fusion_" + re.search(r"kind=(\w+)", line).group(1)] += times
      elif op == "custom-call":
        target = re.search(r'custom_call_target="([^"]+)"', line).group(1)
        kinds["conv" if "conv" in target.lower() else target] += times
      else:
        kinds[op] += times

  walk(entry, 1)
  syncs = kinds.pop("loop_syncs", 0)
  return {"kernels": sum(kinds.values()), "loop_syncs": syncs, "kernels_by_kind": dict(kinds)}


def run_kernels(cfg: dict) -> dict:
  """Compile the step for --target_config (without its GPU) and count the kernels of one step."""
  import jax

  local = cfg["target_config"] == "local"
  if not local:
    jax.config.update("jax_platforms", "cpu")  # the host compiles; no GPU is looked for
  from jax.experimental import topologies

  from cnn_depth import state as state_lib
  from cnn_depth import steps

  if local:
    device = jax.devices()[0]
  else:
    with open(cfg["target_config"]) as f:
      target = f.read()
    try:
      topo = topologies.get_topology_desc(platform="cuda", target_config=target, topology="1x1x1")
    except Exception as e:  # no CUDA plugin, or one of another jax version
      raise SystemExit(
        f"error: --what=kernels compiles for a GPU without one and needs the "
        f"jax-cuda12-plugin and jax-cuda12-pjrt wheels of jax {jax.__version__} "
        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
      )
    device = topo.devices[0]
  on_device = jax.sharding.SingleDeviceSharding(device)
  spec = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=on_device)
  model, tx = model_and_optimizer(cfg)
  shapes = jax.eval_shape(
    lambda: state_lib.create_train_state(model, tx, jax.random.key(0), (32, 32, 3))
  )
  state = jax.tree_util.tree_map(lambda a: spec(a.shape, a.dtype), shapes)
  batch = {
    "image": spec((cfg["batch"], 32, 32, 3), jax.numpy.uint8),
    "label": spec((cfg["batch"],), jax.numpy.int32),
  }
  if cfg.get("loop_program"):  # feeds.DeviceData's step on a CIFAR-10-sized set
    from cnn_depth import feeds

    step_fn = functools.partial(
      steps.train_step,
      model=model,
      tx=tx,
      mean=MEAN,
      std=STD,
      log_block_norms=cfg["log_block_norms"],
    )
    step = feeds.compile_gather_step(step_fn, cfg["batch"], 50_000 // cfg["batch"])
    sums = jax.tree_util.tree_map(lambda a: spec(a.shape, a.dtype), jax.eval_shape(feeds.zero_sums))
    args = (
      state,
      sums,
      spec((50_000, 32, 32, 3), jax.numpy.uint8),
      spec((50_000,), jax.numpy.int32),
      spec((50_000,), jax.numpy.int32),
    )
  else:
    step = steps.compile_train_step(model, tx, MEAN, STD, log_block_norms=cfg["log_block_norms"])
    args = (state, batch)
  t0 = time.perf_counter()
  compiled = step.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  kind = getattr(device, "device_kind", device.platform)
  if cfg["hlo_dir"]:
    os.makedirs(cfg["hlo_dir"], exist_ok=True)
    name = (
      f"{cfg['family']}{cfg['depth']}_b{cfg['batch']}_{cfg['dtype']}_{layout(cfg)}"
      f"{'_norms' if cfg['log_block_norms'] else ''}"
    ).replace(" ", "_")
    with open(os.path.join(cfg["hlo_dir"], name + ".hlo.txt"), "w") as f:
      f.write(compiled.as_text())
  return dict(
    cfg,
    **count_kernels(compiled.as_text()),
    device=kind if local else f"{kind} (compiled without it)",
    target=kind.replace(" ", "_").lower()
    if local
    else os.path.basename(cfg["target_config"]).split(".")[0],
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
    yield dict(
      what=what,
      family=fam,
      depth=int(depth),
      batch=int(batch),
      dtype=dtype,
      stages=stages,
      unroll=FLAGS.unroll,
      remat=FLAGS.remat,
      bn_impl=bn_impl,
      width=FLAGS.width,
      warmup=FLAGS.warmup,
      iters=FLAGS.iters,
      repeat_seconds=FLAGS.repeat_seconds,
      repeats=FLAGS.repeats,
      tag=FLAGS.tag,
      loop_steps=FLAGS.loop_steps,
      log_every=FLAGS.log_every,
      eval_every=FLAGS.eval_every,
      checkpoint_every=FLAGS.checkpoint_every,
      **(
        {
          "target_config": FLAGS.target_config,
          "log_block_norms": FLAGS.log_block_norms,
          "loop_program": FLAGS.loop_program,
          "hlo_dir": FLAGS.hlo_dir,
        }
        if what == "kernels"
        else {}
      ),
    )


HEADER = (
  "| what | family | depth | batch | dtype | stages | images/s | step ms | compile s | peak GB "
  "| loop share |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


KERNEL_HEADER = (
  "| program | family | depth | batch | dtype | stages | block norms | kernels | conv "
  "| reductions | elementwise | other | loop syncs | compile s (host) |\n"
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def record_file(record: dict) -> str:
  """The .jsonl a record belongs to: one per device, and kernels_<target> for kernel counts."""
  if record["what"] == "kernels":
    return f"kernels_{record['target']}.jsonl"
  return record["device"].replace(" ", "_").lower() + ".jsonl"


def write_reports(out_dir: str):
  """<name>.md for each <name>.jsonl: one table per tag (XLA flags / experiment), in record order."""
  for name in sorted(os.listdir(out_dir)):
    if not name.endswith(".jsonl"):
      continue
    with open(os.path.join(out_dir, name)) as f:
      records = [json.loads(line) for line in f if line.strip()]
    by_tag = {}
    for r in records:
      by_tag.setdefault(r.get("tag") or "untagged", []).append(r)
    first = records[0]
    if first.get("what") == "kernels":
      where = (
        "compiled for the GPU on a CPU host, without it"
        if first["target_config"] != "local"
        else "compiled for the device itself"
      )
      lines = [
        f"# Kernels per train step: {first['device']}",
        "",
        f"Made by `scripts/benchmark.py --what=kernels` (jax {first['jax_version']}, "
        f"{first['date']}); the raw records, with every kind of kernel, are in `{name}`. The "
        f"step is {where}, and the kernels one step launches are counted in the optimised "
        f"HLO: a count, not a timing. Reductions are kInput fusions (transposes included), "
        f"elementwise kLoop fusions; a scanned loop's body counts once per iteration, and "
        f"each iteration also syncs the host.",
        "",
      ]
      header, row = KERNEL_HEADER, kernel_row
    else:
      lines = [
        f"# Train-step benchmark: {first['device']}",
        "",
        f"Made by `scripts/benchmark.py` (jax {first['jax_version']}, {first['date']}); the "
        f"raw records are in `{name}`. Synthetic uint8 CIFAR batches on the device, "
        f"augmentation and SGD inside the step; images/s is the median of the timed repeats.",
        "",
      ]
      header, row = HEADER, table_row
    for tag, rs in by_tag.items():
      flags_used = sorted({r.get("xla_flags", "") for r in rs} - {""})
      lines += [
        f"## {tag}" + (f" (XLA_FLAGS={', '.join(flags_used)})" if flags_used else ""),
        "",
        header,
        *map(row, rs),
        "",
      ]
    with open(os.path.join(out_dir, name[: -len(".jsonl")] + ".md"), "w") as f:
      f.write("\n".join(lines))


def layout(r: dict) -> str:
  """The stages column: layout, unroll factor, remat, and the BN implementation when it is flax's."""
  return (
    f"{r['stages']}{'' if r['unroll'] == 1 else ' u' + str(r['unroll'])}"
    f"{' remat' if r['remat'] else ''}{' flax-bn' if r.get('bn_impl', 'flax') == 'flax' else ''}"
  )


def table_row(r: dict) -> str:
  if r.get("what") == "kernels":
    return kernel_row(r)
  mem = "-" if r.get("peak_mem_gb") is None else f"{r['peak_mem_gb']:.2f}"
  share = f"{100 * r['loop_share']:.1f}%" if r.get("what") == "loop" else "-"
  what = r.get("what", "step") + (f" (eval /{r['eval_every']})" if r.get("what") == "loop" else "")
  return (
    f"| {what} | {r['family']} | {r['depth']} | {r['batch']} | {r['dtype']} | {layout(r)} | "
    f"{r['images_per_sec']:,.0f} | {r['step_ms']:.2f} | {r['compile_s']:.1f} | {mem} | {share} |"
  )


def kernel_row(r: dict) -> str:
  k = r["kernels_by_kind"]
  conv, red, ew = k.get("conv", 0), k.get("fusion_kInput", 0), k.get("fusion_kLoop", 0)
  program = "loop" if r.get("loop_program") else "step"
  return (
    f"| {program} | {r['family']} | {r['depth']} | {r['batch']} | {r['dtype']} | {layout(r)} | "
    f"{'yes' if r['log_block_norms'] else 'no'} | {r['kernels']:,} | {conv} | {red} | {ew} | "
    f"{r['kernels'] - conv - red - ew} | {r['loop_syncs']} | {r['compile_s']:.1f} |"
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
    write_reports(FLAGS.out_dir)
    return
  records, header = [], None
  for cfg in configurations():
    if header != (KERNEL_HEADER if cfg["what"] == "kernels" else HEADER):
      header = KERNEL_HEADER if cfg["what"] == "kernels" else HEADER
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
    print(table_row(record), flush=True)
    if FLAGS.out_dir:
      os.makedirs(FLAGS.out_dir, exist_ok=True)
      with open(os.path.join(FLAGS.out_dir, record_file(record)), "a") as f:
        f.write(json.dumps(record) + "\n")
  if FLAGS.out_dir and records:
    write_reports(FLAGS.out_dir)


if __name__ == "__main__":
  app.run(main)
