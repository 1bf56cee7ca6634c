"""The papers' optimiser and learning-rate schedules, as optax transformations.

Durations (the lr boundaries and the warm-up) arrive in one of three units and are converted to
steps once, here: 'fraction' of the run (the configs' unit: He et al.'s 32k and 48k of 64k
iterations are 0.5 and 0.75, so a run shortened with --config.num_train_steps keeps its recipe),
'steps' or 'epochs' (the papers' own units, and what workdirs saved before 'fraction' existed
hold).

A fraction f of a run of n steps is floor(f * n) steps (floor(0.75 * 201) = 150, as the digits
configs' `steps * 3 // 4` always gave), where a product within 1e-6 of a whole step counts as that
step (1/3 of 450,360 is 150,120, not 150,119). Fractions are of the run's *first* length: a run
extended later (num_train_steps up on a relaunch) keeps its lr drops where they were, and the
added steps run at the last rate (`from_config`'s `length`).

Two fixes for depth act in the optimiser (`with_fixes`): NFNets' adaptive gradient clipping
(`grad_clip='agc'`) and a learning-rate factor for the scalar parameters and the classifier's bias
(`scalar_lr_scale`, Fixup's lr/10 for its scalar biases, multipliers and classifier bias).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import optax

from cnn_depth.models import layout

UNITS = ("fraction", "steps", "epochs")
GRAD_CLIPS = ("none", "agc")
# The final classifier: NFNets do not clip it (nfnets/experiment_nfnets.py puts the linear layer's
# weights in a group with `clipping=None`; its bias, with the gains and biases, is clipped).
UNCLIPPED = (("head", "kernel"),)
# Trained at scalar_lr_scale besides the scalars: Fixup's cifar_train.py puts every parameter whose
# name holds 'bias' or 'scale' in its lr/10 groups, in its nets the scalar biases, the branch
# multipliers and the classifier's bias.
LR_SCALED = (("head", "bias"),)


def to_steps(value: float | int, unit: str, steps_per_epoch: int, length: int | None = None) -> int:
  """A duration in 'steps', 'epochs' or as a 'fraction' of a run of `length` steps, as a whole
  number of optimiser steps."""
  if unit == "steps":
    return int(value)
  if unit == "epochs":
    return int(round(value * steps_per_epoch))
  if unit == "fraction":
    if length is None:
      raise ValueError("a duration in lr_unit 'fraction' needs the run's length in steps")
    return math.floor(value * length + 1e-6)
  raise ValueError(f"lr_unit must be one of {', '.join(map(repr, UNITS))}, got {unit!r}")


def run_length(config, steps_per_epoch: int) -> int:
  """The run's length in steps: `num_epochs` where > 0, else `num_train_steps`."""
  if config["num_epochs"] and config["num_epochs"] > 0:
    return to_steps(config["num_epochs"], "epochs", steps_per_epoch)
  return int(config["num_train_steps"])


def schedule_steps(config, steps_per_epoch: int, length: int | None = None) -> tuple[list, int]:
  """(the lr boundaries, the warm-up) in steps; fractions are of `length` steps (default: the
  run's own length). config.check refuses a unit or fraction this cannot convert."""
  length = run_length(config, steps_per_epoch) if length is None else length
  conv = lambda v: to_steps(v, config["lr_unit"], steps_per_epoch, length)
  return [conv(b) for b in config["lr_boundaries"]], conv(config["warmup"])


def step_decay_schedule(
  base_lr: float,
  boundaries: Sequence[int],
  decay: float = 0.1,
  warmup_steps: int = 0,
  warmup_lr: float = 0.0,
) -> optax.Schedule:
  """Piecewise-constant lr: `warmup_lr` for `warmup_steps` (He et al. §4.2: 0.01 for ResNet-110/1202
  until training error is below 80%, about 400 iterations), then `base_lr`, multiplied by `decay` at
  each boundary (in steps; He et al. CIFAR: 32k and 48k)."""
  scales = {int(b): decay for b in boundaries}
  if warmup_steps:
    if any(b <= warmup_steps for b in scales):
      raise ValueError(
        f"lr boundaries {sorted(scales)} must come after the warm-up ({warmup_steps} steps)"
      )
    main = optax.piecewise_constant_schedule(
      base_lr, {b - warmup_steps: d for b, d in scales.items()}
    )
    return optax.join_schedules([optax.constant_schedule(warmup_lr), main], [warmup_steps])
  return optax.piecewise_constant_schedule(base_lr, scales)


