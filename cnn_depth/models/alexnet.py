"""AlexNet (Krizhevsky et al. 2012) as torchvision has it: single stream, ReLU, 64-192-384-256-256
maps with 11x11/4, 5x5, 3x3 kernels, 3x3/2 max pools, adaptive 6x6 average pool, dropout 0.5,
4096-4096-classes; no LRN. 61,100,840 parameters at 1000 classes. No blocks to gate.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from cnn_depth import layers
from cnn_depth.layers import Conv
from cnn_depth.models import gating, layout, registry

Dtype = Any


class AlexNet(layout.Blockless, nn.Module):
  """Single-stream AlexNet (torchvision's layout); needs inputs of at least 63x63. `widths` and
  `hidden` exist for tiny test variants; the defaults are the paper's."""

  num_classes: int = 1000
  widths: Sequence[int] = (64, 192, 384, 256, 256)
  hidden: int = 4096
  dropout: float = 0.5
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    gating.block_controls(gates, grad_route, 0, "AlexNet")
    if min(x.shape[1:3]) < 63:
      raise ValueError(
        f"AlexNet needs images of at least 63x63 (three 3x3/2 max pools after a /4 "
        f"convolution), got {x.shape[1]}x{x.shape[2]}"
      )
    conv = functools.partial(Conv, dtype=self.dtype, conv_impl=self.conv_impl, use_bias=True)
    pool = lambda y: nn.max_pool(y, (3, 3), (2, 2))
    w = self.widths
    x = pool(nn.relu(conv(w[0], 11, 4, padding=2, name="conv1")(x.astype(self.dtype))))
    x = pool(nn.relu(conv(w[1], 5, name="conv2")(x)))
    x = nn.relu(conv(w[2], 3, name="conv3")(x))
    x = nn.relu(conv(w[3], 3, name="conv4")(x))
    x = pool(nn.relu(conv(w[4], 3, name="conv5")(x)))
    x = layers.adaptive_avg_pool(x, 6).reshape((x.shape[0], -1))
    for name in ("fc1", "fc2"):
      x = gating.dropout(self.dropout, train)(x)
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=name)(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def alexnet(depth: int = 8, **kw) -> AlexNet:
  """AlexNet: depth 8 (five convolutions, three dense layers)."""
  registry.only(depth, (8,), "AlexNet")
  kw.setdefault("num_classes", 1000)
  return AlexNet(**kw)


KRIZHEVSKY = (
  'Krizhevsky et al. 2012: "60 million parameters" for the two-GPU original; ours is '
  "torchvision's single-stream layout."
)
registry.register(
  registry.Family(
    "alexnet",
    alexnet,
    ("dropout",),
    "AlexNet",
    "AlexNet",
    input_shape=(224, 224, 3),
    num_classes=1000,
    published=(registry.Published(8, params=(60e6, KRIZHEVSKY)),),
  )
)
