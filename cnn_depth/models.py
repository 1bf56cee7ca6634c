"""Plain nets and ResNets of the depth studies, as pure-functional `flax.linen` modules.

One class, `ResNet`, covers every family; the named families are presets (`cifar_resnet(56)`,
`imagenet_resnet(18)`, ...) and `build_model(config)` maps a config onto them with one explicit match.
The classic families the depth story compares them with (LeNet-5, AlexNet, VGG, NiN, GoogLeNet,
DenseNet) live in classic.py; `build_model` maps onto them too, and the counting and addressing
functions below work on them.

* CIFAR ResNet, depth 6n+2 (He et al. 2016, §4.2): 3x3 conv(16) -> 3 stages of n basic blocks with
  16/32/64 channels on 32/16/8 maps -> global average pool -> dense. Shortcut option A (parameter-free)
  or B (projection at dimension changes).
* Plain twins: the same nets with `residual=False` (no shortcut addition).
* Pre-activation ResNets (He et al. 2016b, "Identity mappings"): BN-ReLU-conv ordering; CIFAR basic
  (6n+2) and bottleneck (9n+2: 164, 1001) variants.
* ImageNet ResNets 18/34 (basic) and 50/101/152 (bottleneck), and their plain twins; 7x7/2 stem +
  3x3/2 max pool; option B shortcuts by default.

Block order and gates
---------------------
Blocks are numbered in *stage-major order*: global index = sum(stage_sizes[:stage]) + block, stages and
blocks counted from 0. Every per-block array (`gates`, `grad_route`, survival probabilities) uses this
order; `block_names(model)` lists it. The residual branch of block i is multiplied by `gates[i]`:

* residual blocks: out = skip + gate * branch (post-activation: then ReLU). gate 0 deletes the block and
  keeps its skip path (Veit et al. 2016 lesion); gate p_l is stochastic depth at test time.
* plain blocks have no skip path; gate g gives g * block(x) + (1 - g) * shortcut_A(x), so gate 0 again
  *deletes* the block (the input passes through unchanged, or subsampled and zero-padded where the block
  changes shape), which in a plain net breaks the only path.

`grad_route[i]` in {ROUTE_BOTH, ROUTE_BRANCH, ROUTE_SKIP} limits where the gradient flows through block i
(values unchanged, `lax.stop_gradient` on the other path). Both arrays are traced values, so one compiled
function serves every lesion pattern and every path sample.

Parameter paths
---------------
With `stages='unroll'` every block is `stage{s}_block{b}`. With `stages='scan'` (the default) the first
block of each stage (the one that may change shape) is `stage{s}_block0` and the identical blocks
1..n-1 are stacked along a leading axis under `stage{s}_blocks`; `unstack_stages` / `stack_stages`
convert between the two layouts and `block_variables` addresses any (stage, block).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth import classic, layers
from cnn_depth.layers import ROUTE_BOTH, ROUTE_BRANCH, ROUTE_SKIP, Conv  # noqa: F401  (re-exported)

Dtype = Any


# ----------------------------------------------------------------------------------------------------
# Blocks. Each is called as block(x, gate, route) with a scalar (or per-sample) gate and an optional
# route code; see the module docstring.


class _Block(nn.Module):
  features: int  # the block's output channels
  strides: int = 1
  residual: bool = True
  shortcut: str = "A"
  norm: Callable[..., nn.Module] = layers.BatchNorm  # given by ResNet: layers.batch_norm(...)
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"
  zero_init_last: bool = False

  def conv(self, features, kernel_size, strides=1, name=None):
    return Conv(features, kernel_size, strides, self.dtype, self.conv_impl, name=name)

  def last_norm(self, name, relu=False):
    init = nn.initializers.zeros if self.zero_init_last else nn.initializers.ones
    return self.norm(name=name, scale_init=init, relu=relu)

  def changes_shape(self, x):
    return self.strides != 1 or x.shape[-1] != self.features

  def skip(self, x, projection_input=None):
    """The shortcut: identity, option A at a shape change, or option B's projection (residual nets)."""
    if not self.changes_shape(x):
      return x
    if self.residual and self.shortcut == "B":
      src = x if projection_input is None else projection_input
      return layers.ProjectionShortcut(
          self.features, self.strides, self.norm, self.dtype, self.conv_impl, name="proj")(src)
    return layers.shortcut_a(x, self.features, self.strides)

  def merge(self, skip, branch, gate, route, post_relu: bool):
    if self.residual:
      out = layers.combine(skip, branch, gate, route)
      return nn.relu(out) if post_relu else out
    # Plain block: gate deletes it (passes the parameter-free shortcut instead); see module docstring.
    out = nn.relu(branch) if post_relu else branch
    keep = layers.expand_gate(gate, out.ndim).astype(out.dtype)
    return layers.combine((1 - keep) * skip, out, gate, route)


