"""train_and_evaluate(config, workdir): the training loop, and only the loop.

CIFAR-sized datasets live on the device(s) in full; each step gathers its batch from this epoch's
permutation, normalises and augments it inside the one compiled step, so the host only dispatches.
Metrics stay on the device as running sums and are fetched every `log_every_steps`. Evaluation over
the whole test set is one compiled program. The data order depends only on (seed, epoch) and the
augmentation/stochastic-depth draws on (seed, step), so a run resumed from a checkpoint continues
exactly as the uninterrupted run would have.

Workdir: config.json, metrics.jsonl, status.json, checkpoints/ (orbax).
"""

from __future__ import annotations

import functools
import math
import os
import signal
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnn_depth import checkpoint as ckpt_lib
from cnn_depth import logs, models, optim, sharding, steps
from cnn_depth import state as state_lib

# Config fields that change array shapes or the data: a workdir trained with other values cannot resume.
SHAPE_FIELDS = ("model.family", "model.depth", "model.width", "model.shortcut", "model.block",
                "model.growth_rate", "model.aux_heads", "model.reduce",
                "dataset.name", "dataset.validation_size", "batch_size", "seed")
# Shape fields added after workdirs were first written: a saved config without one ran with this value.
ADDED_FIELDS = {"model.growth_rate": 0, "model.aux_heads": False, "model.reduce": True}


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite (status 'diverged'; the last good checkpoint is kept)."""


class Preempted(RuntimeError):
  """SIGTERM arrived; a checkpoint was saved and status is 'preempted'. Relaunch to resume."""


def num_steps(config, steps_per_epoch: int) -> int:
  if config.num_epochs and config.num_epochs > 0:
    return optim.to_steps(config.num_epochs, "epochs", steps_per_epoch)
  return int(config.num_train_steps)


OPTIMIZERS = ("sgd",)


def check_config(config, mesh) -> None:
  """Refuses, in one sentence, a config that cannot run: before the workdir or the data are touched."""
  from cnn_depth import data

  if config.on_nonfinite not in ("stop", "skip"):
    raise ValueError(f"on_nonfinite must be 'stop' or 'skip', got {config.on_nonfinite!r}")
  optimizer = config.get("optimizer", "sgd")
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {optimizer!r}; known: 'sgd' (momentum SGD with coupled weight "
                     f"decay, as in the papers; --config.nesterov=true for Nesterov momentum)")
  for every in ("log_every_steps", "eval_every_steps", "checkpoint_every_steps"):
    if config[every] < 1:
      raise ValueError(f"{every} must be a whole number of steps >= 1, got {config[every]}")
  datasets = (*data.KNOWN_DATASETS, "imagenet2012")
  if config.dataset.name not in datasets:
    raise ValueError(f"unknown dataset {config.dataset.name!r}; known: {', '.join(datasets)}")
  if not 0.0 <= config.model.survival_last <= 1.0:
    raise ValueError(f"model.survival_last (the stochastic-depth survival probability p_L of the last "
                     f"block) must lie in [0, 1], got {config.model.survival_last}")
  models.build_model({**config.model.to_dict(), "num_classes": 10})  # family, depth, fields
  sharding.check_batch_size(config.batch_size, mesh)


def make_optimizer(config, steps_per_epoch: int):
  conv = lambda v: optim.to_steps(v, config.lr_unit, steps_per_epoch)
  schedule = optim.step_decay_schedule(
      config.learning_rate, [conv(b) for b in config.lr_boundaries], config.lr_decay,
      warmup_steps=conv(config.warmup), warmup_lr=config.warmup_lr)
  tx = optim.sgd(schedule, config.momentum, config.nesterov, config.weight_decay)
  return tx, schedule


# The metrics summed over a logging interval, on the device.
SUMMED = ("loss_sum", "correct", "count", "nonfinite")


def zero_sums() -> dict:
  return {k: jnp.zeros((), jnp.float32 if k == "loss_sum" else jnp.int32) for k in SUMMED}


def _accumulating(step_fn):
  """step_fn(state, batch) -> (state, metrics) made to also add the metrics into running sums in
  the same compiled program: no separate small dispatches per step for the bookkeeping."""

  def fn(state, sums, batch):
    state, metrics = step_fn(state, batch)
    return state, metrics, {k: sums[k] + metrics[k].astype(sums[k].dtype) for k in SUMMED}

  return fn


def _gather_train_step(state, sums, images, labels, perm, *, batch_size, steps_per_epoch,
                       batch_sharding, step_fn):
  """Take this step's batch from the device-resident training set, then run the train step."""
  i = state.step % steps_per_epoch
  idx = jax.lax.dynamic_slice(perm, (i * batch_size,), (batch_size,))
  batch = {"image": images[idx], "label": labels[idx]}
  if batch_sharding is not None:
    batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
  return _accumulating(step_fn)(state, sums, batch)


