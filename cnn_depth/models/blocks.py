"""The blocks of the ResNets and their plain twins, post- and pre-activation, basic and bottleneck.

Each is called as block(x, gate, route) with a scalar (or per-sample) gate and an optional route
code (gating.py): a residual block gives skip + gate * branch, a plain block passes its option-A
shortcut where the gate deletes it. resnet.py stacks them into stages.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from cnn_depth import layers
from cnn_depth.layers import Conv
from cnn_depth.models import gating

Dtype = Any


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

  def conv(self, features, kernel_size, strides=1, name=None):
    return Conv(features, kernel_size, strides, self.dtype, self.conv_impl, name=name)

  def last_norm(self, name, relu=False):
    init = nn.initializers.zeros if self.zero_init_last else nn.initializers.ones
    return self.norm(name=name, scale_init=init, relu=relu)

  def changes_shape(self, x):
    return self.strides != 1 or x.shape[-1] != self.features

  def skip(self, x, projection_input=None):
    """The shortcut: identity, option A at a shape change, or option B's projection (residual
    nets)."""
    if not self.changes_shape(x):
      return x
    if self.residual and self.shortcut == "B":
      src = x if projection_input is None else projection_input
      return layers.ProjectionShortcut(
        self.features, self.strides, self.norm, self.dtype, self.conv_impl, name="proj"
      )(src)
    return layers.shortcut_a(x, self.features, self.strides)

  def merge(self, skip, branch, gate, route, post_relu: bool):
    if self.residual:
      out = gating.merge(skip, branch, gate, route)
      return nn.relu(out) if post_relu else out
    # Plain block: gate 0 deletes it (passes the parameter-free shortcut instead).
    return gating.plain_merge(skip, nn.relu(branch) if post_relu else branch, gate, route)


class BasicBlock(_Block):
  """Post-activation basic block (He et al. 2016, Fig. 2): conv-BN-ReLU-conv-BN, + shortcut,
  ReLU."""

  @nn.compact
  def __call__(self, x, gate=1.0, route=None):
    y = self.conv(self.features, 3, self.strides, "conv1")(x)
    y = self.norm(name="bn1", relu=True)(y)
    y = self.conv(self.features, 3, 1, "conv2")(y)
    y = self.last_norm("bn2")(y)
    return self.merge(self.skip(x), y, gate, route, post_relu=True)


class BottleneckBlock(_Block):
  """Post-activation bottleneck (He et al. 2016, Fig. 5): 1x1 (w) - 3x3 (w) - 1x1 (4w).

  As in the paper (and Caffe release), the stride sits on the first 1x1 convolution by default;
  `bottleneck_stride='3x3'` puts it on the 3x3, as torchvision's and timm's "v1.5" do (same
  parameters, 4.1G instead of 3.8G multiply-adds for ResNet-50).
  """

  @nn.compact
  def __call__(self, x, gate=1.0, route=None):
    if self.bottleneck_stride not in ("1x1", "3x3"):
      raise ValueError(f"bottleneck_stride must be '1x1' or '3x3', got {self.bottleneck_stride!r}")
    s1, s3 = (self.strides, 1) if self.bottleneck_stride == "1x1" else (1, self.strides)
    width = self.features // 4
    y = self.norm(name="bn1", relu=True)(self.conv(width, 1, s1, "conv1")(x))
    y = self.norm(name="bn2", relu=True)(self.conv(width, 3, s3, "conv2")(y))
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
  """Pre-activation bottleneck (He et al. 2016b): BN-ReLU-1x1, BN-ReLU-3x3 (stride), BN-ReLU-1x1
  (4w)."""

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
