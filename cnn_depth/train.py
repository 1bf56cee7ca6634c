"""train_and_evaluate(config, workdir): set-up, then the loop with its periodic actions.

The data feeds (feeds.py) run each step as one compiled program: the batch is gathered (or
streamed), normalised and augmented on the device, and the metrics are added into running sums that
stay there until a logging step fetches them. Evaluation over a whole split is one compiled program
too (evaluation.py). The data order depends only on (seed, epoch) and the augmentation and
stochastic-depth draws on (seed, step), so a run resumed from a checkpoint continues exactly as the
uninterrupted run would have.

Workdir (workdir.py): config.json, metrics.jsonl, status.json, checkpoints/ (orbax), and
metrics.jsonl's copy as TensorBoard event files (events.py).
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading

import jax
import ml_collections
import numpy as np

from cnn_depth import checkpoint as ckpt_lib
from cnn_depth import config as config_lib
from cnn_depth import data, feeds, models, optim, reporting, sharding, steps
from cnn_depth import state as state_lib
from cnn_depth import workdir as workdir_lib

# Config fields besides the model's shape fields that change array shapes or the data: a workdir
# trained with other values cannot resume.
RESUME_FIELDS = ("dataset.name", "dataset.validation_size", "batch_size", "seed")
# The recipe: a relaunch of a run with a checkpoint that changes one of these is refused unless
# scripts/train.py's --allow_changes names it (num_train_steps up, extending the run, is always
# allowed); an allowed change is recorded in the workdir's changes.jsonl, config.json stays as it
# was (workdir.check_recipe). The schedule compares as run, in steps, so a spelling that schedules
# the same steps (lr_unit 'steps' (400, 600) and 'fraction' (0.5, 0.75) of 800) is no change.
RECIPE_FIELDS = (
  "num_train_steps",  # the run's length in steps (num_epochs converted)
  "learning_rate",
  "lr_boundaries",  # in steps
  "lr_decay",
  "warmup",  # in steps
  "warmup_lr",
  "optimizer",
  "momentum",
  "nesterov",
  "weight_decay",
  "grad_clip",
  "clip_lambda",
  "scalar_lr_scale",
  "augment",
  "model.survival_last",
  "model.drop_mode",
  "model.dropout",
  "model.bn_groups",
)
# --allow_changes names that stand for recipe fields: the fields their change moves.
RECIPE_ALIASES = {"num_epochs": ("num_train_steps",), "lr_unit": ("lr_boundaries", "warmup")}


class TrainingDiverged(RuntimeError):
  """The loss became NaN or infinite (status 'diverged'; the last good checkpoint is kept)."""


class Preempted(RuntimeError):
  """SIGTERM arrived; a checkpoint was saved and status is 'preempted'. Relaunch to resume."""


def num_steps(config, steps_per_epoch: int) -> int:
  if config.num_epochs and config.num_epochs > 0:
    return optim.to_steps(config.num_epochs, "epochs", steps_per_epoch)
  return int(config.num_train_steps)


def due(step: int, every: int, total: int) -> bool:
  """Whether a periodic action (log, evaluation, checkpoint) runs after `step`: every `every` steps
  and at the last step (`every` 0: at the last step only)."""
  return step == total or (every > 0 and step % every == 0)


def check_config(config, mesh) -> None:
  """Refuses, in one sentence, a config that cannot run: before the workdir or the data are
  touched. The fields' own checks (config.check), then the names against their registries, the
  model against its family and the batch against the devices."""
  config_lib.check(config)
  if config.dataset.name not in data.names():
    raise ValueError(f"unknown dataset {config.dataset.name!r}; known: {', '.join(data.names())}")
  models.build_model(config.model, num_classes=10)  # family, depth, fields
  try:
    sharding.check_batch_size(config.batch_size, mesh)
  except ValueError as e:  # named as the field it comes from
    raise ValueError(f"batch_size={config.batch_size}: {e}") from None
  if config.batch_size % config.model.bn_groups:  # BN's check would come at the first step
    raise ValueError(
      f"model.bn_groups={config.model.bn_groups} does not divide batch_size={config.batch_size} "
      "into equal BN groups; choose a divisor of the batch (1: statistics over the whole batch)"
    )


def resume_fields() -> tuple[str, ...]:
  """The dotted config fields a workdir's saved config must share with a run that resumes it."""
  return (*(f"model.{f}" for f in models.registry.shape_fields()), *RESUME_FIELDS)


make_optimizer = optim.from_config


def open_data(config):
  """(the dataset config.dataset names, whole batches per epoch)."""
  dataset = data.open_dataset(
    config.dataset.name,
    config.dataset.data_dir or None,
    validation_size=config.dataset.validation_size,
    seed=config.seed,
  )
  steps_per_epoch = dataset.num_train // config.batch_size
  if steps_per_epoch < 1:
    raise ValueError(
      f"batch_size={config.batch_size} exceeds the {dataset.num_train} training images of "
      f"{config.dataset.name!r}; set --config.batch_size to at most {dataset.num_train}"
    )
  if num_steps(config, steps_per_epoch) < 1:
    raise ValueError(
      f"num_epochs={config.num_epochs} is less than one step ({steps_per_epoch} steps an epoch); "
      f"set --config.num_epochs to at least {1 / steps_per_epoch:.3g}, or to -1 and set "
      "--config.num_train_steps"
    )
  return dataset, steps_per_epoch