class BasicBlock(_Block):
  """Post-activation basic block (He et al. 2016, Fig. 2): conv-BN-ReLU-conv-BN, + shortcut, ReLU."""

  @nn.compact
  def __call__(self, x, gate=1.0, route=None):
    y = self.conv(self.features, 3, self.strides, "conv1")(x)
    y = self.norm(name="bn1", relu=True)(y)
    y = self.conv(self.features, 3, 1, "conv2")(y)
    y = self.last_norm("bn2")(y)
    return self.merge(self.skip(x), y, gate, route, post_relu=True)


class BottleneckBlock(_Block):
  """Post-activation bottleneck (He et al. 2016, Fig. 5): 1x1 (w) - 3x3 (w) - 1x1 (4w).

  As in the paper (and Caffe release), the stride sits on the first 1x1 convolution; torchvision's
  "v1.5" moves it to the 3x3 (same parameters, 4.1G instead of 3.8G multiply-adds for ResNet-50).
  """

  @nn.compact
  def __call__(self, x, gate=1.0, route=None):
    width = self.features // 4
    y = self.norm(name="bn1", relu=True)(self.conv(width, 1, self.strides, "conv1")(x))
    y = self.norm(name="bn2", relu=True)(self.conv(width, 3, 1, "conv2")(y))
    y = self.last_norm("bn3")(self.conv(self.features, 1, 1, "conv3")(y))
    return self.merge(self.skip(x), y, gate, route, post_relu=True)


class PreActBasicBlock(_Block):
  """Pre-activation basic block (He et al. 2016b, Fig. 4e): BN-ReLU-conv-BN-ReLU-conv, + shortcut.

  A projection shortcut reads the pre-activated input, as in the authors' code.
  """

  @nn.compact
  def __call__(self, x, gate=1.0, route=None):
    pre = self.norm(name="bn1", relu=True)(x)
    y = self.conv(self.features, 3, self.strides, "conv1")(pre)
    y = self.last_norm("bn2", relu=True)(y)
    y = self.conv(self.features, 3, 1, "conv2")(y)
    return self.merge(self.skip(x, pre), y, gate, route, post_relu=False)


class PreActBottleneckBlock(_Block):
  """Pre-activation bottleneck (He et al. 2016b): BN-ReLU-1x1, BN-ReLU-3x3 (stride), BN-ReLU-1x1 (4w)."""

  @nn.compact
  def __call__(self, x, gate=1.0, route=None):
    width = self.features // 4
    pre = self.norm(name="bn1", relu=True)(x)
    y = self.conv(width, 1, 1, "conv1")(pre)
    y = self.conv(width, 3, self.strides, "conv2")(self.norm(name="bn2", relu=True)(y))
    y = self.conv(self.features, 1, 1, "conv3")(self.last_norm("bn3", relu=True)(y))
    return self.merge(self.skip(x, pre), y, gate, route, post_relu=False)


BLOCKS = {
    ("basic", False): BasicBlock,
    ("bottleneck", False): BottleneckBlock,
    ("basic", True): PreActBasicBlock,
    ("bottleneck", True): PreActBottleneckBlock,
}


# ----------------------------------------------------------------------------------------------------
# Stochastic depth (Huang et al. 2016).


def survival_probabilities(num_blocks: int, survival_last: float) -> np.ndarray:
  """p_l = 1 - (l / L) (1 - p_L) for blocks l = 1..L (Huang et al. 2016, eq. 4, the linear decay rule)."""
  if not 0.0 <= survival_last <= 1.0:
    raise ValueError(f"survival probability p_L must lie in [0, 1], got {survival_last}")
  l = np.arange(1, num_blocks + 1, dtype=np.float64)
  return (1.0 - l / num_blocks * (1.0 - survival_last)).astype(np.float32)


