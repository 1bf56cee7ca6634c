"""Network in Network (Lin et al. 2014): "mlpconv" blocks of a conv and two 1x1 convs, no dense
layer.

The last 1x1 conv has one map per class and is averaged globally. Depth 9 is their CIFAR-10 net
(192-160-96, 192-192-192, 192-192-classes), depth 12 their ImageNet net (96, 256, 384, 1024 maps).
No blocks to gate.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnn_depth.layers import Conv
from cnn_depth.models import gating, layout, registry

Dtype = Any


# depth -> mlpconv blocks (maps of the first conv, its kernel, stride and padding, maps of the two
# 1x1 convs; None = one map per class), the pool after each block ('max', 'avg' or None = global).
NIN_CONFIGS = {
  9: (
    ((192, 5, 1, 2, (160, 96)), "max"),  # Lin et al. 2014, CIFAR-10
    ((192, 5, 1, 2, (192, 192)), "avg"),
    ((192, 3, 1, 1, (192, None)), None),
  ),
  12: (
    ((96, 11, 4, 0, (96, 96)), "max"),  # Lin et al.'s ImageNet model
    ((256, 5, 1, 2, (256, 256)), "max"),
    ((384, 3, 1, 1, (384, 384)), "max"),
    ((1024, 3, 1, 1, (1024, None)), None),
  ),
}


class NiN(layout.Blockless, nn.Module):
  """Network in Network (module docstring). Dropout (0.5) follows the pools of the first two CIFAR
  blocks (Lin et al.'s CIFAR net) or the third block's pool (ImageNet). Pools are 3x3/2: 'SAME' on
  CIFAR (Caffe's ceil mode: 32 -> 16 -> 8), 'VALID' on ImageNet (224 -> 54 -> 26 -> 12 -> 5)."""

  depth: int = 9
  num_classes: int = 10
  dropout: float = 0.5
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    gating.block_controls(gates, grad_route, 0, "NiN")
    if self.depth not in NIN_CONFIGS:
      raise ValueError(f"NiN depth must be 9 (CIFAR) or 12 (ImageNet), got {self.depth}")
    conv = functools.partial(Conv, dtype=self.dtype, conv_impl=self.conv_impl, use_bias=True)
    cifar = self.depth == 9
    dropout_after = (0, 1) if cifar else (2,)
    x = x.astype(self.dtype)
    for i, ((maps, k, stride, pad, ones), pool) in enumerate(NIN_CONFIGS[self.depth]):
      x = nn.relu(conv(maps, k, stride, padding=pad, name=f"mlpconv{i}_conv")(x))
      for j, m in enumerate(ones):
        x = nn.relu(
          conv(self.num_classes if m is None else m, 1, name=f"mlpconv{i}_cccp{j + 1}")(x)
        )
      padding = "SAME" if cifar else "VALID"
      if pool == "max":
        x = nn.max_pool(x, (3, 3), (2, 2), padding=padding)
      elif pool == "avg":
        x = nn.avg_pool(x, (3, 3), (2, 2), padding=padding)
      if i in dropout_after:
        x = gating.dropout(self.dropout, train)(x)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


def nin(depth: int = 9, **kw) -> NiN:
  """Network in Network: depth 9 (CIFAR-10, 10 classes) or 12 (ImageNet, 1000 classes) conv
  layers."""
  registry.only(depth, NIN_CONFIGS, "NiN")
  kw.setdefault("num_classes", 10 if depth == 9 else 1000)
  return NiN(depth, **kw)


registry.register(
  registry.Family(
    "nin",
    nin,
    ("dropout",),
    lambda depth, o: "NiN (CIFAR)" if depth == 9 else "NiN (ImageNet)",
    "NiN",
    # NiN-12 is Lin et al.'s ImageNet net.
    published=(
      registry.Published(9),
      registry.Published(12, input_shape=(224, 224, 3), num_classes=1000),
    ),
  )
)