def make_feed(config, dataset, model, tx, mesh, steps_per_epoch: int):
  """The train and eval steps for `model` on `dataset`, compiled into the dataset's feed."""
  augment = config.augment and not dataset.streamed  # a stream augments on the host
  step_fn = functools.partial(
    steps.train_step,
    model=model,
    tx=tx,
    mean=dataset.mean,
    std=dataset.std,
    augment=augment,
    crop_padding=dataset.crop_padding,
    flip=dataset.flip,
    log_block_norms=config.log_block_norms,
    skip_nonfinite=config.on_nonfinite == "skip",
  )
  eval_fn = functools.partial(steps.eval_step, model=model, mean=dataset.mean, std=dataset.std)
  return feeds.make_feed(
    dataset,
    mesh,
    step_fn,
    eval_fn,
    batch_size=config.batch_size,
    steps_per_epoch=steps_per_epoch,
    seed=config.seed,
    eval_train_set=config.eval_train_set,
  )


def allowed_changes(names) -> tuple[str, ...]:
  """The recipe fields `names` (--allow_changes) allow to change; ValueError naming one that is no
  recipe field."""
  allowed = []
  for name in names:
    if name not in RECIPE_FIELDS and name not in RECIPE_ALIASES:
      raise ValueError(
        f"--allow_changes names {name!r}, which is not a field of the recipe; it takes "
        f"{', '.join(RECIPE_FIELDS)} (comma-separated)"
      )
    allowed += RECIPE_ALIASES.get(name, (name,))
  return tuple(allowed)


def recipe(config, steps_per_epoch: int, length: int) -> dict:
  """RECIPE_FIELDS of `config` (a ConfigDict or a saved config.json) as run: the length and the
  schedule in steps, fractions of `length` steps; fields a saved config lacks take base()'s value
  (lr_unit: 'steps', the only unit besides epochs before fractions)."""
  c = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  c.setdefault("lr_unit", "steps")
  defaults = config_lib.base().to_dict()
  out = {}
  for field in RECIPE_FIELDS:
    parent, _, name = field.rpartition(".")
    here, fallback = (c.get(parent) or {}, defaults[parent]) if parent else (c, defaults)
    out[field] = here.get(name, fallback[name])
  out["num_train_steps"] = optim.run_length({**defaults, **c}, steps_per_epoch)
  out["lr_boundaries"], out["warmup"] = optim.schedule_steps(
    {**defaults, **c}, steps_per_epoch, length
  )
  return out