def stochastic_depth_gates(rng, survival: jax.Array, batch_size: int | None = None) -> jax.Array:
  """Training-time gates: a Bernoulli(p_l) draw per block.

  `batch_size=None` is stochastic depth as in Huang et al.: one draw per block per mini-batch, the whole
  residual branch is used or skipped for every example. An integer gives the per-sample variant usually
  called "drop path" (one draw per block per example, shape (blocks, batch)): a different method,
  with its own (higher-variance, lower-correlation) noise. Neither rescales at training time; at test time
  the branch is scaled by p_l.
  """
  shape = survival.shape if batch_size is None else survival.shape + (batch_size,)
  p = survival if batch_size is None else survival[:, None]
  return jax.random.bernoulli(rng, p, shape).astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------
# The network.


class ResNet(nn.Module):
  """A ResNet or its plain twin; see the module docstring for the families, gates and parameter paths.

  Call as `model.apply(variables, images, train=..., gates=None, grad_route=None, rngs=...)`. With
  `survival_last < 1` and `train=True`, pass `rngs={'drop': key}` for the stochastic-depth draws.
  """

  stage_sizes: Sequence[int]
  stage_widths: Sequence[int]  # output channels of each stage's blocks
  block: str = "basic"  # 'basic' | 'bottleneck'
  preact: bool = False
  residual: bool = True
  shortcut: str = "A"  # 'A' (zero-pad) | 'B' (projection at dimension changes)
  stem: str = "cifar"  # 'cifar' (3x3 conv) | 'imagenet' (7x7/2 conv + 3x3/2 max pool)
  stem_width: int = 16
  num_classes: int = 10
  dtype: Dtype = jnp.float32
  stages: str = "scan"  # 'scan' | 'unroll'
  unroll: int = 1  # scan unroll factor; 0 = `resolve_unroll`'s measured choice for the backend
  remat: bool = False  # rematerialise each block in the backward pass (memory for compute)
  survival_last: float = 1.0  # p_L of stochastic depth; 1 disables it
  drop_mode: str = "batch"  # 'batch' (Huang et al.) | 'sample' (drop path)
  zero_init_last: bool = False
  conv_impl: str = "auto"
  bn_groups: int = 1  # > 1: per-group ("ghost", per-device) BN statistics; see layers.batch_norm
  bn_impl: str = "fused"  # 'fused' (layers.BatchNorm, hand-written backward) | 'flax' (flax's)

  @property
  def num_blocks(self) -> int:
    return int(sum(self.stage_sizes))

  def block_gates(self, train: bool, batch_size: int):
    """The stochastic-depth gates (all ones when it is off)."""
    survival = jnp.asarray(survival_probabilities(self.num_blocks, self.survival_last))
    if self.survival_last >= 1.0:
      return jnp.ones((self.num_blocks,), jnp.float32)
    if not train:
      return survival
    per_sample = batch_size if self.drop_mode == "sample" else None
    return stochastic_depth_gates(self.make_rng("drop"), survival, per_sample)

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    if self.shortcut not in ("A", "B"):
      raise ValueError(f"shortcut must be 'A' or 'B', got {self.shortcut!r}")
    if self.stages not in ("scan", "unroll"):
      raise ValueError(f"stages must be 'scan' or 'unroll', got {self.stages!r}")
    norm = layers.batch_norm(train, self.dtype, self.bn_groups, self.bn_impl)
    conv = functools.partial(Conv, dtype=self.dtype, conv_impl=self.conv_impl)

    x = x.astype(self.dtype)
    if self.stem == "cifar":
      x = conv(self.stem_width, 3, 1, name="conv_init")(x)
      if not self.preact:  # a pre-activation net's first block applies BN-ReLU itself
        x = norm(name="bn_init", relu=True)(x)
    elif self.stem == "imagenet":
      x = conv(self.stem_width, 7, 2, name="conv_init")(x)
      x = norm(name="bn_init", relu=True)(x)
      x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    else:
      raise ValueError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}")

    g = self.block_gates(train, x.shape[0])
    if gates is not None:
      g = g * jnp.asarray(gates, jnp.float32).reshape((self.num_blocks,) + jnp.shape(gates)[1:])
    route = None if grad_route is None else jnp.asarray(grad_route, jnp.int32)

    block_cls = BLOCKS[(self.block, self.preact)]
    if self.remat:
      block_cls = nn.remat(block_cls, prevent_cse=self.stages == "unroll")
    make_block = functools.partial(
        block_cls, residual=self.residual, shortcut=self.shortcut, norm=norm, dtype=self.dtype,
        conv_impl=self.conv_impl, zero_init_last=self.zero_init_last)

    start = 0
    for s, (n, width) in enumerate(zip(self.stage_sizes, self.stage_widths)):
      stride = 1 if s == 0 else 2
      ctrl = lambda i: (g[i],) + (() if route is None else (route[i],))
      x = make_block(width, stride, name=f"stage{s}_block0")(x, *ctrl(start))
      if self.stages == "unroll" or n == 1:
        for b in range(1, n):
          x = make_block(width, 1, name=f"stage{s}_block{b}")(x, *ctrl(start + b))
      else:
        rest = slice(start + 1, start + n)
        xs = (g[rest],) + (() if route is None else (route[rest],))
        scan = nn.scan(
            lambda mdl, carry, xs: (mdl(carry, *xs), None),
            variable_axes={"params": 0, "batch_stats": 0},
            split_rngs={"params": True},
            length=n - 1,
            unroll=resolve_unroll(self.unroll, n - 1))
        x, _ = scan(make_block(width, 1, name=f"stage{s}_blocks"), x, xs)
      start += n

    if self.preact:
      x = norm(name="bn_final", relu=True)(x)
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(x)
    return x.astype(jnp.float32)


