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
                "dataset.name", "dataset.validation_size", "batch_size", "seed")


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite (status 'diverged'; the last good checkpoint is kept)."""


class Preempted(RuntimeError):
  """SIGTERM arrived; a checkpoint was saved and status is 'preempted'. Relaunch to resume."""


def num_steps(config, steps_per_epoch: int) -> int:
  if config.num_epochs and config.num_epochs > 0:
    return optim.to_steps(config.num_epochs, "epochs", steps_per_epoch)
  return int(config.num_train_steps)


def make_optimizer(config, steps_per_epoch: int):
  conv = lambda v: optim.to_steps(v, config.lr_unit, steps_per_epoch)
  schedule = optim.step_decay_schedule(
      config.learning_rate, [conv(b) for b in config.lr_boundaries], config.lr_decay,
      warmup_steps=conv(config.warmup), warmup_lr=config.warmup_lr)
  tx = optim.sgd(schedule, config.momentum, config.nesterov, config.weight_decay)
  return tx, schedule


def _gather_train_step(state, images, labels, perm, *, batch_size, steps_per_epoch, batch_sharding,
                       step_fn):
  """Take this step's batch from the device-resident training set, then run the train step."""
  i = state.step % steps_per_epoch
  idx = jax.lax.dynamic_slice(perm, (i * batch_size,), (batch_size,))
  batch = {"image": images[idx], "label": labels[idx]}
  if batch_sharding is not None:
    batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
  return step_fn(state, batch)


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