def compile_gather_step(step_fn, batch_size: int, steps_per_epoch: int, repl=None,
                        batch_sharding=None):
  """What the loop runs each step on a device-resident dataset, compiled: (state, sums, images,
  labels, permutation) -> (state, metrics, sums). The sums are donated, the state is not (see
  steps.compile_train_step)."""
  return jax.jit(
      functools.partial(_gather_train_step, batch_size=batch_size, steps_per_epoch=steps_per_epoch,
                        batch_sharding=batch_sharding, step_fn=step_fn),
      out_shardings=(repl, None, repl), donate_argnums=(1,))


def _evaluate_all(state, images, labels, mask, *, batch_size, batch_sharding, eval_fn):
  """Sums of loss / correct / count over a padded device-resident set, in one compiled loop."""

  def body(i, acc):
    sl = lambda a: jax.lax.dynamic_slice_in_dim(a, i * batch_size, batch_size)
    batch = {"image": sl(images), "label": sl(labels), "mask": sl(mask)}
    if batch_sharding is not None:
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    return jax.tree_util.tree_map(jnp.add, acc, eval_fn(state, batch))

  zero = {"loss_sum": jnp.zeros(()), "correct": jnp.zeros(()), "count": jnp.zeros(())}
  return jax.lax.fori_loop(0, images.shape[0] // batch_size, body, zero)


class _EvalSet:
  """A dataset split padded to whole batches and placed (replicated) on the mesh."""

  def __init__(self, images, labels, batch_size, mesh):
    n = len(labels)
    pad = (-n) % batch_size
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
    labels = np.concatenate([labels, np.zeros(pad, labels.dtype)])
    put = functools.partial(sharding.replicate, mesh=mesh)
    self.arrays = (put(images), put(labels.astype(np.int32)), put(mask))


class DeviceData:
  """A CIFAR-sized dataset held on the device(s): batches are gathered and augmented in the step."""

  def __init__(self, ds, config, mesh, steps_per_epoch, step_fn, eval_fn):
    self.steps_per_epoch = steps_per_epoch
    repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    self._step = compile_gather_step(step_fn, config.batch_size, steps_per_epoch, repl,
                                     batch_sharding)
    self._evaluate = jax.jit(functools.partial(_evaluate_all, batch_size=config.batch_size,
                                               batch_sharding=batch_sharding, eval_fn=eval_fn))
    data_key = jax.random.key(config.seed + 1)
    self._permutation = jax.jit(lambda epoch: jax.random.permutation(
        jax.random.fold_in(data_key, epoch), len(ds.train_labels)), out_shardings=repl)
    self._images = sharding.replicate(ds.train_images, mesh)
    self._labels = sharding.replicate(ds.train_labels.astype(np.int32), mesh)
    self._sets = {"test": _EvalSet(ds.test_images, ds.test_labels, config.batch_size, mesh)}
    if config.eval_train_set:
      self._sets["train"] = _EvalSet(ds.train_images, ds.train_labels, config.batch_size, mesh)
    self._epoch, self._perm = None, None

  def start(self, step: int):
    """Position the data stream at `step` (the order depends only on seed and epoch)."""

  def train_step(self, state, sums, step: int):
    """(state, this step's metrics, sums + this step's metrics), one compiled program."""
    epoch = step // self.steps_per_epoch
    if epoch != self._epoch:
      self._epoch, self._perm = epoch, self._permutation(epoch)
    return self._step(state, sums, self._images, self._labels, self._perm)

  def splits(self):
    return list(self._sets)

  def evaluate(self, state, split: str):
    return self._evaluate(state, *self._sets[split].arrays)


class StreamData:
  """ImageNet through grain: host-side decoding and augmentation, host-local batches per process.

  On resume the stream is re-seeded with (seed, step): deterministic, but not the same order an
  uninterrupted run would have seen (the in-memory datasets resume exactly).
  """

  def __init__(self, config, mesh, step_fn, eval_fn):
    from cnn_depth import data

    self.config, self.mesh = config, mesh
    repl, self._batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    self._step = jax.jit(_accumulating(step_fn), in_shardings=(repl, repl, self._batch_sharding),
                         out_shardings=(repl, None, repl), donate_argnums=(1,))  # the sums only
    self._eval = jax.jit(eval_fn, in_shardings=(repl, self._batch_sharding))
    self._loader = functools.partial(
        data.imagenet_loader, config.dataset.data_dir, global_batch_size=config.batch_size,
        shard_index=jax.process_index(), shard_count=jax.process_count())
    self._it = None

  def start(self, step: int):
    self._it = iter(self._loader("train", train=True, seed=self.config.seed * 1_000_003 + step))

  def train_step(self, state, sums, step: int):
    return self._step(state, sums, sharding.global_batch(next(self._it), self.mesh))

  def splits(self):
    return ["test"]

  def evaluate(self, state, split: str):
    total = None
    for batch in self._loader("validation", train=False):
      sums = self._eval(state, sharding.global_batch(batch, self.mesh))
      total = sums if total is None else jax.tree_util.tree_map(jnp.add, total, sums)
    return total


def _host_metrics(acc) -> dict:
  """Mean loss and error from summed metrics, in one transfer (plus 'nonfinite' where summed)."""
  acc = jax.device_get(acc)
  count = float(acc["count"])
  extra = {"nonfinite": int(acc["nonfinite"])} if "nonfinite" in acc else {}
  if count == 0:  # e.g. every step of the interval was skipped as non-finite
    return {"loss": math.nan, "error": math.nan, "count": 0.0, **extra}
  return {"loss": float(acc["loss_sum"]) / count, "error": 1.0 - float(acc["correct"]) / count,
          "count": count, **extra}


def _format_eta(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
      f"{seconds // 60}m{seconds % 60:02d}s"


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Train `config` in `workdir` (resuming from its latest checkpoint) and return the final metrics.

  Raises TrainingDiverged or Preempted (after recording the status) so scripts exit non-zero.
  """
  from cnn_depth import data  # data libraries are imported only where data is read

  cfg_dict = config.to_dict()
  mesh = sharding.data_mesh()
  check_config(config, mesh)  # a bad config, then a bad workdir, are refused before anything is written
  logs.check_workdir(workdir)
  saved = logs.read_config(workdir)
  if saved is not None:
    logs.check_resume_compatible(saved, cfg_dict, SHAPE_FIELDS, ADDED_FIELDS)

  repl = sharding.replicated(mesh)
  if config.dataset.name == "imagenet2012":
    info = data.imagenet_info(config.dataset.data_dir)
    mean, std, num_classes, image_shape = info.mean, info.std, info.num_classes, (224, 224, 3)
    crop_padding, flip, augment = 0, False, False  # augmented on the host by the grain pipeline
    num_train = info.num_train
  else:
    ds = data.load_dataset(config.dataset.name, config.dataset.data_dir or None,
                           validation_size=config.dataset.validation_size, seed=config.seed)
    mean, std, num_classes, image_shape = ds.mean, ds.std, ds.num_classes, ds.image_shape
    crop_padding, flip, augment = ds.crop_padding, ds.flip, config.augment
    num_train = len(ds.train_labels)
  steps_per_epoch = num_train // config.batch_size
  if steps_per_epoch < 1:
    raise ValueError(f"batch_size {config.batch_size} exceeds the {num_train} training images")
  total = num_steps(config, steps_per_epoch)
  tx, schedule = make_optimizer(config, steps_per_epoch)

  model = models.build_model({**config.model.to_dict(), "num_classes": num_classes})
  step_fn = functools.partial(
      steps.train_step, model=model, tx=tx, mean=mean, std=std, augment=augment,
      crop_padding=crop_padding, flip=flip, log_block_norms=config.log_block_norms,
      skip_nonfinite=config.on_nonfinite == "skip")
  eval_fn = functools.partial(steps.eval_step, model=model, mean=mean, std=std)
  feed = StreamData(config, mesh, step_fn, eval_fn) if config.dataset.name == "imagenet2012" else \
      DeviceData(ds, config, mesh, steps_per_epoch, step_fn, eval_fn)

  state = state_lib.create_train_state(model, tx, jax.random.key(config.seed), image_shape, repl)
  ckpt = ckpt_lib.Checkpointer(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               keep=config.keep_checkpoints)
  start = ckpt.latest_step()
  main_process = jax.process_index() == 0
  if start is not None and start >= total:  # relaunch of a finished run: nothing to do
    ckpt.close()
    status = logs.read_status(workdir) or {}
    return {k: v for k, v in status.items() if k not in ("status", "time", "unix_time", "step")}
  if start is not None:
    state = ckpt.restore(state, start)
  if main_process:  # lines a killed run wrote after its last checkpoint would be duplicated
    logs.truncate_metrics(workdir, start or 0)
  # Every process computes the same thing; only process 0 writes the workdir's logs.
  write_status = logs.write_status if main_process else lambda *a, **k: None
  if main_process:
    logs.write_config(workdir, cfg_dict)
  write_status(workdir, "running", step=int(start or 0), total_steps=total)

  preempted = []
  multi_process = jax.process_count() > 1
  previous_handler = signal.signal(signal.SIGTERM, lambda *_: preempted.append(True)) \
      if _in_main_thread() else None

  step = int(jax.device_get(state.step))
  feed.start(step)
  new_sums = jax.jit(zero_sums, out_shardings=repl)
  acc, last = new_sums(), None
  final: dict[str, Any] = {}
  t_log, n_log = time.perf_counter(), 0
  t_start, step_start = t_log, step
  writer = logs.MetricsWriter(workdir) if main_process else _NullWriter()
  try:
    while step < total:
      state, last, acc = feed.train_step(state, acc, step)
      step += 1
      n_log += 1
      if step == step_start + 1:  # the first step compiles: keep it out of images/s
        jax.block_until_ready(last)
        t_log, n_log = time.perf_counter(), 0
        t_timed = t_log

      is_last = step == total
      log_now = step % config.log_every_steps == 0 or is_last
      eval_now = step % config.eval_every_steps == 0 or is_last
      # With several processes a SIGTERM is acted on at logging steps only, the same step everywhere.
      stop = _any_process(bool(preempted)) if (log_now or not multi_process) else False
      ckpt_now = step % config.checkpoint_every_steps == 0 or is_last or stop
      if not (log_now or eval_now or ckpt_now):
        continue

      tr = _host_metrics(acc)
      nonfinite = tr["nonfinite"]
      if nonfinite and config.on_nonfinite == "stop":
        reason = (f"non-finite loss, gradients, parameters or BN statistics by step {step} "
                  f"(mean training loss since the last log: {tr['loss']:.4g})")
        write_status(workdir, "diverged", step=step, reason=reason, last_checkpoint=ckpt.latest_step())
        raise TrainingDiverged(f"{reason}; the last good checkpoint (step {ckpt.latest_step()}) is "
                               f"kept in {workdir}/checkpoints")
      record: dict[str, Any] = {}
      lr = float(schedule(step - 1))  # of the update that ended at `step`
      if log_now:
        diagnostics = jax.device_get({k: v for k, v in last.items() if k not in SUMMED})  # one transfer
        now = time.perf_counter()
        rate = n_log * config.batch_size / (now - t_log)
        record.update(epoch=step / steps_per_epoch, lr=lr,
                      train_loss=tr["loss"], train_error=tr["error"], images_per_sec=rate,
                      grad_norm=float(diagnostics["grad_norm"]),
                      param_norm=float(diagnostics["param_norm"]))
        if config.on_nonfinite == "skip":
          record["skipped_steps"] = nonfinite
        if config.log_block_norms:
          record["block_grad_norms"] = np.asarray(diagnostics["block_grad_norms"]).tolist()
          record["block_param_norms"] = np.asarray(diagnostics["block_param_norms"]).tolist()
        final.update(train_loss=tr["loss"], train_error=tr["error"])
        acc, n_log, t_log = new_sums(), 0, now
      if eval_now:
        for split in feed.splits():
          ev = _host_metrics(feed.evaluate(state, split))
          prefix = "test" if split == "test" else "train_eval"
          record.update({f"{prefix}_loss": ev["loss"], f"{prefix}_error": ev["error"]})
          final.update({f"{prefix}_loss": ev["loss"], f"{prefix}_error": ev["error"]})
        t_log = time.perf_counter()  # evaluation time does not count against images/s
      if record:
        writer.write(step, **record)
        elapsed = time.perf_counter() - t_start
        eta = elapsed / max(step - step_start, 1) * (total - step)
        pct = lambda k: f"{100 * final[k]:.2f}%" if k in final else "-"
        if main_process:
          print(f"step {step}/{total} | loss {final.get('train_loss', float('nan')):.4f} | "
                f"train err {pct('train_error')} | test err {pct('test_error')} | "
                f"lr {lr:.4g} | "
                f"{record.get('images_per_sec', 0):,.0f} img/s | ETA {_format_eta(eta)}", flush=True)
      if ckpt_now:
        ckpt.save(step, state, force=True)
        if stop:
          ckpt.wait()
          write_status(workdir, "preempted", step=step, reason="SIGTERM")
          raise Preempted(f"SIGTERM at step {step}: checkpoint saved in {workdir}; relaunch to resume")
    ckpt.wait()
    if step > step_start + 1:  # wall time after the first (compiling) step: evaluation, logs included
      final.update(timed_steps=step - step_start - 1, timed_seconds=time.perf_counter() - t_timed)
  except (TrainingDiverged, Preempted):
    raise
  except BaseException as e:
    write_status(workdir, "failed", step=step, reason=f"{type(e).__name__}: {e}")
    raise
  finally:
    writer.close()
    ckpt.close()
    if previous_handler is not None:
      signal.signal(signal.SIGTERM, previous_handler)

  final.update(steps=total, epochs=total / steps_per_epoch)
  write_status(workdir, "done", step=total, **{k: v for k, v in final.items()})
  return final


class _NullWriter:
  def write(self, step, **scalars):
    pass

  def close(self):
    pass


def _any_process(flag: bool) -> bool:
  """True if `flag` is set in any process (an all-gather; every process must call it)."""
  if jax.process_count() == 1:
    return flag
  from jax.experimental import multihost_utils
  return bool(np.max(multihost_utils.process_allgather(np.int32(flag))))


def _in_main_thread() -> bool:
  import threading
  return threading.current_thread() is threading.main_thread()
