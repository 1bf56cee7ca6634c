"""The classic families of the depth story, LeNet-5 to DenseNet, as pure-functional `flax.linen` modules.

Same conventions as models.py: NHWC, float32 parameters computing in `dtype`, deterministic submodule
names, `__call__(x, *, train, gates=None, grad_route=None)`, so the train/eval steps, the lesion study
and the models table run on them unchanged. `models.build_model` maps a config onto the presets at the
bottom (`lenet5`, `alexnet`, `vgg`, `cifar_vgg`, `nin`, `googlenet`, `cifar_densenet`,
`imagenet_densenet`).

* LeNet-5 (LeCun et al. 1998, §II.B): 32x32 input, C1 6@5x5, S2, C3 16@5x5 with the paper's Table I
  connection table, S4, C5 120@5x5, F6 84, squashing 1.7159 tanh(2a/3). S2/S4 are the original's
  subsampling (2x2 sums times a trainable coefficient plus a trainable bias, per map). The Euclidean RBF
  output is replaced by a dense softmax layer (`head`). Without the head: exactly the paper's 60,000
  trainable parameters.
* AlexNet (Krizhevsky et al. 2012) as torchvision has it: single stream, ReLU, 64-192-384-256-256
  maps with 11x11/4, 5x5, 3x3 kernels, 3x3/2 max pools, adaptive 6x6 average pool, dropout 0.5,
  4096-4096-classes; no LRN. 61,100,840 parameters at 1000 classes.
* VGG-11/13/16/19 (Simonyan & Zisserman 2015, configurations A/B/D/E), with or without BN after each
  convolution (convolutions keep their bias, as in torchvision): 3x3 convs in five stages of
  64-128-256-512-512 maps separated by 2x2 max pools, adaptive 7x7 average pool, 4096-4096-classes
  with dropout 0.5. `head='cifar'` is the CIFAR-sized variant: the same stacks, then a global average
  (1x1 after five pools at 32x32) and one dense layer.
* NiN (Lin et al. 2014): "mlpconv" blocks of a conv and two 1x1 convs, no dense layer: the last 1x1
  conv has one map per class and is averaged globally. Depth 9 is their CIFAR-10 net (192-160-96,
  192-192-192, 192-192-classes), depth 12 their ImageNet net (96, 256, 384, 1024 maps).
* GoogLeNet (Szegedy et al. 2015, Table 1): Inception v1 modules (1x1 | 1x1-3x3 | 1x1-5x5 |
  pool-1x1), no LRN; optional auxiliary heads after 4a and 4d (§5; training only). `reduce=False` drops
  the 1x1 reductions before the 3x3 and 5x5 convolutions, so the multiply-add column shows what they save.
* DenseNet and DenseNet-BC (Huang et al. 2017): in a dense block, layer l sees k0 + k (l - 1) maps and
  adds k (the growth rate); BN-ReLU-conv3x3 (BC: BN-ReLU-conv1x1 to 4k maps first); transitions
  BN-ReLU-conv1x1 to floor(theta m) maps, 2x2 average pool (theta = 0.5 for BC, 1 otherwise). CIFAR:
  three blocks, depth L = 3n + 4 (BC: 6n + 4); ImageNet: DenseNet-121/161/169/201/264.

Blocks, gates and lesions
-------------------------
Nets with blocks name them `stage{s}_block{b}` and have `stage_sizes`, so `models.block_names`,
`steps.block_grad_norms` and the lesion study address them as they address a ResNet's (stage-major
order, one gate per block):

* VGG: a block is one conv (+BN) + ReLU layer; a stage is the run of layers between two pools. Gate g
  gives g * layer(x) + (1 - g) * shortcut_A(x), as for models.py's plain nets: gate 0 replaces a layer
  whose input and output shapes agree by the identity ("deleting a VGG layer where shapes allow");
  where the layer changes the channel count (the first of stages 0-3) its input is zero-padded
  instead, and `shape_changing_blocks()` (`models.downsampling_blocks`) marks it.
* GoogLeNet: a block is an Inception module (stage 0 = 3a-3b, stage 1 = 4a-4e, stage 2 = 5a-5b), gated
  like a VGG layer (4b, 4c and 5a keep their shape).
* DenseNet: a block is a dense layer (stage s = dense block s); gate g multiplies the k maps it adds,
  so gate 0 deletes the layer and the later layers see zeros in its place (no shape changes).
LeNet-5, AlexNet and NiN have no blocks (`num_blocks == 0`; `gates` must be None or empty).
`grad_route` works as for models.py's blocks (`layers.combine`). None of these nets is `residual`.

Dropout draws from the 'drop' rng stream, the one `steps.train_step` already passes (for stochastic
depth), so `rngs={'drop': key}` serves both; with `train=False` nothing is drawn. GoogLeNet's auxiliary
heads sow {'logits', 'weight'} into the 'aux_logits' collection at training time, and the train step
adds their weighted loss (0.3 in the paper) to the objective.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cnn_depth import layers
from cnn_depth.layers import ROUTE_BRANCH, ROUTE_SKIP, Conv

Dtype = Any
DROP_RNG = "drop"  # the rng stream of stochastic depth, reused for dropout
AUX_COLLECTION = "aux_logits"


# ----------------------------------------------------------------------------------------------------
# Helpers shared by the families.


def adaptive_avg_pool(x, size: int):
  """torch.nn.AdaptiveAvgPool2d((size, size)): output cell i averages rows floor(iH/s)..ceil((i+1)H/s).

  The identity when the map already is size x size; smaller maps are repeated (as in torch).
  """
  _, h, w, _ = x.shape
  if (h, w) == (size, size):
    return x
  rows = [x[:, (i * h) // size: -(-(i + 1) * h // size)].mean(1, keepdims=True) for i in range(size)]
  x = jnp.concatenate(rows, 1)
  cols = [x[:, :, (j * w) // size: -(-(j + 1) * w // size)].mean(2, keepdims=True) for j in range(size)]
  return jnp.concatenate(cols, 2)


def _dropout(rate: float, train: bool, name: str | None = None) -> nn.Dropout:
  return nn.Dropout(rate, deterministic=not train, rng_collection=DROP_RNG, name=name)


def _controls(gates, grad_route, num_blocks: int, net: str):
  """Per-block gates and routes as arrays (None where not given); see the module docstring."""
  if num_blocks == 0:
    for name, value in (("gates", gates), ("grad_route", grad_route)):
      if value is not None and np.size(value):
        raise ValueError(f"{net} has no blocks to gate or route: {name} must be None or empty")
    return None, None
  g = None if gates is None else jnp.asarray(gates, jnp.float32).reshape(
      (num_blocks,) + jnp.shape(gates)[1:])
  r = None if grad_route is None else jnp.asarray(grad_route, jnp.int32).reshape((num_blocks,))
  return g, r


def gated_layer(x, out, gate=None, route=None):
  """g * out + (1 - g) * shortcut_A(x): gate 0 deletes a plain layer (identity where the shapes agree,
  zero-padded channels where the layer widens them), as models.py does for plain blocks."""
  if gate is None and route is None:
    return out
  gate = jnp.ones((), jnp.float32) if gate is None else gate
  skip = layers.shortcut_a(x.astype(out.dtype), out.shape[-1], 1)
  keep = layers.expand_gate(gate, out.ndim).astype(out.dtype)
  return layers.combine((1 - keep) * skip, out, gate, route)


class Blockless:
  """What the block-addressing code (models.block_names, downsampling_blocks, the lesion study) reads
  from a net with no blocks to gate: LeNet-5, AlexNet, NiN."""

  stage_sizes = ()
  num_blocks = 0
  residual = False

  def shape_changing_blocks(self) -> np.ndarray:
    return np.zeros(0, bool)


def _conv(dtype, conv_impl, **kw):
  return functools.partial(Conv, dtype=dtype, conv_impl=conv_impl, **kw)


# ----------------------------------------------------------------------------------------------------
# LeNet-5.

# LeCun et al. 1998, Table I: the S2 maps each C3 map reads (6 read 3 contiguous maps, 6 read 4
# contiguous, 3 read 4 discontinuous, 1 reads all 6): 60 connections of 25 weights, + 16 biases = 1,516.
LENET_C3_TABLE = ((0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
                  (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
                  (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5))


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

  def multiply_adds(self, out_shape) -> int:
    return math.prod(out_shape[1:3]) * self.kernel_size ** 2 * sum(len(t) for t in self.table)

  @nn.compact
  def __call__(self, x):
    k, rows, cols = self.kernel_size, *self._index()
    if rows.max() >= x.shape[-1]:
      raise ValueError(f"the connection table reads map {rows.max()} of a {x.shape[-1]}-map input")
    fan_in = np.asarray([k * k * len(self.table[j]) for j in cols], np.float32)
    init = lambda key, shape, dtype=jnp.float32: jax.random.normal(key, shape, dtype) / np.sqrt(fan_in)
    w = self.param("kernel", init, (k, k, len(rows)), jnp.float32)
    b = self.param("bias", nn.initializers.zeros, (len(self.table),), jnp.float32)
    kernel = jnp.zeros((k, k, x.shape[-1], len(self.table)), jnp.float32).at[:, :, rows, cols].set(w)
    y = lax.conv_general_dilated(x.astype(self.dtype), kernel.astype(self.dtype), (1, 1), "VALID",
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
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


class LeNet5(Blockless, nn.Module):
  """LeNet-5 on 32x32 images; smaller ones (MNIST's 28x28) are zero-padded to 32x32 around the centre,
  as LeCun et al. did. See the module docstring."""

  num_classes: int = 10
  connection_table: bool = True  # False: C3 reads all six S2 maps (2,416 instead of 1,516 parameters)
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    del train
    _controls(gates, grad_route, 0, "LeNet-5")
    h, w = x.shape[1:3]
    if h > 32 or w > 32:
      raise ValueError(f"LeNet-5 takes images of at most 32x32 (it pads smaller ones), got {h}x{w}")
    top, left = (32 - h) // 2, (32 - w) // 2
    x = jnp.pad(x.astype(self.dtype), ((0, 0), (top, 32 - h - top), (left, 32 - w - left), (0, 0)))
    conv = _conv(self.dtype, self.conv_impl, padding=0, use_bias=True)
    x = lecun_tanh(conv(6, 5, name="c1")(x))  # 28x28x6
    x = lecun_tanh(Subsampling(self.dtype, name="s2")(x))  # 14x14x6
    c3 = ConnectionTableConv(LENET_C3_TABLE, 5, self.dtype, name="c3") if self.connection_table \
        else conv(16, 5, name="c3")
    x = lecun_tanh(c3(x))  # 10x10x16
    x = lecun_tanh(Subsampling(self.dtype, name="s4")(x))  # 5x5x16
    x = lecun_tanh(conv(120, 5, name="c5")(x))  # 1x1x120
    x = x.reshape((x.shape[0], -1))
    x = lecun_tanh(nn.Dense(84, dtype=self.dtype, name="f6")(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------
# AlexNet.


class AlexNet(Blockless, nn.Module):
  """Single-stream AlexNet (torchvision's layout); needs inputs of at least 63x63. `widths` and `hidden`
  exist for tiny test variants; the defaults are the paper's."""

  num_classes: int = 1000
  widths: Sequence[int] = (64, 192, 384, 256, 256)
  hidden: int = 4096
  dropout: float = 0.5
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    _controls(gates, grad_route, 0, "AlexNet")
    if min(x.shape[1:3]) < 63:
      raise ValueError(f"AlexNet needs images of at least 63x63 (three 3x3/2 max pools after a /4 "
                       f"convolution), got {x.shape[1]}x{x.shape[2]}")
    conv = _conv(self.dtype, self.conv_impl, use_bias=True)
    pool = lambda y: nn.max_pool(y, (3, 3), (2, 2))
    w = self.widths
    x = pool(nn.relu(conv(w[0], 11, 4, padding=2, name="conv1")(x.astype(self.dtype))))
    x = pool(nn.relu(conv(w[1], 5, name="conv2")(x)))
    x = nn.relu(conv(w[2], 3, name="conv3")(x))
    x = nn.relu(conv(w[3], 3, name="conv4")(x))
    x = pool(nn.relu(conv(w[4], 3, name="conv5")(x)))
    x = adaptive_avg_pool(x, 6).reshape((x.shape[0], -1))
    for name in ("fc1", "fc2"):
      x = _dropout(self.dropout, train)(x)
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=name)(x))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------
# VGG.

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
    return gated_layer(x, y, gate, route)