def resolve_unroll(unroll: int, length: int) -> int:
  """The scan unroll factor for a scan of `length` blocks; `unroll=0` picks it by backend.

  Measured (benchmarks/NOTES.md, one H100, bf16, batch 128): a fully unrolled scan is fastest up to
  ResNet-110 (56: 26.0k vs 21.7k img/s at unroll 4; compile 12-20 s), and unroll 4 for ResNet-1202
  (compile ~12 s). On CPU unrolling only costs compile time (ResNet-110 unrolled: 7.5 s/step vs 3.9 s
  scanned), so 'auto' keeps 1 there.
  """
  if unroll < 0:
    raise ValueError(f"unroll must be >= 1, or 0 for the backend's default; got {unroll}")
  if unroll:
    return unroll
  if jax.default_backend() == "cpu":
    return 1
  return length if length <= 17 else 4  # 17: a ResNet-110 stage (18 blocks, the first outside the scan)


# ----------------------------------------------------------------------------------------------------
# Families and depths.

IMAGENET_STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}

RESNET_FAMILIES = ("cifar_resnet", "cifar_plain", "cifar_preact", "imagenet_resnet", "imagenet_plain")
FAMILIES = RESNET_FAMILIES + classic.FAMILIES  # the classic nets (LeNet-5 ... DenseNet): classic.py


def blocks_per_stage(depth: int, layers_per_block: int, stages: int = 3) -> int:
  """n for a CIFAR net of depth (stages * layers_per_block) n + 2, or a ValueError naming valid depths."""
  step = stages * layers_per_block
  n, r = divmod(depth - 2, step)
  if r == 0 and n >= 1:
    return n
  near = [d for d in (n * step + 2 if n >= 1 else None, max(n + 1, 1) * step + 2) if d]
  kind = {2: "basic", 3: "bottleneck"}[layers_per_block]
  examples = "20, 32, 44, 56, 110, 1202" if step == 6 else "29, 56, 164, 1001"
  raise ValueError(
      f"depth {depth} is not a valid depth for a CIFAR net of {kind} blocks: it must be {step}n+2 with "
      f"n >= 1 (e.g. {examples}); nearest valid depths: {' and '.join(map(str, near))}")


def cifar_resnet(depth: int, *, residual: bool = True, width: int = 16, **kw) -> ResNet:
  """He et al. CIFAR net of depth 6n+2 (basic blocks, 16/32/64 channels x width/16)."""
  n = blocks_per_stage(depth, 2)
  return ResNet((n,) * 3, (width, 2 * width, 4 * width), "basic", residual=residual,
                stem="cifar", stem_width=width, **kw)


def cifar_preact(depth: int, *, block: str = "bottleneck", width: int = 16, **kw) -> ResNet:
  """He et al. 2016b CIFAR pre-activation ResNet: bottleneck 9n+2 (164, 1001) or basic 6n+2 (110)."""
  if block not in ("basic", "bottleneck"):
    raise ValueError(f"cifar_preact block must be 'basic' or 'bottleneck', got {block!r}")
  expansion = 4 if block == "bottleneck" else 1
  n = blocks_per_stage(depth, 3 if block == "bottleneck" else 2)
  widths = tuple(expansion * width * m for m in (1, 2, 4))
  kw.setdefault("shortcut", "B")
  return ResNet((n,) * 3, widths, block, preact=True, stem="cifar", stem_width=width, **kw)


