"""The papers' optimiser and learning-rate schedules, as optax transformations.

Durations arrive in the papers' units (He et al.: iterations; Huang et al.: epochs) and are
converted to steps once, here.
"""

from __future__ import annotations

from typing import Sequence

import optax


def to_steps(value: float | int, unit: str, steps_per_epoch: int) -> int:
  """A duration in 'steps' or 'epochs' as a whole number of optimiser steps."""
  if unit == "steps":
    return int(value)
  if unit == "epochs":
    return int(round(value * steps_per_epoch))
  raise ValueError(f"duration unit must be 'steps' or 'epochs', got {unit!r}")


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


def from_config(config, steps_per_epoch: int):
  """(the config's SGD, its lr schedule): lr, boundaries and warm-up in `config.lr_unit`."""
  conv = lambda v: to_steps(v, config.lr_unit, steps_per_epoch)
  schedule = step_decay_schedule(
    config.learning_rate,
    [conv(b) for b in config.lr_boundaries],
    config.lr_decay,
    warmup_steps=conv(config.warmup),
    warmup_lr=config.warmup_lr,
  )
  tx = sgd(schedule, config.momentum, config.nesterov, config.weight_decay)
  return tx, schedule