class VGG(nn.Module):
  """VGG stacks (module docstring). Stage s has `stage_sizes[s]` layers of min(2^s, 8) x `width` maps.

  Pooling: a 2x2/2 max pool ends each of the last p stages, p = min(stages, floor(log2(min(H, W)))):
  all five at 32x32 and above; on 8x8 digits only the last three (stages 0-1 then run at 8x8), so small
  images never pool to nothing.
  """

  stage_sizes: Sequence[int] = (2, 2, 3, 3, 3)
  width: int = 64
  bn: bool = False
  head: str = "imagenet"  # 'imagenet': adaptive 7x7 pool, hidden-hidden-classes | 'cifar': GAP, dense
  hidden: int = 4096
  dropout: float = 0.5
  num_classes: int = 1000
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"
  bn_groups: int = 1
  bn_impl: str = "fused"
  stages: str = "unroll"  # always unrolled (the field lets analysis code ask for the unrolled layout)

  residual = False

  @property
  def num_blocks(self) -> int:
    return int(sum(self.stage_sizes))

  @property
  def stage_widths(self) -> tuple[int, ...]:
    return tuple(self.width * min(2 ** s, 8) for s in range(len(self.stage_sizes)))

  def shape_changing_blocks(self) -> np.ndarray:
    """True for a stage's first layer where it changes the channel count (always stage 0's: the image)."""
    widths_in = (None,) + self.stage_widths[:-1]
    return np.asarray([b == 0 and widths_in[s] != self.stage_widths[s]
                       for s, n in enumerate(self.stage_sizes) for b in range(n)])

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    if self.head not in ("imagenet", "cifar"):
      raise ValueError(f"VGG head must be 'imagenet' or 'cifar', got {self.head!r}")
    if self.stages != "unroll":
      raise ValueError(f"VGG stacks are always unrolled: stages must be 'unroll', got {self.stages!r}")
    norm = layers.batch_norm(train, self.dtype, self.bn_groups, self.bn_impl)
    g, r = _controls(gates, grad_route, self.num_blocks, "VGG")
    pools = min(len(self.stage_sizes), int(math.log2(min(x.shape[1:3]))))
    x = x.astype(self.dtype)
    i = 0
    for s, (n, width) in enumerate(zip(self.stage_sizes, self.stage_widths)):
      for b in range(n):
        layer = VGGLayer(width, self.bn, norm, self.dtype, self.conv_impl, name=f"stage{s}_block{b}")
        x = layer(x, None if g is None else g[i], None if r is None else r[i])
        i += 1
      if s >= len(self.stage_sizes) - pools:
        x = nn.max_pool(x, (2, 2), (2, 2))
    if self.head == "imagenet":
      x = adaptive_avg_pool(x, 7).reshape((x.shape[0], -1))
      for name in ("fc1", "fc2"):
        x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=name)(x))
        x = _dropout(self.dropout, train)(x)
    else:
      x = _dropout(self.dropout, train)(jnp.mean(x, axis=(1, 2)))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------