def sgd(
  learning_rate: optax.Schedule | float,
  momentum: float = 0.9,
  nesterov: bool = False,
  weight_decay: float = 1e-4,
) -> optax.GradientTransformation:
  """SGD with momentum and coupled L2 weight decay, as in the papers' Torch/Caffe code.

  The decay is added to the gradient before momentum (torch.optim.SGD's `weight_decay`), on every
  parameter, BN scale and bias included, as the original implementations did.
  """
  return optax.chain(
    optax.add_decayed_weights(weight_decay),
    optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov),
  )


def from_config(config, steps_per_epoch: int, length: int | None = None):
  """(the config's SGD, its lr schedule): lr, boundaries and warm-up in `config.lr_unit`, fractions
  of `length` steps (default: the run's own length; a resumed run passes its first length)."""
  boundaries, warmup = schedule_steps(config, steps_per_epoch, length)
  schedule = step_decay_schedule(
    config.learning_rate,
    boundaries,
    config.lr_decay,
    warmup_steps=warmup,
    warmup_lr=config.warmup_lr,
  )
  tx = sgd(schedule, config.momentum, config.nesterov, config.weight_decay)
  fixes = {f: config.get(f, d) for f, d in (("grad_clip", "none"), ("clip_lambda", 0.01))}
  return with_fixes(tx, **fixes, scalar_lr_scale=config.get("scalar_lr_scale", 1.0)), schedule


def with_fixes(
  tx: optax.GradientTransformation,
  grad_clip: str = "none",
  clip_lambda: float = 0.01,
  scalar_lr_scale: float = 1.0,
) -> optax.GradientTransformation:
  """`tx` with adaptive gradient clipping before it (`grad_clip='agc'`, `adaptive_grad_clip`) and
  the updates of the scalar parameters and the classifier's bias times `scalar_lr_scale` after it
  (`scale_scalars`).

  As in NFNets' SGD_AGC (deepmind-research nfnets/optim.py), the gradient is clipped before the
  weight decay is added and before momentum. Both fixes are stateless, so the state is `tx`'s own:
  a relaunch may change them (they are recipe fields) and a checkpoint restores either way; with
  the defaults the optimiser is `tx` itself.
  """
  if grad_clip not in GRAD_CLIPS:
    raise ValueError(
      f"grad_clip must be one of {', '.join(map(repr, GRAD_CLIPS))}, got {grad_clip!r}"
    )
  if grad_clip == "none" and scalar_lr_scale == 1.0:
    return tx

  def update(grads, state, params=None):
    if grad_clip == "agc":
      grads = adaptive_grad_clip(grads, params, clip_lambda)
    updates, state = tx.update(grads, state, params)
    return scale_scalars(updates, scalar_lr_scale), state

  return optax.GradientTransformation(tx.init, update)


def _names(path) -> tuple[str, ...]:
  return tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)


def _stacked(names: tuple[str, ...]) -> bool:
  return bool(names) and layout.is_stacked(names[0])


def adaptive_grad_clip(grads, params, clip_lambda: float, eps: float = 1e-3):
  """Adaptive gradient clipping (Brock et al. 2021, "High-performance large-scale image recognition
  without normalization", eq. 3): each output unit's gradient G scaled to
  clip_lambda * max(||W||, eps) / ||G|| where its norm exceeds that, by `optax.adaptive_grad_clip`
  (NFNets' rule, bit for bit). Each scanned block's parameter is clipped on its own (its unit norms
  are the unrolled net's), and the classifier's kernel (`UNCLIPPED`) not at all, as in NFNets."""
  clip = optax.adaptive_grad_clip(clip_lambda, eps)
  one = lambda g, p: clip.update(g, clip.init(p), p)[0]

  def leaf(path, g, p):
    names = _names(path)
    if names in UNCLIPPED:
      return g
    return jax.vmap(one)(g, p) if _stacked(names) else one(g, p)

  return jax.tree_util.tree_map_with_path(leaf, grads, params)


def is_scalar(path, leaf) -> bool:
  """Whether the parameter at `path` is one number per block: shape () (or (1,)), or (n,) stacked
  along a scanned stage's leading axis (Fixup's scalar biases and multipliers, SkipInit's alpha)."""
  shape = leaf.shape[1:] if _stacked(_names(path)) else leaf.shape
  return math.prod(shape) == 1


def scale_scalars(updates, scale: float):
  """`updates` with those of the scalar parameters (`is_scalar`) and the classifier's bias
  (`LR_SCALED`) times `scale`: with SGD, momentum and coupled weight decay, their learning rate
  times `scale`, Fixup's parameter groups (github.com/hongyi-zhang/Fixup, cifar/cifar_train.py:
  lr/10 for its scalar biases, its multipliers and the classifier's bias)."""
  if scale == 1.0:
    return updates
  return jax.tree_util.tree_map_with_path(
    lambda path, u: u * scale if is_scalar(path, u) or _names(path) in LR_SCALED else u, updates
  )
