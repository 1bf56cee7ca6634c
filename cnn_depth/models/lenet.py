"""LeNet-5 (LeCun et al. 1998, §II.B), the first of the classic families the depth story compares.

32x32 input, C1 6@5x5, S2, C3 16@5x5 with the paper's Table I connection table, S4, C5 120@5x5,
F6 84, squashing 1.7159 tanh(2a/3). S2/S4 are the original's subsampling (2x2 sums times a trainable
coefficient plus a trainable bias, per map). The Euclidean RBF output is replaced by a dense softmax
layer (`head`). Without the head: exactly the paper's 60,000 trainable parameters. No blocks to
gate.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_depth.layers import Conv
from cnn_depth.models import gating, layout, registry

Dtype = Any


# LeCun et al. 1998, Table I: the S2 maps each C3 map reads (6 read 3 contiguous maps, 6 read 4
# contiguous, 3 read 4 discontinuous, 1 reads all 6): 60 connections of 25 weights,
# + 16 biases = 1,516.
LENET_C3_TABLE = (
  (0, 1, 2),
  (1, 2, 3),
  (2, 3, 4),
  (3, 4, 5),
  (0, 4, 5),
  (0, 1, 5),
  (0, 1, 2, 3),
  (1, 2, 3, 4),
  (2, 3, 4, 5),
  (0, 3, 4, 5),
  (0, 1, 4, 5),
  (0, 1, 2, 5),
  (0, 1, 3, 4),
  (1, 2, 4, 5),
  (0, 2, 3, 5),
  (0, 1, 2, 3, 4, 5),
)


def lecun_tanh(x):
  """LeCun et al. 1998, Appendix A: f(a) = 1.7159 tanh(2a / 3)."""
  return 1.7159 * jnp.tanh(x * (2.0 / 3.0))


class ConnectionTableConv(nn.Module):
  """A 'VALID' convolution in which output map j reads only the input maps `table[j]`.

  Only the connected k x k kernels are parameters (`kernel`: (k, k, connections)), scattered into a
  dense kernel for the convolution; `multiply_adds` counts the connected ones only.
  """

  table: Sequence[Sequence[int]]
  kernel_size: int = 5
  dtype: Dtype = jnp.float32

  def _index(self):
    rows = np.concatenate([np.asarray(t, np.int32) for t in self.table])
    cols = np.concatenate([np.full(len(t), j, np.int32) for j, t in enumerate(self.table)])
    return rows, cols

  def multiply_adds(self, in_shape, out_shape) -> int:
    del in_shape
    return math.prod(out_shape[1:3]) * self.kernel_size**2 * sum(len(t) for t in self.table)

  @nn.compact
  def __call__(self, x):
    k, rows, cols = self.kernel_size, *self._index()
    if rows.max() >= x.shape[-1]:
      raise ValueError(f"the connection table reads map {rows.max()} of a {x.shape[-1]}-map input")
    fan_in = np.asarray([k * k * len(self.table[j]) for j in cols], np.float32)
    init = lambda key, shape, dtype=jnp.float32: (
      jax.random.normal(key, shape, dtype) / np.sqrt(fan_in)
    )
    w = self.param("kernel", init, (k, k, len(rows)), jnp.float32)
    b = self.param("bias", nn.initializers.zeros, (len(self.table),), jnp.float32)
    kernel = (
      jnp.zeros((k, k, x.shape[-1], len(self.table)), jnp.float32).at[:, :, rows, cols].set(w)
    )
    y = lax.conv_general_dilated(
      x.astype(self.dtype),
      kernel.astype(self.dtype),
      (1, 1),
      "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + b.astype(self.dtype)


class Subsampling(nn.Module):
  """LeCun et al. 1998's S-layer: each 2x2 sum times a trainable coefficient plus a trainable bias,
  one pair per map (the squashing follows outside). The coefficient starts at 1/4 (an average)."""

  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    coef = self.param("scale", nn.initializers.constant(0.25), (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    s = nn.avg_pool(x, (2, 2), (2, 2)) * 4.0
    return s * coef.astype(self.dtype) + bias.astype(self.dtype)


class LeNet5(layout.Blockless, nn.Module):
  """LeNet-5 on 32x32 images; smaller ones (MNIST's 28x28) are zero-padded to 32x32 around the
  centre, as LeCun et al. did. See the module docstring."""

  num_classes: int = 10
  # False: C3 reads all six S2 maps (2,416 instead of 1,516 parameters)
  connection_table: bool = True
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    del train
    gating.block_controls(gates, grad_route, 0, "LeNet-5")
    h, w = x.shape[1:3]
    if h > 32 or w > 32:
      raise ValueError(f"LeNet-5 takes images of at most 32x32 (it pads smaller ones), got {h}x{w}")
    top, left = (32 - h) // 2, (32 - w) // 2
    x = jnp.pad(x.astype(self.dtype), ((0, 0), (top, 32 - h - top), (left, 32 - w - left), (0, 0)))
    conv = functools.partial(
      Conv, dtype=self.dtype, conv_impl=self.conv_impl, padding=0, use_bias=True
    )
    x = lecun_tanh(conv(6, 5, name="c1")(x))  # 28x28x6
    x = lecun_tanh(Subsampling(self.dtype, name="s2")(x))  # 14x14x6
    c3 = (
      ConnectionTableConv(LENET_C3_TABLE, 5, self.dtype, name="c3")
      if self.connection_table
      else conv(16, 5, name="c3")
    )
    x = lecun_tanh(c3(x))  # 10x10x16
    x = lecun_tanh(Subsampling(self.dtype, name="s4")(x))  # 5x5x16
    x = lecun_tanh(conv(120, 5, name="c5")(x))  # 1x1x120
    x = x.reshape((x.shape[0], -1))
    x = lecun_tanh(nn.Dense(84, dtype=self.dtype, name="f6")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def lenet5(depth: int = 5, **kw) -> LeNet5:
  """LeNet-5: depth 5 (its five layers with weights: C1, C3, C5, F6 and the output)."""
  registry.only(depth, (5,), "LeNet-5")
  return LeNet5(**kw)


LECUN = (
  "LeCun et al. 1998, §II.B: 60,000 trainable parameters, the RBF output layer excluded (ours: "
  "exactly 60,000, plus an 850-parameter dense output layer)."
)
registry.register(
  registry.Family(
    "lenet5",
    lenet5,
    (),
    "LeNet-5",
    "LeNet-5",
    input_shape=(32, 32, 1),
    published=(registry.Published(5, params=(60e3, LECUN)),),
  )
)