# Network in Network.

# depth -> mlpconv blocks (maps of the first conv, its kernel, stride and padding, maps of the two
# 1x1 convs; None = one map per class), the pool after each block ('max', 'avg' or None = global).
NIN_CONFIGS = {
    9: (((192, 5, 1, 2, (160, 96)), "max"),  # Lin et al. 2014, CIFAR-10
        ((192, 5, 1, 2, (192, 192)), "avg"),
        ((192, 3, 1, 1, (192, None)), None)),
    12: (((96, 11, 4, 0, (96, 96)), "max"),  # Lin et al.'s ImageNet model
         ((256, 5, 1, 2, (256, 256)), "max"),
         ((384, 3, 1, 1, (384, 384)), "max"),
         ((1024, 3, 1, 1, (1024, None)), None)),
}


class NiN(Blockless, nn.Module):
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
    _controls(gates, grad_route, 0, "NiN")
    if self.depth not in NIN_CONFIGS:
      raise ValueError(f"NiN depth must be 9 (CIFAR) or 12 (ImageNet), got {self.depth}")
    conv = _conv(self.dtype, self.conv_impl, use_bias=True)
    cifar = self.depth == 9
    dropout_after = (0, 1) if cifar else (2,)
    x = x.astype(self.dtype)
    for i, ((maps, k, stride, pad, ones), pool) in enumerate(NIN_CONFIGS[self.depth]):
      x = nn.relu(conv(maps, k, stride, padding=pad, name=f"mlpconv{i}_conv")(x))
      for j, m in enumerate(ones):
        x = nn.relu(conv(self.num_classes if m is None else m, 1, name=f"mlpconv{i}_cccp{j + 1}")(x))
      padding = "SAME" if cifar else "VALID"
      if pool == "max":
        x = nn.max_pool(x, (3, 3), (2, 2), padding=padding)
      elif pool == "avg":
        x = nn.avg_pool(x, (3, 3), (2, 2), padding=padding)
      if i in dropout_after:
        x = _dropout(self.dropout, train)(x)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------
