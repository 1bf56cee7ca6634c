"""GoogLeNet (Szegedy et al. 2015, Table 1): Inception v1 modules, no LRN.

Modules are 1x1 | 1x1-3x3 | 1x1-5x5 | pool-1x1; optional auxiliary heads after 4a and 4d (§5;
training only) sow {'logits', 'weight'} into the 'aux_logits' collection, and the train step adds
their weighted loss (0.3 in the paper) to the objective. `reduce=False` drops the 1x1 reductions
before the 3x3 and 5x5 convolutions, so the multiply-add count shows what they save.

Blocks: the nine Inception modules (stage 0 = 3a-3b, stage 1 = 4a-4e, stage 2 = 5a-5b), gated like a
VGG layer (gating.delete_to_identity; 4b, 4c and 5a keep their shape).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from cnn_depth import layers
from cnn_depth.layers import Conv
from cnn_depth.models import gating, layout, registry

Dtype = Any


# Szegedy et al. 2015, Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj; one tuple of
# modules per stage (3a-3b, 4a-4e, 5a-5b).
INCEPTION_STAGES = (
  ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
  (
    (192, 96, 208, 16, 48, 64),
    (160, 112, 224, 24, 64, 64),
    (128, 128, 256, 24, 64, 64),
    (112, 144, 288, 32, 64, 64),
    (256, 160, 320, 32, 128, 128),
  ),
  ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)
# The modules' names in the paper, for reading results.
INCEPTION_NAMES = (("3a", "3b"), ("4a", "4b", "4c", "4d", "4e"), ("5a", "5b"))


def inception_width(spec: Sequence[int]) -> int:
  """The output maps of an Inception module: 1x1 + 3x3 + 5x5 + pool projection."""
  n1, _, n3, _, n5, npool = spec
  return n1 + n3 + n5 + npool


class Inception(nn.Module):
  """Inception v1 module: 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | 3x3/1 max pool -> 1x1, concatenated.
  `reduce=False` feeds the 3x3 and 5x5 convolutions the input itself (no 1x1 reduction)."""

  spec: Sequence[int]
  reduce: bool = True
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, gate=None, route=None):
    n1, n3r, n3, n5r, n5, npool = self.spec
    conv = functools.partial(Conv, dtype=self.dtype, conv_impl=self.conv_impl, use_bias=True)
    relu_conv = lambda y, m, k, name: nn.relu(conv(m, k, name=name)(y))
    b1 = relu_conv(x, n1, 1, "b1")
    b2 = relu_conv(relu_conv(x, n3r, 1, "b2_reduce") if self.reduce else x, n3, 3, "b2")
    b3 = relu_conv(relu_conv(x, n5r, 1, "b3_reduce") if self.reduce else x, n5, 5, "b3")
    b4 = relu_conv(nn.max_pool(x, (3, 3), (1, 1), padding="SAME"), npool, 1, "b4_proj")
    return gating.delete_to_identity(x, jnp.concatenate([b1, b2, b3, b4], -1), gate, route)


class AuxHead(nn.Module):
  """Szegedy et al. 2015 §5: 5x5/3 average pool (4x4 out of 4a/4d's 14x14; other map sizes are
  pooled adaptively to 4x4), 1x1 conv 128 + ReLU, dense 1024 + ReLU, dropout 0.7, dense to the
  classes."""

  num_classes: int
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool):
    h, w = x.shape[1:3]
    paper = (h - 5) // 3 + 1 == 4 and (w - 5) // 3 + 1 == 4
    x = nn.avg_pool(x, (5, 5), (3, 3)) if paper else layers.adaptive_avg_pool(x, 4)
    x = nn.relu(Conv(128, 1, 1, self.dtype, self.conv_impl, use_bias=True, name="conv")(x))
    x = nn.relu(nn.Dense(1024, dtype=self.dtype, name="fc")(x.reshape((x.shape[0], -1))))
    x = gating.dropout(0.7, train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


class GoogLeNet(layout.Blocks, nn.Module):
  """GoogLeNet (module docstring); blocks are the nine Inception modules. `inception_stages` and
  `aux_after` (the (stage, block) each auxiliary head follows: 4a and 4d) exist for tiny test
  variants; the defaults are the paper's."""

  num_classes: int = 1000
  aux_heads: bool = False
  aux_weight: float = 0.3  # the paper's discount of the auxiliary losses
  reduce: bool = True
  dropout: float = 0.4
  inception_stages: Sequence[Sequence[Sequence[int]]] = INCEPTION_STAGES
  aux_after: Sequence[tuple[int, int]] = ((1, 0), (1, 3))
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"
  stages: str = "unroll"

  residual = False

  @property
  def stage_sizes(self) -> tuple[int, ...]:
    return tuple(len(s) for s in self.inception_stages)

  def shape_changing_blocks(self) -> np.ndarray:
    specs = [spec for stage in self.inception_stages for spec in stage]
    widths_in = [192] + [inception_width(spec) for spec in specs[:-1]]
    return np.asarray([inception_width(spec) != c for spec, c in zip(specs, widths_in)])

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    if self.stages != "unroll":
      raise ValueError(
        f"GoogLeNet is always unrolled: stages must be 'unroll', got {self.stages!r}"
      )
    g, r = gating.block_controls(gates, grad_route, self.num_blocks, "GoogLeNet")
    conv = functools.partial(Conv, dtype=self.dtype, conv_impl=self.conv_impl, use_bias=True)
    pool = lambda y: nn.max_pool(y, (3, 3), (2, 2), padding="SAME")
    x = pool(nn.relu(conv(64, 7, 2, name="conv1")(x.astype(self.dtype))))
    x = nn.relu(conv(64, 1, name="conv2_reduce")(x))
    x = pool(nn.relu(conv(192, 3, name="conv2")(x)))
    aux = self.aux_heads and (train or self.is_initializing())  # created at init, run when training
    aux_after = [tuple(p) for p in self.aux_after]
    i = 0
    for s, stage in enumerate(self.inception_stages):
      if s > 0:
        x = pool(x)
      for b, spec in enumerate(stage):
        module = Inception(spec, self.reduce, self.dtype, self.conv_impl, name=f"stage{s}_block{b}")
        x = module(x, *gating.at((g, r), i))
        i += 1
        if aux and (s, b) in aux_after:
          name = f"aux{aux_after.index((s, b)) + 1}"
          logits = AuxHead(self.num_classes, self.dtype, self.conv_impl, name=name)(x, train)
          if train:
            self.sow(
              registry.AUX_COLLECTION,
              f"{name}_logits",
              {"logits": logits, "weight": jnp.asarray(self.aux_weight, jnp.float32)},
            )
    x = gating.dropout(self.dropout, train)(jnp.mean(x, axis=(1, 2)))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


