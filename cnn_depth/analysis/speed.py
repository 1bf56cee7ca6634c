"""Benchmarks of the project's own compiled train step: its speed, the training loop's share of it,
and the kernels one step launches (`scripts/benchmark.py`).

`configurations` expands a grid (what x family x depth x batch x dtype x stage layout x BN
implementation) into one dict per run, which starts its record. `run_all` runs each in its own
process, so that compile caches and peak-memory counters start fresh: that process calls
`run_child`, which measures (`run_step`, `run_loop` or `run_kernels`) and prints the record on a
`RECORD ` line; the parent prints its table row and appends it to <out_dir>/<device>.jsonl
(`benchmarks.record_file`), then rewrites the Markdown (`benchmarks.write_reports`). Kernel counts
may all run in the parent instead (`run_all` without a child command): they need no fresh process.

A net may carry the fixes for depth: a named preset of models/fixes.py (its net and the optimiser
its paper uses) in place of a family, and/or config.model fields given as `parse_model_options`
reads them; the parent builds each net before anything runs (`check_nets`), so an unknown field
or one the net refuses stops the grid in one sentence, and each record holds them.

The step is the real one: uint8 CIFAR-shaped batches already on the device, normalisation and
pad/crop/flip augmentation inside the step, SGD with momentum and weight decay, BN statistics
updated. Synthetic data only: jax is imported inside the functions that compile (the parent process
and the reports need none), and the step needs only jax, flax and optax; `run_loop` also needs
ml_collections (the training config).
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
import time
from pathlib import Path
from typing import Sequence

from cnn_depth.analysis import benchmarks

WHAT = ("step", "loop", "kernels")
MEAN, STD = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)
MODEL_FIELDS = ("family", "depth", "width", "dtype", "stages", "unroll", "remat", "bn_impl")
# The scripts/benchmark.py flag that sets each (for --model_options's refusal).
GRID_FLAGS = dict(
  zip(MODEL_FIELDS, "families depths width dtypes stages unroll remat bn_impls".split())
)
# The settings every record carries, and those of what=kernels only (scripts/benchmark.py's flags).
RECORDED = ("unroll", "remat", "width", "warmup", "iters", "repeat_seconds", "repeats", "tag")
RECORDED += ("loop_steps", "log_every", "eval_every", "checkpoint_every")
RECORDED_KERNELS = ("target_config", "log_block_norms", "loop_program", "hlo_dir")
RECORD = "RECORD "  # how a child process's stdout line with its record starts
NO_PLUGIN = "--what=kernels compiles for a GPU without one"  # how NoCudaPlugin's message starts
ONE_PROCESS = (
  "only --what=kernels runs in one process: a timing needs a process of its own (fresh compile "
  "caches and peak-memory counters)"
)


class NoCudaPlugin(RuntimeError):
  """what=kernels for a GPU target, and no jax CUDA plugin of this jax's version to compile for it:
  the same for every configuration, so the whole grid stops."""


def configurations(
  *,
  what: Sequence[str],
  families: Sequence[str],
  depths: Sequence[int | str],
  batches: Sequence[int | str],
  dtypes: Sequence[str],
  stages: Sequence[str],
  bn_impls: Sequence[str],
  max_unroll_depth: int,
  settings: dict,
  fixes: Sequence[str] = (),
  model_options: dict | None = None,
) -> list[dict]:
  """One dict per run of the grid, in this order of nesting, stages=unroll above
  `max_unroll_depth` left out (compile time). `settings` holds (at least) RECORDED, and
  RECORDED_KERNELS where `what` has kernels; each run carries those of its kind.

  `fixes` (names of models/fixes.py's presets, or 'all') replace `families`: each preset's net
  with the optimiser its paper uses, at each of `depths` (None: at its `loop_depth`, the smallest
  whose stages scan); a run of a preset records its name as 'fix' and its fields as
  'fix_config'. `model_options` (`parse_model_options`) go into every net and its record. A `what`
  other than WHAT, an unknown preset or a net that refuses its options raises ValueError in one
  sentence before anything runs."""
  unknown = [w for w in what if w not in WHAT]
  if unknown:
    raise ValueError(f"--what takes step, loop and/or kernels, got {unknown[0]!r}")
  nets = _fix_nets(fixes, depths) if fixes else [(f, depths, {}) for f in families]
  options = {"model_options": dict(model_options)} if model_options else {}
  runs = []
  for w, (fam, net_depths, fix) in itertools.product(what, nets):
    grid = itertools.product(net_depths, batches, dtypes, stages, bn_impls)
    for depth, batch, dtype, stage, bn_impl in grid:
      if stage == "unroll" and int(depth) > max_unroll_depth:
        continue
      recorded = RECORDED + (RECORDED_KERNELS if w == "kernels" else ())
      run = dict(what=w, family=fam, depth=int(depth), batch=int(batch), dtype=dtype, stages=stage)
      run = dict(run, bn_impl=bn_impl, **fix, **options)
      runs.append(dict(run, **{k: settings[k] for k in recorded}))
  if fixes or model_options:
    check_nets(runs)
  return runs


def parse_model_options(spec: str) -> dict:
  """'norm=none,branch=fixup' -> {'norm': 'none', 'branch': 'fixup'}: config.model fields besides
  those the grid sets (MODEL_FIELDS), each typed like config.base()'s value and held to its rule
  (config.CHECKS), as scripts/train.py's --config.model overrides are; ValueError in one sentence
  naming the option otherwise. Whether the net takes them is `check_nets`'s question."""
  if not spec:
    return {}  # and no ml_collections to import
  from cnn_depth import config as config_lib

  defaults, options = config_lib.base().model.to_dict(), {}
  for item in filter(None, spec.split(",")):
    key, eq, raw = item.partition("=")
    if key in MODEL_FIELDS:
      raise ValueError(f"--model_options cannot set {key}: the grid's --{GRID_FLAGS[key]} sets it")
    if key not in defaults or not eq:
      raise ValueError(
        f"--model_options takes field=value of config.model's fields, got {item!r}; fields: "
        f"{', '.join(k for k in defaults if k not in MODEL_FIELDS)}"
      )
    try:
      value = config_lib.parse_args(item, **{key: defaults[key]})[key]
    except ValueError:
      raise ValueError(
        f"--model_options {key}={raw!r} must be a {type(defaults[key]).__name__}, as its default "
        f"{defaults[key]!r}"
      ) from None
    must, test = config_lib.CHECKS.get(f"model.{key}", ("", lambda v: True))
    if not test(value):
      raise ValueError(f"--model_options {key}={value!r} cannot be used: it must be {must}")
    options[key] = value
  return options


def _fix_nets(names: Sequence[str], depths) -> list[tuple[str, list, dict]]:
  """(family, depths, the record's 'fix' and 'fix_config') of each named preset ('all': every one),
  at `depths` or, where None, at the preset's loop depth."""
  from cnn_depth.models import fixes

  if list(names) == ["all"]:
    names = list(fixes.PRESETS)
  nets = []
  for name in names:
    try:
      preset = fixes.get(name)
    except ValueError as e:
      raise ValueError(f"--fixes: {e}") from None
    model = {k: v for k, v in preset.model.items() if k not in ("family", "depth")}
    config = {"model": model, "train": dict(preset.train)}
    net_depths = [fixes.loop_depth(preset)] if depths is None else depths
    nets.append((preset.model["family"], net_depths, {"fix": name, "fix_config": config}))
  return nets


def net_fields(cfg: dict) -> dict:
  """The config.model fields of a run's net: the grid's, its preset's, then its model options."""
  fields = {k: cfg[k] for k in MODEL_FIELDS}
  return {**fields, **cfg.get("fix_config", {}).get("model", {}), **cfg.get("model_options", {})}


def check_nets(runs: Sequence[dict]) -> None:
  """Builds each run's net (nothing is compiled): ValueError in one sentence, naming the run, for
  the first that refuses its fields (a fix where it has no meaning, a depth the blocks cannot
  make)."""
  from cnn_depth import models

  built = set()
  for cfg in runs:
    fields = net_fields(cfg)
    if json.dumps(fields, sort_keys=True) in built:
      continue
    try:
      models.build_model(fields)
    except ValueError as e:
      raise ValueError(f"{benchmarks.net_label(cfg)} at depth {cfg['depth']}: {e}") from None
    built.add(json.dumps(fields, sort_keys=True))


def run_all(runs: Sequence[dict], out_dir: str, child: Sequence[str] | None) -> list[dict]:
  """Run each configuration in its own process, `child` + its JSON (a command that calls
  `run_child`), or, with `child` None, all in this one (what=kernels only: a count needs no fresh
  process, and one start of jax and its CUDA plugin serves every compile), print a Markdown table
  of the records (a failed run's row says why), append each record to its .jsonl in `out_dir`
  ('': nowhere) and rewrite the reports there; the records. Raises NoCudaPlugin if a what=kernels
  run found no CUDA plugin."""
  if child is None and any(cfg["what"] != "kernels" for cfg in runs):
    raise ValueError(ONE_PROCESS)
  records, header = [], None
  for cfg in runs:
    if header != benchmarks.header(cfg):
      header = benchmarks.header(cfg)
      print(header, flush=True)
    record = run_in_child(cfg, child) if child else run_here(cfg)
    if record is None:
      continue
    records.append(record)
    print(benchmarks.table_row(record), flush=True)
    if out_dir:
      append_record(out_dir, record)
  if out_dir and records:
    benchmarks.write_reports(out_dir)
  return records


def run_in_child(cfg: dict, child: Sequence[str]) -> dict | None:
  """The record `child` + cfg's JSON prints, or None (and a row saying why) if it fails."""
  proc = subprocess.run([*child, json.dumps(cfg)], capture_output=True, text=True)
  lines = [line for line in proc.stdout.splitlines() if line.startswith(RECORD)]
  if proc.returncode == 0 and lines:
    return json.loads(lines[-1][len(RECORD) :])
  _failed(cfg, proc.stderr.strip().splitlines()[-1:])
  if cfg["what"] == "kernels" and "error: " + NO_PLUGIN in proc.stderr:
    raise NoCudaPlugin(proc.stderr.strip().splitlines()[-1].removeprefix("error: "))
  return None


def run_here(cfg: dict) -> dict | None:
  """`measure(cfg)` in this process, or None (and a row saying why) if it raises; NoCudaPlugin
  stops the grid."""
  try:
    return measure(cfg)
  except NoCudaPlugin:
    raise
  except Exception as e:  # one configuration's failure, reported as run_in_child reports it
    _failed(cfg, [f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"])
    return None


def _failed(cfg: dict, why: list[str]) -> None:
  """The table row of a configuration that gave no record, with `why` (the last lines it said)."""
  print(
    f"| {benchmarks.net_label(cfg)} | {cfg['depth']} | {cfg['batch']} | {cfg['dtype']} "
    f"| {cfg['stages']} | failed: {why} |",
    flush=True,
  )


def append_record(out_dir: str, record: dict) -> None:
  """One JSON line more in the record's file in `out_dir` (`benchmarks.record_file`)."""
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, benchmarks.record_file(record)), "a") as f:
    f.write(json.dumps(record) + "\n")


def run_child(cfg: dict) -> dict:
  """What one configuration's process does: measure it by its `what` and print its record on a
  RECORD line (`run_in_child` reads it)."""
  record = measure(cfg)
  print(RECORD + json.dumps(record), flush=True)
  return record


def measure(cfg: dict) -> dict:
  """One configuration's record, by its `what`: `run_step`, `run_loop` or `run_kernels`."""
  return {"loop": run_loop, "kernels": run_kernels}.get(cfg.get("what"), run_step)(cfg)


def model_and_optimizer(cfg: dict):
  """The benchmarked network (`net_fields`) and the He et al. optimiser (momentum SGD, weight
  decay, step decay), with the optimiser's fixes and learning rate of the run's preset."""
  from cnn_depth import models, optim
  from cnn_depth.models import fixes

  fields = net_fields(cfg)
  if cfg.get("target_config", "local") != "local":
    fields["conv_impl"] = "xla"  # the GPU's convolution, not the CPU backward the host would pick
  model = models.build_model(fields)
  train = cfg.get("fix_config", {}).get("train", {})
  schedule = optim.step_decay_schedule(train.get("learning_rate", 0.1), [32000, 48000])
  tx = optim.sgd(schedule, momentum=0.9, weight_decay=1e-4)
  return model, optim.with_fixes(tx, **{k: train[k] for k in fixes.OPTIMIZER_FIELDS if k in train})


def time_steps(compiled, state, batch, cfg: dict):
  """(cfg with the iterations per repeat, images/s of each timed repeat, the last step's metrics),
  after cfg['warmup'] untimed steps. cfg['iters'] = 0 picks enough for cfg['repeat_seconds'] from
  the warm-up's pace (at least 5)."""
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


def run_step(cfg: dict) -> dict:
  """Compile and time one configuration's bare train step in this process, on every device present
  (the batch sharded over them): its record."""
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
  """The bare step, then `train.train_and_evaluate` on the 'synthetic' dataset for
  cfg['loop_steps'] steps with the config's logging, evaluation and checkpoints at the given
  intervals, in this process: the loop's images/s (its first step, which compiles, excluded) and
  `loop_share`, its fraction of the bare step's."""
  import tempfile

  from cnn_depth import config as config_lib
  from cnn_depth import train

  step = run_step(dict(cfg, what="step"))
  c = config_lib.base()
  c.dataset.name = "synthetic"
  for key, value in net_fields(cfg).items():
    c.model[key] = value
  for key, value in cfg.get("fix_config", {}).get("train", {}).items():
    c[key] = value
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
  for on this host's CPU (which sets jax_platforms to cpu: the host compiles, no GPU is looked
  for). Raises NoCudaPlugin without the jax CUDA plugin of this jax's version."""
  import jax

  if target_config == "local":
    return jax.devices()[0]
  jax.config.update("jax_platforms", "cpu")
  from jax.experimental import topologies

  with open(target_config) as f:
    target = f.read()
  try:
    topo = topologies.get_topology_desc(platform="cuda", target_config=target, topology="1x1x1")
  except Exception as e:  # no CUDA plugin, or one of another jax version
    raise NoCudaPlugin(
      f"{NO_PLUGIN} and needs the jax-cuda12-plugin and jax-cuda12-pjrt wheels of jax "
      f"{jax.__version__} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    ) from e
  return topo.devices[0]


def run_kernels(cfg: dict) -> dict:
  """Compile the step (or, with cfg['loop_program'], the loop's program) for cfg['target_config']
  without its GPU and count the kernels one execution launches (`benchmarks.count_kernels`): its
  record. With cfg['hlo_dir'], the optimised HLO text goes there too."""
  import jax

  local = cfg["target_config"] == "local"
  device = target_device(cfg["target_config"])
  step, args = _kernel_program(cfg, jax.sharding.SingleDeviceSharding(device))
  t0 = time.perf_counter()
  compiled = step.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  kind = getattr(device, "device_kind", device.platform)
  if cfg["hlo_dir"]:
    os.makedirs(cfg["hlo_dir"], exist_ok=True)
    fix = benchmarks.net_label(cfg)[len(cfg["family"]) :]  # the preset and options, if any
    name = f"{cfg['family']}{cfg['depth']}{fix}_b{cfg['batch']}_{cfg['dtype']}_"
    name += benchmarks.layout(cfg)
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


def input_shape(cfg: dict) -> tuple[int, int, int]:
  """The family's own input (ImageNet nets 224x224, LeNet one channel; CIFAR nets 32x32x3)."""
  from cnn_depth import models

  return tuple(models.registry.get(cfg["family"]).input_shape)


def _kernel_program(cfg: dict, on_device):
  """(the jitted program run_kernels compiles, abstract arguments placed on `on_device`): the bare
  step on one batch, or feeds.DeviceData's step on a CIFAR-10-sized set in memory (batch gather,
  step, metric sums), block norms as cfg['log_block_norms']."""
  import jax

  from cnn_depth import state as state_lib
  from cnn_depth import steps

  spec = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=on_device)
  model, tx = model_and_optimizer(cfg)
  shape = input_shape(cfg)
  mean, std = MEAN[: shape[-1]], STD[: shape[-1]]
  shapes = state_lib.train_state_shapes(model, tx, shape)
  state = jax.tree_util.tree_map(lambda a: spec(a.shape, a.dtype), shapes)
  norms = cfg["log_block_norms"]
  if not cfg.get("loop_program"):
    batch = {
      "image": spec((cfg["batch"], *shape), jax.numpy.uint8),
      "label": spec((cfg["batch"],), jax.numpy.int32),
    }
    return steps.compile_train_step(model, tx, mean, std, log_block_norms=norms), (state, batch)
  from cnn_depth import feeds

  step_fn = functools.partial(
    steps.train_step, model=model, tx=tx, mean=mean, std=std, log_block_norms=norms
  )
  step = feeds.compile_gather_step(step_fn, cfg["batch"], 50_000 // cfg["batch"])
  sums = jax.tree_util.tree_map(lambda a: spec(a.shape, a.dtype), jax.eval_shape(feeds.zero_sums))
  labels = spec((50_000,), jax.numpy.int32)
  return step, (state, sums, spec((50_000, *shape), jax.numpy.uint8), labels, labels)