# GoogLeNet.

# Szegedy et al. 2015, Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj; one tuple of
# modules per stage (3a-3b, 4a-4e, 5a-5b).
INCEPTION_STAGES = (
    ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
     (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)),
    ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)
INCEPTION_NAMES = (("3a", "3b"), ("4a", "4b", "4c", "4d", "4e"), ("5a", "5b"))  # for reading results


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
    conv = _conv(self.dtype, self.conv_impl, use_bias=True)
    relu_conv = lambda y, m, k, name: nn.relu(conv(m, k, name=name)(y))
    b1 = relu_conv(x, n1, 1, "b1")
    b2 = relu_conv(relu_conv(x, n3r, 1, "b2_reduce") if self.reduce else x, n3, 3, "b2")
    b3 = relu_conv(relu_conv(x, n5r, 1, "b3_reduce") if self.reduce else x, n5, 5, "b3")
    b4 = relu_conv(nn.max_pool(x, (3, 3), (1, 1), padding="SAME"), npool, 1, "b4_proj")
    return gated_layer(x, jnp.concatenate([b1, b2, b3, b4], -1), gate, route)


class AuxHead(nn.Module):
  """Szegedy et al. 2015 §5: 5x5/3 average pool (4x4 out of 4a/4d's 14x14; other map sizes are pooled
  adaptively to 4x4), 1x1 conv 128 + ReLU, dense 1024 + ReLU, dropout 0.7, dense to the classes."""

  num_classes: int
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, train: bool):
    h, w = x.shape[1:3]
    paper = (h - 5) // 3 + 1 == 4 and (w - 5) // 3 + 1 == 4
    x = nn.avg_pool(x, (5, 5), (3, 3)) if paper else adaptive_avg_pool(x, 4)
    x = nn.relu(Conv(128, 1, 1, self.dtype, self.conv_impl, use_bias=True, name="conv")(x))
    x = nn.relu(nn.Dense(1024, dtype=self.dtype, name="fc")(x.reshape((x.shape[0], -1))))
    x = _dropout(0.7, train)(x)
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


