"""DenseNet and DenseNet-BC (Huang et al. 2017).

In a dense block, layer l sees k0 + k (l - 1) maps and adds k (the growth rate): BN-ReLU-conv3x3
(BC: BN-ReLU-conv1x1 to 4k maps first); transitions BN-ReLU-conv1x1 to floor(theta m) maps, 2x2
average pool (theta = 0.5 for BC, 1 otherwise). CIFAR: three blocks, depth L = 3n + 4 (BC: 6n + 4);
ImageNet: DenseNet-121/161/169/201/264.

Blocks: a block is a dense layer (stage s = dense block s); gate g multiplies the k maps it adds, so
gate 0 deletes the layer and the later layers see zeros in its place (gating.concat_merge).
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


class DenseLayer(nn.Module):
  """BN-ReLU-conv3x3 (k maps), or with `bottleneck` > 0 (BC) BN-ReLU-conv1x1 (bottleneck maps)
  first; its k maps are concatenated to its input, times the gate (module docstring)."""

  growth_rate: int
  bottleneck: int
  norm: Callable[..., nn.Module]
  drop: Callable[..., nn.Module]
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, gate=None, route=None):
    conv = functools.partial(Conv, dtype=self.dtype, conv_impl=self.conv_impl)
    y = x
    convs = (
      ((self.bottleneck, 1), (self.growth_rate, 3)) if self.bottleneck else ((self.growth_rate, 3),)
    )
    for j, (maps, k) in enumerate(convs, start=1):
      y = self.drop()(conv(maps, k, name=f"conv{j}")(self.norm(name=f"bn{j}", relu=True)(y)))
    return gating.concat_merge(x, y, gate, route)


class DenseNet(layout.Blocks, nn.Module):
  """DenseNet / DenseNet-BC (module docstring); blocks are the dense layers."""

  stage_sizes: Sequence[int]  # dense layers per dense block
  growth_rate: int = 12
  bottleneck: bool = False  # BC's 1x1 convolution to 4k maps before each 3x3
  compression: float = 1.0  # theta of the transitions
  stem: str = "cifar"  # 'cifar': conv3x3 | 'imagenet': conv7x7/2-BN-ReLU-maxpool3x3/2
  stem_width: int = 16  # k0, the maps of the stem
  dropout: float = 0.0  # after every convolution (Huang et al.: 0.2 without data augmentation)
  num_classes: int = 10
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"
  bn_groups: int = 1
  bn_impl: str = "fused"
  stages: str = "unroll"

  residual = False

  def shape_changing_blocks(self) -> np.ndarray:
    return np.zeros(self.num_blocks, bool)

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    if self.stem not in ("cifar", "imagenet"):
      raise ValueError(f"DenseNet stem must be 'cifar' or 'imagenet', got {self.stem!r}")
    if self.stages != "unroll":
      raise ValueError(
        f"DenseNets are always unrolled: stages must be 'unroll', got {self.stages!r}"
      )
    if not 0.0 < self.compression <= 1.0:
      raise ValueError(f"DenseNet compression theta must lie in (0, 1], got {self.compression}")
    norm = layers.batch_norm(train, self.dtype, self.bn_groups, self.bn_impl)
    drop = functools.partial(gating.dropout, self.dropout, train)
    conv = functools.partial(Conv, dtype=self.dtype, conv_impl=self.conv_impl)
    g, r = gating.block_controls(gates, grad_route, self.num_blocks, "DenseNet")

    x = x.astype(self.dtype)
    if self.stem == "cifar":
      x = conv(self.stem_width, 3, name="conv_init")(x)
    else:
      x = norm(name="bn_init", relu=True)(conv(self.stem_width, 7, 2, name="conv_init")(x))
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    bottleneck = 4 * self.growth_rate if self.bottleneck else 0
    i = 0
    for s, n in enumerate(self.stage_sizes):
      if s > 0:  # transition
        maps = int(math.floor(self.compression * x.shape[-1]))
        x = norm(name=f"transition{s}_bn", relu=True)(x)
        x = drop()(conv(maps, 1, name=f"transition{s}_conv")(x))
        x = nn.avg_pool(x, (2, 2), (2, 2))
      for b in range(n):
        layer = DenseLayer(
          self.growth_rate,
          bottleneck,
          norm,
          drop,
          self.dtype,
          self.conv_impl,
          name=f"stage{s}_block{b}",
        )
        x = layer(x, *gating.at((g, r), i))
        i += 1
    x = jnp.mean(norm(name="bn_final", relu=True)(x), axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


# ImageNet DenseNets (Huang et al. 2017, Table 1): depth -> (layers per dense block, growth rate k).
IMAGENET_DENSENETS = {
  121: ((6, 12, 24, 16), 32),
  169: ((6, 12, 32, 32), 32),
  201: ((6, 12, 48, 32), 32),
  264: ((6, 12, 64, 48), 32),
  161: ((6, 12, 36, 24), 48),
}
# CIFAR DenseNet-BC growth rates of Huang et al. 2017, Table 2 (other depths default to 12).
CIFAR_BC_GROWTH = {100: 12, 250: 24, 190: 40}


def cifar_densenet(
  depth: int,
  *,
  bc: bool = False,
  growth_rate: int | None = None,
  compression: float | None = None,
  **kw,
) -> DenseNet:
  """CIFAR DenseNet of depth L = 3n + 4 (k = 12 by default) or DenseNet-BC of depth 6n + 4 (k from
  Huang et al. Table 2: 12 at 100, 24 at 250, 40 at 190; 12 otherwise), three blocks of n layers."""
  per_layer = 6 if bc else 3
  n, rem = divmod(depth - 4, per_layer)
  if rem or n < 1:
    lower = 4 + per_layer * max(n, 1) if n >= 1 else None
    upper = 4 + per_layer * (max(n, 0) + 1)
    near = " and ".join(str(d) for d in (lower, upper) if d and d != depth)
    examples = "100, 190, 250" if bc else "40, 100"
    raise ValueError(
      f"depth {depth} is not a valid depth for a CIFAR DenseNet{'-BC' if bc else ''}: "
      f"it must be {per_layer}n+4 with n >= 1 (e.g. {examples}); nearest valid depths: "
      f"{near}"
    )
  k = growth_rate or (CIFAR_BC_GROWTH.get(depth, 12) if bc else 12)
  if compression is None:
    compression = 0.5 if bc else 1.0
  return DenseNet(
    (n,) * 3,
    k,
    bottleneck=bc,
    compression=compression,
    stem="cifar",
    stem_width=2 * k if bc else 16,
    **kw,
  )


def imagenet_densenet(depth: int = 121, *, growth_rate: int | None = None, **kw) -> DenseNet:
  """ImageNet DenseNet-121/161/169/201/264 (BC: bottleneck layers, theta = 0.5, k0 = 2k). Another
  depth 8n + 5 is four blocks of n layers at k = 32 (no published net): DenseNet-13, one layer a
  block, has every kind of layer of the family at 224x224, for checks that compile it (its
  blocks are unrolled: DenseNet-121's train step compiles for an H100 in 60 CPU-s here, 13's
  in 16)."""
  if depth in IMAGENET_DENSENETS:
    sizes, k = IMAGENET_DENSENETS[depth]
  elif depth >= 13 and (depth - 5) % 8 == 0:
    sizes, k = ((depth - 5) // 8,) * 4, 32
  else:
    raise ValueError(
      f"ImageNet DenseNet depth must be one of {sorted(IMAGENET_DENSENETS)} (Huang et al.'s) or "
      f"8n+5 with n >= 1 (four blocks of n layers, e.g. 13); got {depth}"
    )
  k = growth_rate or k
  kw.setdefault("num_classes", 1000)
  return DenseNet(
    sizes, k, bottleneck=True, compression=0.5, stem="imagenet", stem_width=2 * k, **kw
  )


def _cifar_label(bc: bool):
  def label(depth, options):
    k = options.get("growth_rate") or (CIFAR_BC_GROWTH.get(depth, 12) if bc else 12)
    return f"DenseNet{'-BC' if bc else ''} (L={depth}, k={k})"

  return label


HUANG = "Huang et al. 2017, Table 2 (k = 12; BC L=190: k = 40), to the one decimal it gives."
FIELDS = ("growth_rate", "dropout", "bn_groups", "bn_impl")


def _published(params) -> tuple[registry.Published, ...]:
  return tuple(registry.Published(d, params=(p, HUANG)) for d, p in params.items())


registry.register(
  registry.Family(
    "cifar_densenet",
    cifar_densenet,
    FIELDS,
    _cifar_label(False),
    "DenseNets",
    published=_published({40: 1.0e6, 100: 7.0e6}),
  )
)
registry.register(
  registry.Family(
    "cifar_densenet_bc",
    functools.partial(cifar_densenet, bc=True),
    FIELDS,
    _cifar_label(True),
    "DenseNets-BC",
    published=_published({100: 0.8e6, 190: 25.6e6}),
  )
)
registry.register(
  registry.Family(
    "imagenet_densenet",
    imagenet_densenet,
    FIELDS,
    "DenseNet-{depth}",
    "DenseNets (ImageNet)",
    input_shape=(224, 224, 3),
    num_classes=1000,
    published=(registry.Published(121, params=(7.978856e6, registry.TORCHVISION)),),
  )
)