def _host_metrics(acc) -> dict:
  acc = jax.device_get(acc)
  count = max(float(acc["count"]), 1.0)
  return {"loss": float(acc["loss_sum"]) / count, "error": 1.0 - float(acc["correct"]) / count,
          "count": count}


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
  logs.check_workdir(workdir)
  saved = logs.read_config(workdir)
  if saved is not None:
    logs.check_resume_compatible(saved, cfg_dict, SHAPE_FIELDS)
  if config.on_nonfinite not in ("stop", "skip"):
    raise ValueError(f"on_nonfinite must be 'stop' or 'skip', got {config.on_nonfinite!r}")

  ds = data.load_dataset(config.dataset.name, config.dataset.data_dir or None,
                         validation_size=config.dataset.validation_size, seed=config.seed)
  mesh = sharding.data_mesh()
  sharding.check_batch_size(config.batch_size, mesh)
  repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  steps_per_epoch = len(ds.train_labels) // config.batch_size
  if steps_per_epoch < 1:
    raise ValueError(f"batch_size {config.batch_size} exceeds the {len(ds.train_labels)} training images")
  total = num_steps(config, steps_per_epoch)

  model = models.build_model({**config.model.to_dict(), "num_classes": ds.num_classes})
  tx, schedule = make_optimizer(config, steps_per_epoch)
  state = state_lib.create_train_state(model, tx, jax.random.key(config.seed), ds.image_shape, repl)
  ckpt = ckpt_lib.Checkpointer(os.path.join(os.path.abspath(workdir), "checkpoints"),
                               keep=config.keep_checkpoints)
  start = ckpt.latest_step()
  if start is not None:
    state = ckpt.restore(state, start)
    logs.truncate_metrics(workdir, start)
  logs.write_config(workdir, cfg_dict)
  logs.write_status(workdir, "running", step=int(start or 0), total_steps=total)

  step_fn = functools.partial(
      steps.train_step, model=model, tx=tx, mean=ds.mean, std=ds.std, augment=config.augment,
      crop_padding=ds.crop_padding, flip=ds.flip, log_block_norms=config.log_block_norms,
      skip_nonfinite=config.on_nonfinite == "skip")
  train_step = jax.jit(
      functools.partial(_gather_train_step, batch_size=config.batch_size,
                        steps_per_epoch=steps_per_epoch, batch_sharding=batch_sharding,
                        step_fn=step_fn),
      out_shardings=(repl, None), donate_argnums=(0,))
  eval_fn = functools.partial(steps.eval_step, model=model, mean=ds.mean, std=ds.std)
  eval_batch = config.batch_size
  evaluate = jax.jit(functools.partial(_evaluate_all, batch_size=eval_batch,
                                       batch_sharding=batch_sharding, eval_fn=eval_fn))
  data_key = jax.random.key(config.seed + 1)
  permutation = jax.jit(lambda epoch: jax.random.permutation(
      jax.random.fold_in(data_key, epoch), len(ds.train_labels)), out_shardings=repl)

  train_images = sharding.replicate(ds.train_images, mesh)
  train_labels = sharding.replicate(ds.train_labels.astype(np.int32), mesh)
  test_set = _EvalSet(ds.test_images, ds.test_labels, eval_batch, mesh)
  train_eval_set = _EvalSet(ds.train_images, ds.train_labels, eval_batch, mesh) \
      if config.eval_train_set else None

  preempted = []
  previous_handler = signal.signal(signal.SIGTERM, lambda *_: preempted.append(True)) \
      if _in_main_thread() else None

  step = int(jax.device_get(state.step))
  epoch = step // steps_per_epoch
  perm = permutation(epoch)
  acc, last = None, None
  final: dict[str, Any] = {}
  t_log, n_log = time.perf_counter(), 0
  t_start, step_start = t_log, step
  writer = logs.MetricsWriter(workdir)
  try:
    while step < total:
      if step // steps_per_epoch != epoch:
        epoch = step // steps_per_epoch
        perm = permutation(epoch)
      state, last = train_step(state, train_images, train_labels, perm)
      summed = {k: last[k] for k in ("loss_sum", "correct", "count", "skipped")}
      acc = summed if acc is None else jax.tree_util.tree_map(jnp.add, acc, summed)
      step += 1
      n_log += 1
      if step == step_start + 1:  # the first step compiles: keep it out of images/s
        jax.block_until_ready(last)
        t_log, n_log = time.perf_counter(), 0

      is_last = step == total
      log_now = step % config.log_every_steps == 0 or is_last
      eval_now = step % config.eval_every_steps == 0 or is_last
      ckpt_now = step % config.checkpoint_every_steps == 0 or is_last or preempted
      if not (log_now or eval_now or ckpt_now):
        continue

      tr = _host_metrics(acc)
      finite = math.isfinite(tr["loss"]) and math.isfinite(float(last["param_norm"]))
      if not finite and config.on_nonfinite == "stop":
        logs.write_status(workdir, "diverged", step=step,
                          reason=f"non-finite training loss ({tr['loss']}) by step {step}",
                          last_checkpoint=ckpt.latest_step())
        raise TrainingDiverged(
            f"training loss became {tr['loss']} by step {step}; the last good checkpoint "
            f"(step {ckpt.latest_step()}) is kept in {workdir}/checkpoints")
      record: dict[str, Any] = {}
      if log_now:
        jax.block_until_ready(last)
        now = time.perf_counter()
        rate = n_log * config.batch_size / (now - t_log)
        record.update(epoch=step / steps_per_epoch, lr=float(schedule(step - 1)),
                      train_loss=tr["loss"], train_error=tr["error"], images_per_sec=rate,
                      grad_norm=float(last["grad_norm"]), param_norm=float(last["param_norm"]))
        if config.on_nonfinite == "skip":
          record["skipped_steps"] = float(jax.device_get(acc["skipped"]))
        if config.log_block_norms:
          record["block_grad_norms"] = np.asarray(last["block_grad_norms"]).tolist()
          record["block_param_norms"] = np.asarray(last["block_param_norms"]).tolist()
        final.update(train_loss=tr["loss"], train_error=tr["error"])
        acc, n_log, t_log = None, 0, now
      if eval_now:
        te = _host_metrics(evaluate(state, *test_set.arrays))
        record.update(test_loss=te["loss"], test_error=te["error"])
        final.update(test_loss=te["loss"], test_error=te["error"])
        if train_eval_set is not None:
          tre = _host_metrics(evaluate(state, *train_eval_set.arrays))
          record.update(train_eval_loss=tre["loss"], train_eval_error=tre["error"])
          final.update(train_eval_loss=tre["loss"], train_eval_error=tre["error"])
        t_log = time.perf_counter()  # evaluation time does not count against images/s
      if record:
        writer.write(step, **record)
        elapsed = time.perf_counter() - t_start
        eta = elapsed / max(step - step_start, 1) * (total - step)
        pct = lambda k: f"{100 * final[k]:.2f}%" if k in final else "-"
        print(f"step {step}/{total} | loss {final.get('train_loss', float('nan')):.4f} | "
              f"train err {pct('train_error')} | test err {pct('test_error')} | "
              f"lr {float(schedule(step - 1)):.4g} | "
              f"{record.get('images_per_sec', 0):,.0f} img/s | ETA {_format_eta(eta)}", flush=True)
      if ckpt_now:
        ckpt.save(step, state, force=True)
        if preempted:
          ckpt.wait()
          logs.write_status(workdir, "preempted", step=step, reason="SIGTERM")
          raise Preempted(f"SIGTERM at step {step}: checkpoint saved in {workdir}; relaunch to resume")
    ckpt.wait()
  except (TrainingDiverged, Preempted):
    raise
  except BaseException as e:
    logs.write_status(workdir, "failed", step=step, reason=f"{type(e).__name__}: {e}")
    raise
  finally:
    writer.close()
    ckpt.close()
    if previous_handler is not None:
      signal.signal(signal.SIGTERM, previous_handler)

  final.update(steps=total, epochs=total / steps_per_epoch)
  logs.write_status(workdir, "done", step=total, **{k: v for k, v in final.items()})
  return final


def _in_main_thread() -> bool:
  import threading
  return threading.current_thread() is threading.main_thread()
