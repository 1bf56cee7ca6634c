"""Counting a model without running it: variable shapes, parameters and multiply-adds per image."""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth.models import layout


def count_params(params) -> int:
  return int(sum(np.prod(a.shape) for a in jax.tree_util.tree_leaves(params)))


def init_shapes(model: nn.Module, image_shape: Sequence[int]):
  """Variable shapes (no computation) for one image of `image_shape` (H, W, C)."""
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
  return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)


def multiply_adds(model: nn.Module, image_shape: Sequence[int]) -> int:
  """Forward multiply-adds per image of every convolution and dense layer (He et al.'s "FLOPs").

  Works on any module called as `model.init(key, x, train=False)`: `nn.Dense` layers are counted
  here, and every other layer that defines `multiply_adds(in_shape, out_shape)` (`layers.Conv`,
  LeNet-5's connection-table convolution) counts itself.
  """
  total = [0]

  def count(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name == "__call__":
      if isinstance(module, nn.Dense):
        total[0] += args[0].shape[-1] * module.features
      elif hasattr(module, "multiply_adds"):
        total[0] += module.multiply_adds(args[0].shape, out.shape)
    return out

  with nn.intercept_methods(count):
    init_shapes(layout.unrolled(model), image_shape)
  return total[0]
