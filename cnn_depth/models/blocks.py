"""The blocks of the ResNets and their plain twins, post- and pre-activation, basic and bottleneck.

Each is called as block(x, gate, route, coef) with a scalar (or per-sample) gate, an optional route
code (gating.py) and the optional per-block constants of its branch rule (branches.py): a residual
block gives skip + gate * branch, a plain block passes its option-A shortcut where the gate deletes
it. resnet.py stacks them into stages.

`Fixes` says how a block makes its layers: the normalisation ('bn'; 'none', whose convolutions get
biases; 'ws', scaled weight standardisation with biases), the activation, the initialisers and the
branch rule (the fixes for depth, resolved by `ResNet.fixes`). Its default is He et al.'s block,
computed exactly as before the fixes existed (BN with its ReLU fused, He-normal kernels).

Parameter names: convolutions `conv1`..`conv3` (`kernel`, and `bias` without BN; `gain` with
'ws'), BN layers `bn1`..`bn3`, the projection `proj` (`conv`, `bn` with BN); the branch rule's
scalars: Fixup's `bias1a`, `bias1b`, ..., `scale` (its reference's names), SkipInit's `alpha`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from cnn_depth import layers
from cnn_depth.layers import Conv
from cnn_depth.models import branches, gating

Dtype = Any


@dataclasses.dataclass(frozen=True)
class Fixes:
  """How blocks make their layers; the default is He et al.'s (BN, fused ReLU, He init)."""

  norm: str = "bn"  # 'bn' | 'none' | 'ws'
  act: Callable = nn.relu  # the activation (activations.make: transformed where asked)
  fused_relu: bool = True  # norm 'bn' with a plain ReLU: BN computes it inside (layers.bn_train)
  kernel_init: Callable = layers.he_normal
  bias_init: Callable = nn.initializers.zeros
  branch: branches.Branch = branches.BRANCHES["identity"]
  branch_init_scale: float = 1.0  # Fixup: L^(-1/(2m-2)) on a branch's convolutions but the last

  def conv_options(self, place: str = "other") -> dict:
    """Conv's initialisers, bias and standardisation; `place` 'inner' or 'last' for a residual
    branch's convolutions (Fixup scales the first, zeroes the last)."""
    kernel_init = self.kernel_init
    if self.branch.fixup and place == "inner":
      kernel_init = scaled(kernel_init, self.branch_init_scale)
    elif self.branch.fixup and place == "last":
      kernel_init = nn.initializers.zeros
    return dict(
      use_bias=self.norm != "bn" and not self.branch.fixup,
      kernel_init=kernel_init,
      bias_init=self.bias_init,
      standardize=self.norm == "ws",
    )

  def norm_act(self, norm, y, name: str, scale_init=None):
    """BN `name` then the activation (BN computes a plain ReLU inside); the activation alone
    without BN."""
    if self.norm != "bn":
      return self.act(y)
    kw = {} if scale_init is None else {"scale_init": scale_init}
    if self.fused_relu:
      return norm(name=name, relu=True, **kw)(y)
    return self.act(norm(name=name, **kw)(y))

  def shift(self, module: nn.Module, y, name: str):
    """Fixup's scalar bias `name` added to y (Zhang et al. 2019); y itself for other rules."""
    if not self.branch.fixup:
      return y
    return y + module.param(name, nn.initializers.zeros, (), jnp.float32).astype(y.dtype)


def scaled(init: Callable, factor: float) -> Callable:
  """The jax initialiser `init` times `factor`."""

  def draw(key, shape, dtype=jnp.float32):
    return init(key, shape, dtype) * jnp.asarray(factor, dtype)

  return draw


class _Block(nn.Module):
  features: int  # the block's output channels
  strides: int = 1
  residual: bool = True
  shortcut: str = "A"
  norm: Callable[..., nn.Module] = layers.BatchNorm  # given by ResNet: layers.batch_norm(...)
  dtype: Dtype = jnp.float32
  conv_impl: str = "auto"
  zero_init_last: bool = False
  bottleneck_stride: str = "1x1"  # bottleneck blocks: '1x1' (the paper) | '3x3' (torchvision v1.5)
  fixes: Fixes = Fixes()

  def conv(self, features, kernel_size, strides=1, name=None, place="inner"):
    options = self.fixes.conv_options(place if self.residual else "other")
    return Conv(features, kernel_size, strides, self.dtype, self.conv_impl, name=name, **options)

  def last_norm(self, name, relu=False):
    init = nn.initializers.zeros if self.zero_init_last else nn.initializers.ones
    return self.norm(name=name, scale_init=init, relu=relu)

  def norm_act(self, y, name, last=False):
    """BN (or nothing: norm 'none'/'ws') then the activation; `last`: the BN that
    `zero_init_last` zero-initialises."""
    init = None
    if last:
      init = nn.initializers.zeros if self.zero_init_last else nn.initializers.ones
    return self.fixes.norm_act(self.norm, y, name, init)

  def shift(self, y, name):
    return self.fixes.shift(self, y, name)

  def finish(self, y, coef, bias=None):
    """The branch's end: BN-free rules' multipliers (Fixup's `scale` then its last scalar bias,
    SkipInit's `alpha`) and the rule's fixed per-block scale."""
    rule = self.fixes.branch
    if self.residual and rule.multiplier is not None:
      name, value = rule.multiplier
      m = self.param(name, nn.initializers.constant(value), (), jnp.float32)
      y = y * m.astype(y.dtype)
    if bias is not None:
      y = self.shift(y, bias)
    if coef is not None and "branch" in coef:
      y = y * coef["branch"].astype(y.dtype)
    return y

  def changes_shape(self, x):
    return self.strides != 1 or x.shape[-1] != self.features

  def skip(self, x, projection_input=None, reshaped=None):
    """The shortcut: identity, option A at a shape change, or option B's projection (residual
    nets). At a shape change `reshaped` replaces x (Fixup's x + bias1a, as its reference)."""
    if not self.changes_shape(x):
      return x
    x = x if reshaped is None else reshaped
    if self.residual and self.shortcut == "B":
      src = x if projection_input is None else projection_input
      return layers.ProjectionShortcut(
        self.features,
        self.strides,
        self.norm,
        self.dtype,
        self.conv_impl,
        with_norm=self.fixes.norm == "bn",
        conv=functools.partial(Conv, **self.fixes.conv_options()),
        name="proj",
      )(src)
    return layers.shortcut_a(x, self.features, self.strides)

  def merge(self, skip, branch, gate, route, coef, post_act: bool):
    act = self.fixes.act
    if self.residual:
      if coef is not None and "skip" in coef:
        skip = skip * coef["skip"].astype(skip.dtype)
      out = gating.merge(skip, branch, gate, route)
      return act(out) if post_act else out
    # Plain block: gate 0 deletes it (passes the parameter-free shortcut instead).
    return gating.plain_merge(skip, act(branch) if post_act else branch, gate, route)

  def pre_activation(self, x, coef):
    """A pre-activation block's activated input, times the rule's input scale (NF: 1 / beta_i)."""
    pre = self.norm_act(x, "bn1")
    if coef is not None and "input" in coef:
      pre = pre * coef["input"].astype(pre.dtype)
    return pre