class GoogLeNet(nn.Module):
  """GoogLeNet (module docstring); blocks are the nine Inception modules. `inception_stages` and
  `aux_after` (the (stage, block) each auxiliary head follows: 4a and 4d) exist for tiny test variants;
  the defaults are the paper's."""

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

  @property
  def num_blocks(self) -> int:
    return int(sum(self.stage_sizes))

  def shape_changing_blocks(self) -> np.ndarray:
    specs = [spec for stage in self.inception_stages for spec in stage]
    widths_in = [192] + [inception_width(spec) for spec in specs[:-1]]
    return np.asarray([inception_width(spec) != c for spec, c in zip(specs, widths_in)])

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    if self.stages != "unroll":
      raise ValueError(f"GoogLeNet is always unrolled: stages must be 'unroll', got {self.stages!r}")
    g, r = _controls(gates, grad_route, self.num_blocks, "GoogLeNet")
    conv = _conv(self.dtype, self.conv_impl, use_bias=True)
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
        x = module(x, None if g is None else g[i], None if r is None else r[i])
        i += 1
        if aux and (s, b) in aux_after:
          name = f"aux{aux_after.index((s, b)) + 1}"
          logits = AuxHead(self.num_classes, self.dtype, self.conv_impl, name=name)(x, train)
          if train:
            self.sow(AUX_COLLECTION, f"{name}_logits",
                     {"logits": logits, "weight": jnp.asarray(self.aux_weight, jnp.float32)})
    x = _dropout(self.dropout, train)(jnp.mean(x, axis=(1, 2)))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------