def googlenet(depth: int = 22, **kw) -> GoogLeNet:
  """GoogLeNet: depth 22 (layers with parameters, Szegedy et al. 2015 §5)."""
  registry.only(depth, (22,), "GoogLeNet")
  kw.setdefault("num_classes", 1000)
  return GoogLeNet(**kw)


def _label(depth: int, options) -> str:
  return (
    "GoogLeNet"
    + (" without 1x1 reductions" if options.get("reduce") is False else "")
    + (" + auxiliary heads" if options.get("aux_heads") else "")
  )


SZEGEDY = (
  "Szegedy et al. 2015, Table 1 totals. Its K is 1024 (module 3a's 163,328 weights are listed as "
  "159K) and its conv1 row (2.7K, 34M ops) undercounts the 7x7 convolution (9.4K, 118M). Its "
  "module rows agree with ours within 1% in ops but 5a (51.1M vs 54M), and within 2% in "
  "parameters but 4c (497.5K vs 463K) and 5a (1018K vs 1072K)."
)
# The paper's net, then what its 1x1 reductions save and what its auxiliary heads cost.
PUBLISHED = (
  registry.Published(22, params=(6.8e6, SZEGEDY), macs=(1.5e9, SZEGEDY)),
  registry.Published(22, {"reduce": False}),
  registry.Published(22, {"aux_heads": True}),
)
registry.register(
  registry.Family(
    "googlenet",
    googlenet,
    ("dropout", "aux_heads", "reduce"),
    _label,
    "GoogLeNet",
    input_shape=(224, 224, 3),
    num_classes=1000,
    published=PUBLISHED,
  )
)