def imagenet_resnet(depth: int, *, residual: bool = True, width: int = 64, **kw) -> ResNet:
  """He et al. ImageNet ResNet-18/34/50/101/152 (option B by default) or its plain twin."""
  if depth not in IMAGENET_STAGES:
    valid = sorted(IMAGENET_STAGES)
    near = min(valid, key=lambda d: abs(d - depth))
    raise ValueError(f"ImageNet ResNet depth must be one of {valid}; got {depth} (nearest: {near})")
  block, sizes = IMAGENET_STAGES[depth]
  expansion = 4 if block == "bottleneck" else 1
  kw.setdefault("shortcut", "B")
  kw.setdefault("num_classes", 1000)
  return ResNet(sizes, tuple(expansion * width * m for m in (1, 2, 4, 8)), block, residual=residual,
                stem="imagenet", stem_width=width, **kw)


def build_model(config: Mapping[str, Any]) -> nn.Module:
  """The model a config names: `family`, `depth` and the optional fields below (an ml_collections
  ConfigDict or a dict). One explicit match, no registry.

  The classic families (classic.py) take `growth_rate` (DenseNets; 0 = the paper's k for the depth),
  `dropout` (a rate; absent or negative = the family's default), `aux_heads` and `reduce` (GoogLeNet),
  and `width` (VGG: maps of the first stage; 0 = 64); a field that does not apply to a family must be
  left out or hold its neutral value (config.base()'s default), else a ValueError names it.
  """
  cfg = dict(config)
  family, depth = cfg.pop("family"), int(cfg.pop("depth"))
  known = {"num_classes", "width", "shortcut", "block", "survival_last", "drop_mode", "dtype", "stages",
           "unroll", "remat", "conv_impl", "zero_init_last", "bn_groups", "bn_impl",
           *classic.CLASSIC_ONLY}
  unknown = set(cfg) - known
  if unknown:
    raise ValueError(f"unknown model config fields {sorted(unknown)}; known: {sorted(known)}")
  if "dtype" in cfg:
    cfg["dtype"] = jnp.dtype(cfg["dtype"])
  layers.check_bn_impl(cfg.get("bn_impl", "fused"))  # here too: BN checks it only when it runs
  if family in classic.FAMILIES:
    kw = classic.config_options(family, cfg)
  else:
    for field in classic.CLASSIC_ONLY:
      if field in cfg and not classic.is_neutral(field, cfg.pop(field)):
        raise ValueError(f"model field {field!r} applies only to the classic families "
                         f"({', '.join(f for f in classic.FAMILIES if field in classic.FIELDS[f])})")
  block = cfg.pop("block", None) or None
  match family:
    case "cifar_resnet":
      return cifar_resnet(depth, residual=True, **cfg)
    case "cifar_plain":
      return cifar_resnet(depth, residual=False, **cfg)
    case "cifar_preact":
      return cifar_preact(depth, **({} if block is None else {"block": block}), **cfg)
    case "imagenet_resnet":
      return imagenet_resnet(depth, residual=True, **cfg)
    case "imagenet_plain":
      return imagenet_resnet(depth, residual=False, **cfg)
    case "lenet5":
      return classic.lenet5(depth, **kw)
    case "alexnet":
      return classic.alexnet(depth, **kw)
    case "vgg":
      return classic.vgg(depth, bn=False, **kw)
    case "vgg_bn":
      return classic.vgg(depth, bn=True, **kw)
    case "cifar_vgg":
      return classic.cifar_vgg(depth, bn=False, **kw)
    case "cifar_vgg_bn":
      return classic.cifar_vgg(depth, bn=True, **kw)
    case "nin":
      return classic.nin(depth, **kw)
    case "googlenet":
      return classic.googlenet(depth, **kw)
    case "cifar_densenet":
      return classic.cifar_densenet(depth, bc=False, **kw)
    case "cifar_densenet_bc":
      return classic.cifar_densenet(depth, bc=True, **kw)
    case "imagenet_densenet":
      return classic.imagenet_densenet(depth, **kw)
  raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}")


