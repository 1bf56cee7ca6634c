"""What feeds the train step: a dataset on the device(s), or a stream of host batches.

* `DeviceData`: a CIFAR-sized dataset held on the device(s) in full. Each step gathers its batch
  from this epoch's permutation inside the one compiled step (normalisation and augmentation run
  there too, steps.py), so the host only dispatches. The order depends only on (seed, epoch): a
  resumed run sees exactly what an uninterrupted one would have.
* `StreamData`: ImageNet through grain, host-side decoding and augmentation, host-local batches per
  process. On resume the stream is re-seeded with (seed, step): deterministic, but not the order an
  uninterrupted run would have seen.

Both give `new_sums()`, `train_step(state, sums, step) -> (state, this step's metrics, sums + its
metrics)`, one compiled program whose running sums (`SUMMED`) stay on the device, and
`evaluate(state, split)`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth import evaluation, layers, sharding

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


def _gather_train_step(
  state, sums, images, labels, perm, *, batch_size, steps_per_epoch, batch_sharding, step_fn
):
  """Take this step's batch from the device-resident training set, then run the train step."""
  i = state.step % steps_per_epoch
  idx = jax.lax.dynamic_slice(perm, (i * batch_size,), (batch_size,))
  batch = {"image": images[idx], "label": labels[idx]}
  if batch_sharding is not None:
    batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
  return _accumulating(step_fn)(state, sums, batch)


def compile_gather_step(
  step_fn, batch_size: int, steps_per_epoch: int, repl=None, batch_sharding=None
):
  """What the loop runs each step on a device-resident dataset, compiled: (state, sums, images,
  labels, permutation) -> (state, metrics, sums). The sums are donated, the state is not (see
  steps.compile_train_step)."""
  return jax.jit(
    functools.partial(
      _gather_train_step,
      batch_size=batch_size,
      steps_per_epoch=steps_per_epoch,
      batch_sharding=batch_sharding,
      step_fn=step_fn,
    ),
    out_shardings=(repl, None, repl),
    donate_argnums=(1,),
    compiler_options=layers.compiler_options(),
  )


class DeviceData:
  """An in-memory dataset held on the device(s): batches are gathered and augmented in the step."""

  def __init__(
    self,
    dataset,
    mesh,
    step_fn,
    eval_fn,
    *,
    batch_size: int,
    steps_per_epoch: int,
    seed: int,
    eval_train_set: bool,
  ):
    self.steps_per_epoch = steps_per_epoch
    repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    self.new_sums = jax.jit(zero_sums, out_shardings=repl)
    self._step = compile_gather_step(step_fn, batch_size, steps_per_epoch, repl, batch_sharding)
    self._evaluate = evaluation.SplitSum(eval_fn, batch_sharding=batch_sharding)
    data_key = jax.random.key(seed + 1)
    self._permutation = jax.jit(
      lambda epoch: jax.random.permutation(jax.random.fold_in(data_key, epoch), dataset.num_train),
      out_shardings=repl,
    )
    self._images = sharding.replicate(dataset.train_images, mesh)
    self._labels = sharding.replicate(dataset.train_labels.astype(np.int32), mesh)
    place = functools.partial(sharding.replicate, mesh=mesh)
    self._sets = {
      "test": evaluation.pad_split(dataset.test_images, dataset.test_labels, batch_size, place)
    }
    if eval_train_set:
      self._sets["train"] = evaluation.pad_split(
        dataset.train_images, dataset.train_labels, batch_size, place
      )
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
    return self._evaluate(state, self._sets[split])


class StreamData:
  """A streamed dataset (data.StreamedDataset): host batches, assembled into global arrays."""

  def __init__(self, dataset, mesh, step_fn, eval_fn, *, batch_size: int, seed: int):
    self.mesh, self.seed = mesh, seed
    repl, batch_sharding = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    self.new_sums = jax.jit(zero_sums, out_shardings=repl)
    # The sums are donated, the state is not (steps.compile_train_step says why).
    self._step = jax.jit(
      _accumulating(step_fn),
      in_shardings=(repl, repl, batch_sharding),
      out_shardings=(repl, None, repl),
      donate_argnums=(1,),
      compiler_options=layers.compiler_options(),
    )
    self._eval = jax.jit(
      eval_fn, in_shardings=(repl, batch_sharding), compiler_options=layers.compiler_options()
    )
    self._batches = functools.partial(
      dataset.batches,
      global_batch_size=batch_size,
      shard_index=jax.process_index(),
      shard_count=jax.process_count(),
    )
    self._test_split = dataset.test_split
    self._it = None

  def start(self, step: int):
    self._it = iter(self._batches("train", train=True, seed=self.seed * 1_000_003 + step))

  def train_step(self, state, sums, step: int):
    return self._step(state, sums, sharding.global_batch(next(self._it), self.mesh))

  def splits(self):
    return ["test"]

  def evaluate(self, state, split: str):
    total = None
    for batch in self._batches(self._test_split, train=False):
      sums = self._eval(state, sharding.global_batch(batch, self.mesh))
      total = sums if total is None else jax.tree_util.tree_map(jnp.add, total, sums)
    return total


def make_feed(
  dataset,
  mesh,
  step_fn,
  eval_fn,
  *,
  batch_size: int,
  steps_per_epoch: int,
  seed: int,
  eval_train_set: bool,
):
  """The feed for `dataset`: `StreamData` for a streamed one, else `DeviceData`."""
  if dataset.streamed:
    return StreamData(dataset, mesh, step_fn, eval_fn, batch_size=batch_size, seed=seed)
  return DeviceData(
    dataset,
    mesh,
    step_fn,
    eval_fn,
    batch_size=batch_size,
    steps_per_epoch=steps_per_epoch,
    seed=seed,
    eval_train_set=eval_train_set,
  )
