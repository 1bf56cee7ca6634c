"""Pure train and eval steps: (state, batch) -> (state, metrics as sums and counts).

The steps take *raw* uint8 images; normalisation and the CIFAR augmentation (He et al. §4.2: 4-pixel
zero pad, random 32x32 crop, horizontal flip) run on the device inside the compiled step, drawn from
`fold_in(state.rng, state.step)`, so a fast accelerator never waits on the host and a resumed run
draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import functools
import operator
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from cnn_depth import layers
from cnn_depth.models import gating, registry
from cnn_depth.state import TrainState


def normalize(images, mean: Sequence[float], std: Sequence[float], dtype=jnp.float32):
  """uint8 (or float in [0, 255]) images -> (x - mean) / std per channel, in `dtype`."""
  x = images.astype(jnp.float32)
  return ((x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)).astype(dtype)


def random_crop_flip(rng, images, pad: int = 4, flip: bool = True):
  """Zero-pad by `pad`, crop back to the original size at a random offset, flip half horizontally.

  One offset and one flip per example. Apply to *normalised* images so the padding is the mean
  (zero after normalisation), as in the papers' code.
  """
  n, h, w, _ = images.shape
  k_off, k_flip = jax.random.split(rng)
  if pad:
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = jax.random.randint(k_off, (n, 2), 0, 2 * pad + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
    images = jax.vmap(crop)(padded, offsets)
  if flip:
    do_flip = jax.random.bernoulli(k_flip, 0.5, (n, 1, 1, 1))
    images = jnp.where(do_flip, images[:, :, ::-1, :], images)
  return images


def cross_entropy(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)


def global_norm(tree) -> jax.Array:
  """The L2 norm of all of `tree`'s leaves together, in float32, as ONE reduction.

  Same value as `optax.tree.norm` (up to summation order), which reduces every leaf on its own: one
  GPU kernel per leaf, about 40 for a scanned CIFAR ResNet and each norm of the step
  (benchmarks/NOTES.md). XLA fuses the concatenation into the reduction's input.
  """
  leaves = [jnp.ravel(a).astype(jnp.float32) for a in jax.tree_util.tree_leaves(tree)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  return jnp.sqrt(jnp.sum(jnp.square(jnp.concatenate(leaves))))


def block_grad_norms(tree, model: nn.Module) -> jax.Array:
  """L2 norm of each block's slice of `tree` (gradients or parameters), in block order.

  One reduction per block layout and stage (a block's leaves, or a scanned stage's stacked leaves,
  concatenated), not one per leaf: every step computes these when training logs them.
  """
  norms = []
  for s, n in enumerate(model.stage_sizes):
    norms.append(global_norm(tree.get(f"stage{s}_block0", {}))[None])
    if f"stage{s}_blocks" in tree:  # scanned layout: leading axis = blocks 1..n-1
      rows = [
        a.reshape(a.shape[0], -1).astype(jnp.float32)
        for a in jax.tree_util.tree_leaves(tree[f"stage{s}_blocks"])
      ]
      norms.append(jnp.sqrt(jnp.sum(jnp.square(jnp.concatenate(rows, axis=1)), axis=1)))
    else:
      norms += [global_norm(tree[f"stage{s}_block{b}"])[None] for b in range(1, n)]
  return jnp.concatenate(norms) if norms else jnp.zeros((0,), jnp.float32)  # LeNet-5, AlexNet, NiN


def training_loss(params, batch_stats, x, labels, rng, *, model: nn.Module):
  """(mean cross-entropy + the auxiliary heads' weighted losses, (logits, per-example losses, new BN
  statistics)) of a training-mode forward pass; `rng` feeds stochastic depth and dropout.

  Auxiliary classifiers (GoogLeNet's) add to the objective only; the metrics stay those of the main
  classifier.
  """
  logits, updates = model.apply(
    {"params": params, "batch_stats": batch_stats},
    x,
    train=True,
    mutable=["batch_stats", registry.AUX_COLLECTION],
    rngs={gating.DROP_RNG: rng},
  )
  losses = cross_entropy(logits, labels)
  aux = jax.tree_util.tree_leaves(
    updates.get(registry.AUX_COLLECTION, {}),
    is_leaf=lambda t: isinstance(t, dict) and "logits" in t,
  )
  aux_loss = sum(a["weight"] * jnp.mean(cross_entropy(a["logits"], labels)) for a in aux)
  return jnp.mean(losses) + aux_loss, (logits, losses, updates["batch_stats"])


def _all_finite(*scalars) -> jax.Array:
  """True where every one of `scalars` is finite."""
  return functools.reduce(operator.and_, [jnp.isfinite(s) for s in scalars])


def _keep_if_finite(finite, new: TrainState, old: TrainState) -> TrainState:
  """`new`'s parameters, BN statistics and optimiser state where `finite`, else `old`'s."""
  keep = lambda a, b: jax.tree_util.tree_map(lambda x, y: jnp.where(finite, x, y), a, b)
  return new.replace(
    params=keep(new.params, old.params),
    batch_stats=keep(new.batch_stats, old.batch_stats),
    opt_state=keep(new.opt_state, old.opt_state),
  )


def train_step(
  state: TrainState,
  batch: dict,
  *,
  model: nn.Module,
  tx: optax.GradientTransformation,
  mean,
  std,
  augment: bool = True,
  crop_padding: int = 4,
  flip: bool = True,
  log_block_norms: bool = False,
  skip_nonfinite: bool = False,
) -> tuple[TrainState, dict]:
  """One SGD step on a batch {'image': uint8 (B, H, W, C), 'label': int (B,)}.

  Returns metrics as sums over the batch (loss_sum, correct, count) so they add up across steps and
  devices; the gradient and parameter L2 norms (and, optionally, per-block gradient norms) are cheap
  diagnostics computed in the same program. With `skip_nonfinite`, a step whose loss or gradients
  are not finite leaves parameters, BN statistics and optimiser state unchanged (counted in
  'nonfinite' and left out of the loss and error sums). The optimiser's own step count does not
  advance on a skipped step, so its schedule then lags the logged lr by the number of skipped steps.
  """
  aug_rng, drop_rng = jax.random.split(jax.random.fold_in(state.rng, state.step))
  x = normalize(batch["image"], mean, std, model.dtype)
  if augment:
    x = random_crop_flip(aug_rng, x, crop_padding, flip)
  labels = batch["label"]
  loss = functools.partial(
    training_loss, batch_stats=state.batch_stats, x=x, labels=labels, rng=drop_rng, model=model
  )
  grads, (logits, losses, batch_stats) = jax.grad(loss, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new_state = state.replace(
    step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state
  )
  grad_norm, param_norm = global_norm(grads), global_norm(params)
  # One scalar says whether anything went non-finite: loss, gradients, new parameters or BN
  # statistics (a float32 norm also overflows for finite values beyond ~1e19: diverged all the
  # same).
  finite = _all_finite(jnp.sum(losses), grad_norm, param_norm, global_norm(batch_stats))
  correct, count = jnp.argmax(logits, -1) == labels, jnp.asarray(labels.shape[0], jnp.int32)
  if skip_nonfinite:
    new_state = _keep_if_finite(finite, new_state, state)
    param_norm = jnp.where(finite, param_norm, global_norm(state.params))
    # A skipped step contributes nothing to the training metrics.
    losses, correct, count = jnp.where(finite, losses, 0.0), correct & finite, count * finite
  metrics = {
    "loss_sum": jnp.sum(losses),
    "correct": jnp.sum(correct),
    "count": count,
    "grad_norm": grad_norm,
    "param_norm": param_norm,
    "nonfinite": (~finite).astype(jnp.int32),
  }
  if log_block_norms:
    metrics["block_grad_norms"] = block_grad_norms(grads, model)
    metrics["block_param_norms"] = block_grad_norms(new_state.params, model)
  return new_state, metrics


def eval_step(state: TrainState, batch: dict, *, model: nn.Module, mean, std, gates=None) -> dict:
  """`eval_sums` of the state's variables."""
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  return eval_sums(variables, batch, model=model, mean=mean, std=std, gates=gates)


def eval_sums(variables, batch: dict, *, model: nn.Module, mean, std, gates=None) -> dict:
  """Sums of loss and correct predictions on a batch, with BN in inference mode.

  `batch` may carry a 'mask' (1 for real examples, 0 for padding that completes the last batch);
  `gates` (one per block) delete or scale blocks, as in the lesion study.
  """
  x = normalize(batch["image"], mean, std, model.dtype)
  logits = model.apply(variables, x, train=False, gates=gates)
  mask = batch.get("mask", jnp.ones(batch["label"].shape, jnp.float32)).astype(jnp.float32)
  return {
    "loss_sum": jnp.sum(cross_entropy(logits, batch["label"]) * mask),
    "correct": jnp.sum((jnp.argmax(logits, -1) == batch["label"]) * mask),
    "count": jnp.sum(mask),
  }


def compile_train_step(model, tx, mean, std, state_sharding=None, batch_sharding=None, **kw):
  """The jitted train step; shardings as given (None: let jit choose).

  The state is not donated. On a GPU, XLA fuses each weight's update with the transpose of its
  gradient out of cuDNN's filter layout, and such a fusion cannot write into its input's buffer, so
  donation adds a copy for every weight and momentum buffer: 38 of ResNet-56's 694 kernels on the
  H100 (benchmarks/NOTES.md). Not donating costs one more state in memory during the step.
  """
  fn = functools.partial(train_step, model=model, tx=tx, mean=tuple(mean), std=tuple(std), **kw)
  return jax.jit(
    fn,
    in_shardings=(state_sharding, batch_sharding),
    out_shardings=(state_sharding, None),
    compiler_options=layers.compiler_options(),
  )