# ----------------------------------------------------------------------------------------------------
# Addressing blocks and counting.


def block_names(model: ResNet) -> list[str]:
  """`stage{s}_block{b}` for every block, in the order of the per-block arrays."""
  return [f"stage{s}_block{b}" for s, n in enumerate(model.stage_sizes) for b in range(n)]


def downsampling_blocks(model: ResNet) -> np.ndarray:
  """A boolean per block: True where the block changes the spatial size or the channel count (for the
  classic nets, where deleting it cannot be the identity: `shape_changing_blocks`, classic.py)."""
  if not isinstance(model, ResNet):
    return np.asarray(model.shape_changing_blocks(), bool)
  widths_in = [model.stem_width] + list(model.stage_widths[:-1])
  flags = []
  for s, n in enumerate(model.stage_sizes):
    first = s > 0 or widths_in[0] != model.stage_widths[0]
    flags += [first] + [False] * (n - 1)
  return np.asarray(flags)


_STACKED = re.compile(r"stage(\d+)_blocks$")


def unstack_stages(tree: Mapping[str, Any]) -> dict:
  """Scanned layout -> unrolled layout, for one collection (e.g. variables['params'])."""
  out = {}
  for key, value in tree.items():
    m = _STACKED.match(key)
    if m is None:
      out[key] = value
      continue
    n = jax.tree_util.tree_leaves(value)[0].shape[0]
    for j in range(n):
      out[f"stage{m.group(1)}_block{j + 1}"] = jax.tree_util.tree_map(
          lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype) if isinstance(a, jax.ShapeDtypeStruct)
          else a[j], value)
  return out


def stack_stages(tree: Mapping[str, Any]) -> dict:
  """Unrolled layout -> scanned layout, for one collection."""
  out, rest = {}, {}
  for key, value in tree.items():
    m = re.match(r"stage(\d+)_block(\d+)$", key)
    if m and int(m.group(2)) > 0:
      rest.setdefault(m.group(1), {})[int(m.group(2))] = value
    else:
      out[key] = value
  for s, blocks in rest.items():
    ordered = [blocks[j] for j in sorted(blocks)]
    out[f"stage{s}_blocks"] = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *ordered)
  return out


def convert_variables(variables: Mapping[str, Any], to: str) -> dict:
  """All collections of `variables` converted to the 'scan' or 'unroll' layout."""
  fn = {"scan": stack_stages, "unroll": unstack_stages}[to]
  return {col: fn(tree) for col, tree in variables.items()}


def block_variables(variables: Mapping[str, Any], stage: int, block: int) -> dict:
  """The variables (every collection) of block `block` of stage `stage`, in either layout."""
  flat = convert_variables(variables, "unroll")
  name = f"stage{stage}_block{block}"
  return {col: tree[name] for col, tree in flat.items() if name in tree}


def count_params(params) -> int:
  return int(sum(np.prod(a.shape) for a in jax.tree_util.tree_leaves(params)))


def init_shapes(model: ResNet, image_shape: Sequence[int]):
  """Variable shapes (no computation) for one image of `image_shape` (H, W, C)."""
  x = jnp.zeros((1,) + tuple(image_shape), jnp.float32)
  return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)


def multiply_adds(model: nn.Module, image_shape: Sequence[int]) -> int:
  """Forward multiply-adds per image of every convolution and dense layer (He et al.'s "FLOPs").

  Works on any module called as `model.init(key, x, train=False)` whose convolutions are `layers.Conv`
  (or `classic.ConnectionTableConv`, counted by its connections only) and dense layers `nn.Dense`.
  """
  total = [0]

  def count(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    mdl = context.module
    if context.method_name == "__call__":
      x = args[0]
      if isinstance(mdl, Conv):
        total[0] += math.prod(out.shape[1:]) * mdl.kernel_size ** 2 * x.shape[-1]
      elif isinstance(mdl, nn.Dense):
        total[0] += x.shape[-1] * mdl.features
      elif isinstance(mdl, classic.ConnectionTableConv):
        total[0] += mdl.multiply_adds(out.shape)
    return out

  # A scan body is traced once, so count a ResNet on its unrolled twin.
  flat = model.clone(stages="unroll") if isinstance(model, ResNet) else model
  with nn.intercept_methods(count):
    init_shapes(flat, image_shape)
  return total[0]