# DenseNet.


class DenseLayer(nn.Module):
  """BN-ReLU-conv3x3 (k maps), or with `bottleneck` > 0 (BC) BN-ReLU-conv1x1 (bottleneck maps) first;
  its k maps are concatenated to its input, times the gate (module docstring)."""

  growth_rate: int
  bottleneck: int
  norm: Callable[..., nn.Module]
  drop: Callable[..., nn.Module]
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, gate=None, route=None):
    conv = _conv(self.dtype, self.conv_impl)
    y = x
    convs = ((self.bottleneck, 1), (self.growth_rate, 3)) if self.bottleneck else ((self.growth_rate, 3),)
    for j, (maps, k) in enumerate(convs, start=1):
      y = self.drop()(conv(maps, k, name=f"conv{j}")(self.norm(name=f"bn{j}", relu=True)(y)))
    if route is not None:
      y = layers.route_gradient(y, route != ROUTE_SKIP)
      x = layers.route_gradient(x, route != ROUTE_BRANCH)
    if gate is not None:
      y = layers.expand_gate(gate, y.ndim).astype(y.dtype) * y
    return jnp.concatenate([x, y.astype(x.dtype)], -1)


class DenseNet(nn.Module):
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

  @property
  def num_blocks(self) -> int:
    return int(sum(self.stage_sizes))

  def shape_changing_blocks(self) -> np.ndarray:
    return np.zeros(self.num_blocks, bool)

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    if self.stem not in ("cifar", "imagenet"):
      raise ValueError(f"DenseNet stem must be 'cifar' or 'imagenet', got {self.stem!r}")
    if self.stages != "unroll":
      raise ValueError(f"DenseNets are always unrolled: stages must be 'unroll', got {self.stages!r}")
    if not 0.0 < self.compression <= 1.0:
      raise ValueError(f"DenseNet compression theta must lie in (0, 1], got {self.compression}")
    norm = layers.batch_norm(train, self.dtype, self.bn_groups, self.bn_impl)
    drop = functools.partial(_dropout, self.dropout, train)
    conv = _conv(self.dtype, self.conv_impl)
    g, r = _controls(gates, grad_route, self.num_blocks, "DenseNet")

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
        layer = DenseLayer(self.growth_rate, bottleneck, norm, drop, self.dtype, self.conv_impl,
                           name=f"stage{s}_block{b}")
        x = layer(x, None if g is None else g[i], None if r is None else r[i])
        i += 1
    x = jnp.mean(norm(name="bn_final", relu=True)(x), axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x).astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------