class BasicBlock(_Block):
  """Post-activation basic block (He et al. 2016, Fig. 2): conv-BN-ReLU-conv-BN, + shortcut,
  ReLU."""

  @nn.compact
  def __call__(self, x, gate=1.0, route=None, coef=None):
    xa = self.shift(x, "bias1a")
    y = self.conv(self.features, 3, self.strides, "conv1")(xa)
    y = self.norm_act(self.shift(y, "bias1b"), "bn1")
    y = self.conv(self.features, 3, 1, "conv2", "last")(self.shift(y, "bias2a"))
    y = self.last_norm("bn2")(y) if self.fixes.norm == "bn" else y
    y = self.finish(y, coef, "bias2b")
    return self.merge(self.skip(x, reshaped=xa), y, gate, route, coef, post_act=True)


class BottleneckBlock(_Block):
  """Post-activation bottleneck (He et al. 2016, Fig. 5): 1x1 (w) - 3x3 (w) - 1x1 (4w).

  As in the paper (and Caffe release), the stride sits on the first 1x1 convolution by default;
  `bottleneck_stride='3x3'` puts it on the 3x3, as torchvision's and timm's "v1.5" do (same
  parameters, 4.1G instead of 3.8G multiply-adds for ResNet-50).
  """

  @nn.compact
  def __call__(self, x, gate=1.0, route=None, coef=None):
    if self.bottleneck_stride not in ("1x1", "3x3"):
      raise ValueError(f"bottleneck_stride must be '1x1' or '3x3', got {self.bottleneck_stride!r}")
    s1, s3 = (self.strides, 1) if self.bottleneck_stride == "1x1" else (1, self.strides)
    width = self.features // 4
    xa = self.shift(x, "bias1a")
    y = self.norm_act(self.shift(self.conv(width, 1, s1, "conv1")(xa), "bias1b"), "bn1")
    y = self.conv(width, 3, s3, "conv2")(self.shift(y, "bias2a"))
    y = self.norm_act(self.shift(y, "bias2b"), "bn2")
    y = self.conv(self.features, 1, 1, "conv3", "last")(self.shift(y, "bias3a"))
    y = self.last_norm("bn3")(y) if self.fixes.norm == "bn" else y
    y = self.finish(y, coef, "bias3b")
    return self.merge(self.skip(x, reshaped=xa), y, gate, route, coef, post_act=True)


class PreActBasicBlock(_Block):
  """Pre-activation basic block (He et al. 2016b, Fig. 4e): BN-ReLU-conv-BN-ReLU-conv, + shortcut.

  A projection shortcut reads the pre-activated input, as in the authors' code.
  """

  @nn.compact
  def __call__(self, x, gate=1.0, route=None, coef=None):
    pre = self.pre_activation(x, coef)
    y = self.conv(self.features, 3, self.strides, "conv1")(pre)
    y = self.norm_act(y, "bn2", last=True)
    y = self.finish(self.conv(self.features, 3, 1, "conv2", "last")(y), coef)
    return self.merge(self.skip(x, pre), y, gate, route, coef, post_act=False)


class PreActBottleneckBlock(_Block):
  """Pre-activation bottleneck (He et al. 2016b): BN-ReLU-1x1, BN-ReLU-3x3 (stride), BN-ReLU-1x1
  (4w)."""

  @nn.compact
  def __call__(self, x, gate=1.0, route=None, coef=None):
    width = self.features // 4
    pre = self.pre_activation(x, coef)
    y = self.conv(width, 1, 1, "conv1")(pre)
    y = self.conv(width, 3, self.strides, "conv2")(self.norm_act(y, "bn2"))
    y = self.conv(self.features, 1, 1, "conv3", "last")(self.norm_act(y, "bn3", last=True))
    y = self.finish(y, coef)
    return self.merge(self.skip(x, pre), y, gate, route, coef, post_act=False)


BLOCKS = {
  ("basic", False): BasicBlock,
  ("bottleneck", False): BottleneckBlock,
  ("basic", True): PreActBasicBlock,
  ("bottleneck", True): PreActBottleneckBlock,
}
