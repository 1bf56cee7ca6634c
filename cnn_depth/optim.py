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
"""

from __future__ import annotations

import math
from typing import Sequence

import optax

UNITS = ("fraction", "steps", "epochs")


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
  return tx, schedule