# Families and depths.

# ImageNet DenseNets (Huang et al. 2017, Table 1): depth -> (layers per dense block, growth rate k).
IMAGENET_DENSENETS = {121: ((6, 12, 24, 16), 32), 169: ((6, 12, 32, 32), 32),
                      201: ((6, 12, 48, 32), 32), 264: ((6, 12, 64, 48), 32), 161: ((6, 12, 36, 24), 48)}
# CIFAR DenseNet-BC growth rates of Huang et al. 2017, Table 2 (other depths default to 12).
CIFAR_BC_GROWTH = {100: 12, 250: 24, 190: 40}

# Model config fields (config.model) each family takes besides num_classes, dtype and conv_impl.
FIELDS = {
    "lenet5": (),
    "alexnet": ("dropout",),
    "vgg": ("width", "dropout"),
    "vgg_bn": ("width", "dropout", "bn_groups", "bn_impl"),
    "cifar_vgg": ("width", "dropout"),
    "cifar_vgg_bn": ("width", "dropout", "bn_groups", "bn_impl"),
    "nin": ("dropout",),
    "googlenet": ("dropout", "aux_heads", "reduce"),
    "cifar_densenet": ("growth_rate", "dropout", "bn_groups", "bn_impl"),
    "cifar_densenet_bc": ("growth_rate", "dropout", "bn_groups", "bn_impl"),
    "imagenet_densenet": ("growth_rate", "dropout", "bn_groups", "bn_impl"),
}
FAMILIES = tuple(FIELDS)

# What a field a family does not take may hold: config.base()'s default (so a config built on it
# works) or the "family default" marker of the classic fields. Anything else is refused.
NEUTRAL = {"width": (0,), "growth_rate": (0,), "aux_heads": (False,), "reduce": (True,),
           "bn_groups": (1,), "bn_impl": ("fused",), "shortcut": ("A",), "block": ("", None),
           "survival_last": (1.0,), "drop_mode": ("batch",), "stages": ("scan", "unroll"),
           "unroll": (0, 1), "remat": (False,), "zero_init_last": (False,)}
CLASSIC_ONLY = ("growth_rate", "dropout", "aux_heads", "reduce")


def is_neutral(field: str, value) -> bool:
  """True if `value` of `field` means "not set" (NEUTRAL; a negative dropout: the family default)."""
  if field == "dropout":
    return value is None or float(value) < 0
  return value in NEUTRAL.get(field, ())


def config_options(family: str, cfg: Mapping[str, Any]) -> dict:
  """The builder keyword arguments for a classic family out of model config fields (without family and
  depth); a field the family does not take must be neutral, else a ValueError says so."""
  takes = set(FIELDS[family]) | {"num_classes", "dtype", "conv_impl"}
  out = {}
  for field, value in cfg.items():
    if field in takes:
      if not is_neutral(field, value):
        out[field] = value
    elif not is_neutral(field, value):
      takes_it = [f for f, fields in FIELDS.items() if field in fields]
      where = f"; it applies to {', '.join(takes_it)}" if takes_it else " (a ResNet option)"
      raise ValueError(f"model field {field}={value!r} does not apply to family {family!r}{where}: "
                       f"leave it out or reset it (to {NEUTRAL.get(field, ('a negative value',))[0]!r})")
  return out


def _only(depth: int, valid: Sequence[int], net: str) -> None:
  if depth not in valid:
    near = min(valid, key=lambda d: (abs(d - depth), d))
    raise ValueError(f"{net} depth must be one of {sorted(valid)}; got {depth} (nearest: {near})")


def lenet5(depth: int = 5, **kw) -> LeNet5:
  """LeNet-5: depth 5 (its five layers with weights: C1, C3, C5, F6 and the output)."""
  _only(depth, (5,), "LeNet-5")
  return LeNet5(**kw)