def check_recipe(config, workdir: str, steps_per_epoch: int, allow=()) -> tuple[int, list]:
  """(the length the schedule's fractions are of, the recipe changes to record) for a run of
  `config` in `workdir`; a WorkdirError naming each changed field unless allowed. A workdir without
  a checkpoint after step 0 holds no step of another recipe: a fresh run, nothing compared."""
  saved, step = workdir_lib.read_config(workdir), workdir_lib.latest_checkpoint_step(workdir)
  if saved is None or not step:
    return num_steps(config, steps_per_epoch), []
  first = optim.run_length({**config_lib.base().to_dict(), **saved}, steps_per_epoch)
  run = recipe(saved, steps_per_epoch, first)
  relaunch = recipe(config, steps_per_epoch, first)
  return first, workdir_lib.check_recipe(workdir, step, run, relaunch, allowed_changes(allow))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, allow_changes=()) -> dict:
  """Train `config` in `workdir` (resuming from its latest checkpoint) and return the final metrics.
  `allow_changes`: the recipe fields a relaunch may change (RECIPE_FIELDS; check_recipe).

  Raises TrainingDiverged or Preempted (after recording the status) so scripts exit non-zero. Longer
  than 60 lines on purpose: the whole run reads in one screen, set-up and then the loop, each
  periodic action one call.
  """
  mesh = sharding.data_mesh()
  # A bad config, then bad data, then a bad workdir are refused before anything is written: the
  # workdir is created only once the config and the data passed.
  check_config(config, mesh)
  allowed_changes(allow_changes)
  if not str(workdir).strip():
    raise ValueError("--workdir is empty; give the run's directory, e.g. --workdir=runs/r20")
  dataset, steps_per_epoch = open_data(config)
  total = num_steps(config, steps_per_epoch)
  workdir_lib.check_workdir(workdir)
  workdir_lib.check_resumable(workdir, config.to_dict(), resume_fields(), _saved_defaults())
  length, changes = check_recipe(config, workdir, steps_per_epoch, allow_changes)
  tx, schedule = make_optimizer(config, steps_per_epoch, length)
  model = models.build_model(config.model, num_classes=dataset.num_classes)
  feed = make_feed(config, dataset, model, tx, mesh, steps_per_epoch)
  state = state_lib.create_train_state(
    model, tx, jax.random.key(config.seed), dataset.image_shape, sharding.replicated(mesh)
  )
  ckpt = ckpt_lib.Checkpointer(workdir_lib.checkpoint_dir(workdir), keep=config.keep_checkpoints)
  step = ckpt.latest_step()
  if step is not None and step >= total:  # relaunch of a finished run: nothing to do
    ckpt.close()
    reporting.already_done(workdir, step)
    return _finished(workdir)
  try:  # closed on every path, a refused restore's (exit 2) included: see checkpoint.py
    state, step = (state, 0) if step is None else (ckpt.restore(state, step), step)
    log = reporting.RunLog(workdir, config, total, steps_per_epoch, step)
    if jax.process_index() == 0:  # config.json stays the first launch's: the changes go here
      workdir_lib.record_changes(workdir, step, changes if step else [])
    # The sums of the steps since the last log, as the uninterrupted run had them (zero for a
    # checkpoint saved without them): the next log line averages the same steps.
    acc, sigterm = _sums(feed.new_sums(), ckpt.restore_sums(step) if step else None), _Sigterm()
  except BaseException:
    ckpt.close()
    raise
  periods = (config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps)
  try:
    log.compiling(
      models.registry.get(config.model.family).net_label(config.model.depth, config.model)
    )
    feed.start(step)
    while step < total:
      state, last, acc = feed.train_step(state, acc, step)
      step += 1
      log.clock.tick(last)
      log_now, eval_now, ckpt_now = (due(step, p, total) for p in periods)
      stop = sigterm.agreed(log_now)
      if not (log_now or eval_now or ckpt_now or stop):
        continue
      sums = _host_metrics(acc)
      if sums["nonfinite"] and config.on_nonfinite == "stop":
        raise TrainingDiverged(log.diverged(step, sums, ckpt.latest_step()))
      lr = float(schedule(step - 1))  # of the update that ended at `step`
      record = {}
      if log_now:
        record, acc = log.train_record(step, sums, last, lr), feed.new_sums()
      if eval_now:
        for split in feed.splits():
          record.update(log.eval_record(split, _host_metrics(feed.evaluate(state, split))))
        log.clock.resume()  # evaluation time does not count against images/s
      log.write(step, record, lr)
      if ckpt_now or stop:
        ckpt.save(step, state, force=True, sums=jax.device_get(acc))
      if stop:
        ckpt.wait()
        raise Preempted(log.preempted(step))
    ckpt.wait()
  except (TrainingDiverged, Preempted):
    raise
  except BaseException as e:
    log.status("failed", step=step, reason=f"{type(e).__name__}: {e}")
    raise
  finally:
    with contextlib.ExitStack() as closing:  # each closed even if one before it fails (full disk)
      closing.callback(sigterm.close)
      closing.callback(ckpt.close)  # waits for the last save: no orbax thread outlives the run
      log.close()
  return log.done(step)


def _saved_defaults() -> dict:
  """The value of each model field for saved configs written before the field existed."""
  return {f"model.{name}": value for name, value in models.registry.defaults().items()}


def _finished(workdir: str) -> dict:
  status = workdir_lib.read_status(workdir) or {}
  return {k: v for k, v in status.items() if k not in ("status", "time", "unix_time", "step")}


def _sums(zeros, saved: dict | None):
  """The running sums `saved` with a checkpoint, placed like `zeros` (feed.new_sums()); `zeros`
  where nothing was saved. A compiled constant, so every process of a run makes the same array."""
  if not saved:
    return zeros
  values = {k: np.asarray(saved.get(k, 0), zeros[k].dtype) for k in zeros}
  place = jax.tree.map(lambda z: z.sharding, zeros)
  make = lambda: {k: jax.numpy.asarray(v) for k, v in values.items()}
  return jax.jit(make, out_shardings=place)()


def _host_metrics(acc) -> dict:
  """Mean loss and error from summed metrics, in one transfer (plus 'nonfinite' where summed)."""
  acc = jax.device_get(acc)
  count = float(acc["count"])
  extra = {"nonfinite": int(acc["nonfinite"])} if "nonfinite" in acc else {}
  if count == 0:  # e.g. every step of the interval was skipped as non-finite
    return {"loss": math.nan, "error": math.nan, "count": 0.0, **extra}
  return {
    "loss": float(acc["loss_sum"]) / count,
    "error": 1.0 - float(acc["correct"]) / count,
    "count": count,
    **extra,
  }


class _Sigterm:
  """Records SIGTERM (in the main thread) until `close`. With several processes it is acted on at
  logging steps only, once every process has been asked (an all-gather), so all stop at one step."""

  def __init__(self):
    self.flag = []
    in_main = threading.current_thread() is threading.main_thread()
    self._previous = (
      signal.signal(signal.SIGTERM, lambda *_: self.flag.append(True)) if in_main else None
    )

  def agreed(self, log_step: bool) -> bool:
    if jax.process_count() == 1:
      return bool(self.flag)
    if not log_step:
      return False
    from jax.experimental import multihost_utils

    return bool(np.max(multihost_utils.process_allgather(np.int32(bool(self.flag)))))

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
