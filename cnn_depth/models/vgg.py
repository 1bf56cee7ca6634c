"""VGG-11/13/16/19 (Simonyan & Zisserman 2015, configurations A/B/D/E), with or without BN.

3x3 convs in five stages of 64-128-256-512-512 maps separated by 2x2 max pools, adaptive 7x7 average
pool, 4096-4096-classes with dropout 0.5; with BN after each convolution, the convolutions keep
their bias, as in torchvision. `head='cifar'` is the CIFAR-sized variant: the same stacks, then a
global average (1x1 after five pools at 32x32) and one dense layer.

Blocks: a block is one conv (+BN) + ReLU layer, a stage the run of layers between two pools. Gate 0
replaces a layer whose input and output shapes agree by the identity ("deleting a VGG layer where
shapes allow"); where the layer widens the channels (the first of stages 0-3) its input is
zero-padded instead, and `shape_changing_blocks()` marks it (gating.delete_to_identity).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from cnn_depth import layers
from cnn_depth.layers import Conv
from cnn_depth.models import gating, layout, registry

Dtype = Any


VGG_STAGES = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
VGG_CONFIGURATIONS = {11: "A", 13: "B", 16: "D", 19: "E"}  # Simonyan & Zisserman 2015, Table 1


class VGGLayer(nn.Module):
  """One VGG layer, conv3x3 (+ BN) + ReLU, gated like a plain block (module docstring)."""

  features: int
  bn: bool
  norm: Callable[..., nn.Module]
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, gate=None, route=None):
    y = Conv(self.features, 3, 1, self.dtype, self.conv_impl, use_bias=True, name="conv")(x)
    y = self.norm(name="bn", relu=True)(y) if self.bn else nn.relu(y)
    return gating.delete_to_identity(x, y, gate, route)


class VGG(layout.Blocks, nn.Module):
  """VGG stacks (module docstring). Stage s has `stage_sizes[s]` layers of min(2^s, 8) x `width`
  maps.

  Pooling: a 2x2/2 max pool ends each of the last p stages, p = min(stages, floor(log2(min(H, W)))):
  all five at 32x32 and above; on 8x8 digits only the last three (stages 0-1 then run at 8x8), so
  small images never pool to nothing.
  """

  stage_sizes: Sequence[int] = (2, 2, 3, 3, 3)
  width: int = 64
  bn: bool = False
  # 'imagenet': adaptive 7x7 pool, hidden-hidden-classes | 'cifar': GAP, dense
  head: str = "imagenet"
  hidden: int = 4096
  dropout: float = 0.5
  num_classes: int = 1000
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"
  bn_groups: int = 1
  bn_impl: str = "fused"
  # always unrolled (the field lets analysis code ask for the unrolled layout)
  stages: str = "unroll"

  residual = False

  @property
  def stage_widths(self) -> tuple[int, ...]:
    return tuple(self.width * min(2**s, 8) for s in range(len(self.stage_sizes)))

  def shape_changing_blocks(self) -> np.ndarray:
    """True for a stage's first layer where it changes the channel count (always stage 0's: the
    image)."""
    widths_in = (None,) + self.stage_widths[:-1]
    return np.asarray(
      [
        b == 0 and widths_in[s] != self.stage_widths[s]
        for s, n in enumerate(self.stage_sizes)
        for b in range(n)
      ]
    )

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    if self.head not in ("imagenet", "cifar"):
      raise ValueError(f"VGG head must be 'imagenet' or 'cifar', got {self.head!r}")
    if self.stages != "unroll":
      raise ValueError(
        f"VGG stacks are always unrolled: stages must be 'unroll', got {self.stages!r}"
      )
    norm = layers.batch_norm(train, self.dtype, self.bn_groups, self.bn_impl)
    g, r = gating.block_controls(gates, grad_route, self.num_blocks, "VGG")
    pools = min(len(self.stage_sizes), int(math.log2(min(x.shape[1:3]))))
    x = x.astype(self.dtype)
    i = 0
    for s, (n, width) in enumerate(zip(self.stage_sizes, self.stage_widths)):
      for b in range(n):
        layer = VGGLayer(
          width, self.bn, norm, self.dtype, self.conv_impl, name=f"stage{s}_block{b}"
        )
        x = layer(x, *gating.at((g, r), i))
        i += 1
      if s >= len(self.stage_sizes) - pools:
        x = nn.max_pool(x, (2, 2), (2, 2))
    if self.head == "imagenet":
      x = layers.adaptive_avg_pool(x, 7).reshape((x.shape[0], -1))
      for name in ("fc1", "fc2"):
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=name)(x))
        x = gating.dropout(self.dropout, train)(x)
    else:
      x = gating.dropout(self.dropout, train)(jnp.mean(x, axis=(1, 2)))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def vgg(depth: int, *, bn: bool = False, width: int = 64, **kw) -> VGG:
  """ImageNet VGG-11/13/16/19 (configurations A/B/D/E), optionally with BN."""
  registry.only(depth, VGG_STAGES, "VGG")
  kw.setdefault("num_classes", 1000)
  return VGG(VGG_STAGES[depth], width=width, bn=bn, head="imagenet", **kw)


def cifar_vgg(depth: int, *, bn: bool = True, width: int = 64, **kw) -> VGG:
  """CIFAR-sized VGG-11/13/16/19: the same stacks on 32x32 (or smaller) images, GAP, one dense
  layer."""
  registry.only(depth, VGG_STAGES, "CIFAR VGG")
  kw.setdefault("dropout", 0.0)
  kw.setdefault("num_classes", 10)
  return VGG(VGG_STAGES[depth], width=width, bn=bn, head="cifar", hidden=0, **kw)


VGG_FIELDS = ("width", "dropout")
VGG_BN_FIELDS = (*VGG_FIELDS, "bn_groups", "bn_impl")
IMAGENET = {"input_shape": (224, 224, 3), "num_classes": 1000}
SIMONYAN = "Simonyan & Zisserman 2015, Table 2 (without BN)."
PARAMS = {11: 133e6, 13: 133e6, 16: 138e6, 19: 144e6}


def _published(with_figures: bool) -> tuple[registry.Published, ...]:
  return tuple(
    registry.Published(d, params=(p, SIMONYAN) if with_figures else None) for d, p in PARAMS.items()
  )


def _register(name, build, fields, label, title, **more):
  registry.register(registry.Family(name, build, fields, label, title, **more))


_register("vgg", vgg, VGG_FIELDS, "VGG-{depth}", "VGG nets", **IMAGENET, published=_published(True))
_register(
  "vgg_bn",
  functools.partial(vgg, bn=True),
  VGG_BN_FIELDS,
  "VGG-{depth} BN",
  "VGG nets (BN)",
  **IMAGENET,
  published=_published(True),
)
_register(
  "cifar_vgg",
  functools.partial(cifar_vgg, bn=False),
  VGG_FIELDS,
  "VGG-{depth} (CIFAR)",
  "VGG nets",
  published=_published(False),
)
_register(
  "cifar_vgg_bn",
  cifar_vgg,
  VGG_BN_FIELDS,
  "VGG-{depth} BN (CIFAR)",
  "VGG nets (BN)",
  published=_published(False),
)