def alexnet(depth: int = 8, **kw) -> AlexNet:
  """AlexNet: depth 8 (five convolutions, three dense layers)."""
  _only(depth, (8,), "AlexNet")
  kw.setdefault("num_classes", 1000)
  return AlexNet(**kw)


def vgg(depth: int, *, bn: bool = False, width: int = 64, **kw) -> VGG:
  """ImageNet VGG-11/13/16/19 (configurations A/B/D/E), optionally with BN."""
  _only(depth, VGG_STAGES, "VGG")
  kw.setdefault("num_classes", 1000)
  return VGG(VGG_STAGES[depth], width=width, bn=bn, head="imagenet", **kw)


def cifar_vgg(depth: int, *, bn: bool = True, width: int = 64, **kw) -> VGG:
  """CIFAR-sized VGG-11/13/16/19: the same stacks on 32x32 (or smaller) images, GAP, one dense layer."""
  _only(depth, VGG_STAGES, "CIFAR VGG")
  kw.setdefault("dropout", 0.0)
  kw.setdefault("num_classes", 10)
  return VGG(VGG_STAGES[depth], width=width, bn=bn, head="cifar", hidden=0, **kw)


def nin(depth: int = 9, **kw) -> NiN:
  """Network in Network: depth 9 (CIFAR-10, 10 classes) or 12 (ImageNet, 1000 classes) conv layers."""
  _only(depth, NIN_CONFIGS, "NiN")
  kw.setdefault("num_classes", 10 if depth == 9 else 1000)
  return NiN(depth, **kw)


def googlenet(depth: int = 22, **kw) -> GoogLeNet:
  """GoogLeNet: depth 22 (layers with parameters, Szegedy et al. 2015 §5)."""
  _only(depth, (22,), "GoogLeNet")
  kw.setdefault("num_classes", 1000)
  return GoogLeNet(**kw)


def cifar_densenet(depth: int, *, bc: bool = False, growth_rate: int | None = None,
                   compression: float | None = None, **kw) -> DenseNet:
  """CIFAR DenseNet of depth L = 3n + 4 (k = 12 by default) or DenseNet-BC of depth 6n + 4 (k from
  Huang et al. Table 2: 12 at 100, 24 at 250, 40 at 190; 12 otherwise), three blocks of n layers."""
  per_layer = 6 if bc else 3
  n, rem = divmod(depth - 4, per_layer)
  if rem or n < 1:
    lower = 4 + per_layer * max(n, 1) if n >= 1 else None
    upper = 4 + per_layer * (max(n, 0) + 1)
    near = " and ".join(str(d) for d in (lower, upper) if d and d != depth)
    examples = "100, 190, 250" if bc else "40, 100"
    raise ValueError(f"depth {depth} is not a valid depth for a CIFAR DenseNet{'-BC' if bc else ''}: "
                     f"it must be {per_layer}n+4 with n >= 1 (e.g. {examples}); nearest valid depths: "
                     f"{near}")
  k = growth_rate or (CIFAR_BC_GROWTH.get(depth, 12) if bc else 12)
  if compression is None:
    compression = 0.5 if bc else 1.0
  return DenseNet((n,) * 3, k, bottleneck=bc, compression=compression, stem="cifar",
                  stem_width=2 * k if bc else 16, **kw)


def imagenet_densenet(depth: int = 121, *, growth_rate: int | None = None, **kw) -> DenseNet:
  """ImageNet DenseNet-121/161/169/201/264 (BC: bottleneck layers, theta = 0.5, k0 = 2k)."""
  _only(depth, IMAGENET_DENSENETS, "ImageNet DenseNet")
  sizes, k = IMAGENET_DENSENETS[depth]
  k = growth_rate or k
  kw.setdefault("num_classes", 1000)
  return DenseNet(sizes, k, bottleneck=True, compression=0.5, stem="imagenet", stem_width=2 * k, **kw)
