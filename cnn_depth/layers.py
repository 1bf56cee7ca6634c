"""Building blocks shared by every model: convolutions, BatchNorm, shortcuts, pooling; NHWC
everywhere (XLA's preferred layout on TPU and GPU, and the one the CPU backward is written for)."""

from __future__ import annotations

import functools
import math
import typing
from typing import Any, Callable, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

Dtype = Any
ConvImpl = Literal["auto", "xla", "cpu_vjp"]

# He et al. 2015 ("Delving deep into rectifiers"), eq. (10) in its backward form,
# std = sqrt(2 / (k*k*c_out)): the initialisation of fb.resnet.torch and torchvision, used for every
# convolution here.
he_normal = nn.initializers.variance_scaling(2.0, "fan_out", "normal")

_DN = ("NHWC", "HWIO", "NHWC")


_conv = functools.partial(lax.conv_general_dilated, dimension_numbers=_DN)


def _conv_cpu(x, kernel, strides, padding, lhs_dilation=(1, 1)):
  """`_conv`, with the input padded first where the kernel is larger than it (2x2 maps in the digits
  nets): XLA swaps such a convolution's operands, a form 10-20x slower on CPU (NOTES.md)."""
  dilated = [(n - 1) * d + 1 for n, d in zip(x.shape[1:3], lhs_dilation)]
  if all(n >= k for n, k in zip(dilated, kernel.shape[:2])):
    return _conv(x, kernel, strides, padding, lhs_dilation=lhs_dilation)
  config = [(0, 0, 0), *((lo, hi, d - 1) for (lo, hi), d in zip(padding, lhs_dilation)), (0, 0, 0)]
  x = lax.optimization_barrier(lax.pad(x, jnp.zeros((), x.dtype), config))
  return _conv(x, kernel, strides, ((0, 0), (0, 0)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_cpu_vjp(x, kernel, strides: tuple[int, int], padding: tuple[tuple[int, int], ...]):
  """A 2-D convolution (NHWC x HWIO) whose backward pass is written out as two forward convolutions.

  Same values and gradients as `lax.conv_general_dilated`. It exists for XLA:CPU: inside a
  scan/while loop the backward convolutions XLA derives get non-canonical layouts and miss the fast
  CPU kernels (20-30x slower; jax-ml/jax#12868; benchmarks/NOTES.md). Here the input gradient is a
  convolution of the output gradient with the flipped, transposed kernel, and the kernel gradient a
  convolution over transposed activations; `optimization_barrier` keeps XLA from folding the
  explicit transposes back into a layout-changing convolution.
  """
  return _conv_cpu(x, kernel, strides, padding)


def _conv_cpu_vjp_fwd(x, kernel, strides, padding):
  return _conv_cpu(x, kernel, strides, padding), (x, kernel)


def _conv_cpu_vjp_bwd(strides, padding, res, g):
  x, kernel = res
  kh, kw = kernel.shape[:2]
  in_hw = x.shape[1:3]
  g = g.astype(x.dtype)
  # Rows of the padded input that the strided window never reached (r below) shift the padding.
  rem = [(n + lo + hi - k) % s for n, (lo, hi), k, s in zip(in_hw, padding, (kh, kw), strides)]

  # d/dx: convolve the stride-dilated output gradient with the spatially flipped kernel, in/out
  # swapped.
  flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
  dx_pad = [(k - 1 - lo, k - 1 - hi + r) for (lo, hi), k, r in zip(padding, (kh, kw), rem)]
  dx = _conv_cpu(g, flipped, (1, 1), dx_pad, lhs_dilation=strides)

  # d/dkernel: a convolution whose "batch" is the input channels and whose "features" are the
  # examples. The first barrier keeps the transposes plain copies: fused with the scan's slice of
  # the saved activations they ran 2-3x slower (NOTES.md, CPU).
  x, g = lax.optimization_barrier((x, g))
  xt = lax.optimization_barrier(x.transpose(3, 1, 2, 0))  # (C_in, H, W, N)
  gt = lax.optimization_barrier(g.transpose(1, 2, 0, 3))  # (H_out, W_out, N, C_out)
  dk_pad = [(lo, hi - r) for (lo, hi), r in zip(padding, rem)]
  dk = lax.conv_general_dilated(xt, gt, (1, 1), dk_pad, rhs_dilation=strides, dimension_numbers=_DN)
  dk = dk.transpose(1, 2, 0, 3)  # (C_in, kh, kw, C_out) -> HWIO
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


conv_cpu_vjp.defvjp(_conv_cpu_vjp_fwd, _conv_cpu_vjp_bwd)


def resolve_conv_impl(impl: ConvImpl) -> str:
  """'auto' picks the explicit-backward convolution on CPU only (the GPU/TPU paths do not need
  it)."""
  if impl == "auto":
    return "cpu_vjp" if jax.default_backend() == "cpu" else "xla"
  if impl not in ("xla", "cpu_vjp"):
    raise ValueError(f"conv_impl must be 'auto', 'xla' or 'cpu_vjp', got {impl!r}")
  return impl


_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}


@functools.cache
def _cpu_options_supported() -> bool:
  try:  # one tiny compile per process
    jax.jit(lambda x: x + 1, compiler_options=_CPU_OPTIONS).lower(1.0).compile()
  except (RuntimeError, ValueError):
    return False
  return True


def compiler_options() -> dict[str, str] | None:
  """XLA options for a program that runs these layers: `jax.jit(f, compiler_options=...)`.

  XLA:CPU (jaxlib 0.10) runs convolutions through YNNPACK by default; for the CIFAR nets' 16-64
  channels Eigen's are faster (the ResNet-20 train step 1.3x, benchmarks/NOTES.md), so YNNPACK
  keeps the reductions only. None off CPU, or where the installed jaxlib lacks the option."""
  return dict(_CPU_OPTIONS) if jax.default_backend() == "cpu" and _cpu_options_supported() else None


class Conv(nn.Module):
  """A convolution with He-normal init and torch-style symmetric padding (k//2 unless `padding`
  says).

  Bias-free by default (every ResNet convolution is followed by BN); `use_bias=True` adds a
  zero-init `bias`, as the classic nets (AlexNet, VGG, NiN, GoogLeNet) have. Parameters are stored
  as `kernel` (HWIO, float32) and `bias`; computation runs in `dtype`. `kernel_init` and
  `bias_init` are jax initialisers (`models.inits` has the fixes for depth's: orthogonal,
  delta-orthogonal, N(0, sigma_b2) biases).

  `standardize=True` convolves with the scaled weight-standardised kernel of the normaliser-free
  ResNets (Brock, De & Smith 2021, eq. 4): gain * (W - mean(W)) / (std(W) * sqrt(fan_in)), the
  statistics per output channel, with a learnable `gain` (per output channel, init 1), as NFNets'
  WSConv2D computes it (github.com/deepmind/deepmind-research, nfnets/base.py: the variance times
  fan_in floored at 1e-4).
  """

  features: int
  kernel_size: int = 3
  strides: int = 1
  dtype: Dtype = jnp.float32
  conv_impl: ConvImpl = "auto"
  padding: int | None = None  # zero rows/columns on every side; None: k // 2
  use_bias: bool = False
  kernel_init: Callable[..., jax.Array] = he_normal
  bias_init: Callable[..., jax.Array] = nn.initializers.zeros
  standardize: bool = False  # scaled weight standardisation with a learnable gain (NF-ResNets)

  def multiply_adds(self, in_shape, out_shape) -> int:
    """Forward multiply-adds per example (He et al.'s "FLOPs"; `models.multiply_adds` sums them)."""
    return math.prod(out_shape[1:]) * self.kernel_size**2 * in_shape[-1]

  @nn.compact
  def __call__(self, x):
    k, s = self.kernel_size, self.strides
    shape = (k, k, x.shape[-1], self.features)
    kernel = self.param("kernel", self.kernel_init, shape, jnp.float32)
    if self.standardize:
      gain = self.param("gain", nn.initializers.ones, (self.features,), jnp.float32)
      kernel = standardize_weight(kernel, gain)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    p = k // 2 if self.padding is None else self.padding
    padding = ((p, p), (p, p))
    if resolve_conv_impl(self.conv_impl) == "cpu_vjp":
      y = conv_cpu_vjp(x, kernel, (s, s), padding)
    else:
      y = _conv(x, kernel, (s, s), padding)
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32).astype(self.dtype)
    return y


def standardize_weight(kernel, gain, eps: float = 1e-4):
  """Scaled weight standardisation of an HWIO kernel (Brock, De & Smith 2021, eq. 4), NFNets'
  WSConv2D.standardize_weight line for line: gain * (W - mean) * rsqrt(max(var * fan_in, eps)),
  mean and (biased) variance over each output channel's fan_in = k * k * c_in weights."""
  mean = jnp.mean(kernel, axis=(0, 1, 2), keepdims=True)
  var = jnp.var(kernel, axis=(0, 1, 2), keepdims=True)
  fan_in = math.prod(kernel.shape[:-1])
  scale = lax.rsqrt(jnp.maximum(var * fan_in, eps)) * gain
  shift = mean * scale
  return kernel * scale - shift


BNImpl = Literal["fused", "flax"]


def check_bn_impl(impl: str) -> None:
  """Refuses a BatchNorm implementation other than 'fused' or 'flax' (see `batch_norm`)."""
  if impl not in typing.get_args(BNImpl):
    raise ValueError(f"bn_impl must be 'fused' or 'flax', got {impl!r}")


def batch_norm(
  train: bool, dtype: Dtype, groups: int = 1, impl: BNImpl = "fused"
) -> functools.partial:
  """BatchNorm as the papers use it (momentum 0.9 in flax terms = 0.1 in torch terms, eps 1e-5).

  Statistics and parameters stay float32 whatever `dtype` computes in. Under `jax.jit` with a
  sharded batch, the statistics are over the *global* batch. `groups > 1` computes them per group of
  consecutive examples instead ("ghost" batch norm): with groups = the number of devices, each
  device's shard is one group, which is what the papers' multi-GPU Torch/Caffe code did.

  `impl='fused'` is `BatchNorm` below (the same function with a hand-written backward pass, fewer
  kernels on a GPU); `'flax'` is `flax.linen.BatchNorm`, kept as the reference. Both have the same
  variables, so a checkpoint does not care which one trained. Each takes `relu=True` for BN followed
  by a ReLU, which the fused one computes inside its forward and backward passes.
  """
  if groups > 1:
    return functools.partial(
      GhostBatchNorm,
      use_running_average=not train,
      groups=groups,
      momentum=0.9,
      epsilon=1e-5,
      dtype=dtype,
    )
  check_bn_impl(impl)
  cls = BatchNorm if impl == "fused" else FlaxBatchNorm
  return functools.partial(
    cls, use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype
  )


class FlaxBatchNorm(nn.BatchNorm):
  """`flax.linen.BatchNorm`, then a ReLU if `relu`: `BatchNorm`'s reference (same variables)."""

  relu: bool = False

  def __call__(self, x, *args, **kwargs):
    y = super().__call__(x, *args, **kwargs)
    return nn.relu(y) if self.relu else y


def _channel_sums(a, b):
  """Per-channel sums of two same-shape float32 arrays over all but the last axis, as ONE reduction.

  Concatenated along the channels, so XLA emits one (two-stage) reduction for both sums instead of a
  shared first stage and a final pass each (benchmarks/NOTES.md, kernel counts). Not a variadic
  `lax.reduce`: XLA:CPU sums that sequentially, 20x less accurate in float32 than `jnp.sum`.
  """
  c = a.shape[-1]
  s = jnp.sum(jnp.concatenate([a, b], axis=-1), axis=tuple(range(a.ndim - 1)))
  return s[:c], s[c:]


def _bn_stats(x):
  """(mean, biased variance) over all but the last axis, in float32, from one reduction."""
  xf = x.astype(jnp.float32)
  count = xf.size // xf.shape[-1]
  total, total_sq = _channel_sums(xf, xf * xf)
  mean = total / count
  return mean, jnp.maximum(total_sq / count - jnp.square(mean), 0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def bn_train(x, scale, bias, epsilon: float, relu: bool = False):
  """Training-mode batch normalisation (then a ReLU if `relu`): (y, batch mean, batch variance), the
  statistics over all axes but the last, in float32; y has x's dtype.

  The same function as flax's BatchNorm (E[x^2] - E[x]^2 variance, clipped at 0) and `nn.relu`, with
  the backward pass written out: dx = scale / sigma * (g - mean(g) - xhat * mean(g * xhat)), with
  both sums from one reduction and the ReLU's mask recomputed inside it. Left to autodiff, XLA:GPU
  emits about eight reduction kernels per BN layer; this needs two forward and two backward
  (benchmarks/NOTES.md).
  """
  return _bn_train_fwd(x, scale, bias, epsilon, relu)[0]


def _bn_pre_activation(xc, inv, scale, bias):
  """The BN output before the ReLU, one expression for the forward pass and the backward's mask."""
  return xc * (scale * inv) + bias


def _bn_train_fwd(x, scale, bias, epsilon, relu):
  mean, var = _bn_stats(x)
  inv = lax.rsqrt(var + epsilon)
  y = _bn_pre_activation(x.astype(jnp.float32) - mean, inv, scale, bias)
  y = (jnp.maximum(y, 0.0) if relu else y).astype(x.dtype)
  return (y, mean, var), (x, mean, inv, scale, bias)


def _bn_train_bwd(epsilon, relu, res, cotangents):
  del epsilon
  x, mean, inv, scale, bias = res
  g, g_mean, g_var = cotangents
  count = x.size // x.shape[-1]
  xc = x.astype(jnp.float32) - mean
  xhat = xc * inv
  g = g.astype(jnp.float32)
  if relu:  # d relu(z) / dz = 1 where z > 0, else 0 (as jax.nn.relu)
    g = jnp.where(_bn_pre_activation(xc, inv, scale, bias) > 0, g, 0.0)
  d_bias, d_scale = _channel_sums(g, g * xhat)
  dx = (scale * inv / count) * (count * g - d_bias - xhat * d_scale)
  # The batch statistics are outputs too (for the running averages); their cotangents are zero in
  # training, but a caller that differentiates through them gets the exact gradient.
  dx = dx + (g_mean + 2.0 * g_var * xc) / count
  return dx.astype(x.dtype), d_scale, d_bias


bn_train.defvjp(_bn_train_fwd, _bn_train_bwd)


def _bn_variables(module: nn.Module, c: int):
  """flax's BatchNorm variables in `module`: params scale and bias, batch_stats mean and var."""
  scale = module.param("scale", module.scale_init, (c,), jnp.float32)
  bias = module.param("bias", module.bias_init, (c,), jnp.float32)
  ra_mean = module.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
  ra_var = module.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
  return scale, bias, ra_mean, ra_var


def _bn_inference(module: nn.Module, x, scale, bias, mean, var):
  """Inference-mode BN with the running averages (then the module's ReLU), as flax computes it."""
  y = (x.astype(jnp.float32) - mean) * (scale * lax.rsqrt(var + module.epsilon)) + bias
  return (jnp.maximum(y, 0.0) if module.relu else y).astype(module.dtype)


class BatchNorm(nn.Module):
  """BatchNorm over all axes but the last (then a ReLU if `relu`), with `bn_train`'s backward pass.

  Same variables, arguments and values as `flax.linen.BatchNorm` as `batch_norm` configures it
  (params scale/bias, batch_stats mean/var; running averages with `momentum`).
  """

  use_running_average: bool
  relu: bool = False
  momentum: float = 0.9
  epsilon: float = 1e-5
  dtype: Dtype = jnp.float32
  scale_init: Any = nn.initializers.ones
  bias_init: Any = nn.initializers.zeros

  @nn.compact
  def __call__(self, x):
    scale, bias, ra_mean, ra_var = _bn_variables(self, x.shape[-1])
    if self.use_running_average:
      return _bn_inference(self, x, scale, bias, ra_mean.value, ra_var.value)
    y, mean, var = bn_train(x.astype(self.dtype), scale, bias, self.epsilon, self.relu)
    if not self.is_initializing():
      m = self.momentum
      ra_mean.value = m * ra_mean.value + (1 - m) * mean
      ra_var.value = m * ra_var.value + (1 - m) * var
    return y


class GhostBatchNorm(BatchNorm):
  """BatchNorm whose training statistics are computed per group of `batch / groups` examples.

  Same variables as `nn.BatchNorm` (params scale/bias, batch_stats mean/var), so checkpoints and
  analysis code do not care which one trained; the running averages take the mean over groups.
  Its backward pass is autodiff's.
  """

  groups: int = 1

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    scale, bias, ra_mean, ra_var = _bn_variables(self, c)
    if self.use_running_average:
      return _bn_inference(self, x, scale, bias, ra_mean.value, ra_var.value)
    if x.shape[0] % self.groups:
      raise ValueError(f"batch {x.shape[0]} is not divisible into {self.groups} BN groups")
    xg = x.astype(jnp.float32).reshape((self.groups, -1) + x.shape[1:])
    axes = tuple(range(1, xg.ndim - 1))
    mean = jnp.mean(xg, axes, keepdims=True)
    var = jnp.maximum(jnp.mean(jnp.square(xg), axes, keepdims=True) - jnp.square(mean), 0.0)
    y = (xg - mean) * (scale * lax.rsqrt(var + self.epsilon)) + bias
    if not self.is_initializing():
      m = self.momentum
      ra_mean.value = m * ra_mean.value + (1 - m) * mean.reshape(self.groups, c).mean(0)
      ra_var.value = m * ra_var.value + (1 - m) * var.reshape(self.groups, c).mean(0)
    y = nn.relu(y) if self.relu else y
    return y.reshape(x.shape).astype(self.dtype)


def shortcut_a(x, features: int, strides: int):
  """He et al. option A: identity; at a dimension change subsample by the stride and zero-pad
  channels.

  Parameter-free. The channel padding is split evenly before and after, as in the widely used CIFAR
  implementations.
  """
  if strides > 1:
    x = x[:, ::strides, ::strides, :]
  extra = features - x.shape[-1]
  if extra < 0:
    raise ValueError(f"option A cannot shrink channels ({x.shape[-1]} -> {features})")
  if extra:
    x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
  return x


class ProjectionShortcut(nn.Module):
  """He et al. option B at a dimension change: 1x1 convolution with the block's stride, then BN.

  `conv` makes the convolution (a `Conv` with the net's initialisers, biases or standardisation:
  functools.partial(Conv, ...))."""

  features: int
  strides: int
  norm: Any
  dtype: Dtype = jnp.float32
  conv_impl: ConvImpl = "auto"
  with_norm: bool = True
  conv: Any = Conv

  @nn.compact
  def __call__(self, x):
    x = self.conv(self.features, 1, self.strides, self.dtype, self.conv_impl, name="conv")(x)
    return self.norm(name="bn")(x) if self.with_norm else x


def adaptive_avg_pool(x, size: int):
  """torch.nn.AdaptiveAvgPool2d((size, size)): output cell i averages rows
  floor(iH/s)..ceil((i+1)H/s).

  The identity when the map already is size x size; smaller maps are repeated (as in torch).
  """
  _, h, w, _ = x.shape
  if (h, w) == (size, size):
    return x
  rows = [
    x[:, (i * h) // size : -(-(i + 1) * h // size)].mean(1, keepdims=True) for i in range(size)
  ]
  x = jnp.concatenate(rows, 1)
  cols = [
    x[:, :, (j * w) // size : -(-(j + 1) * w // size)].mean(2, keepdims=True) for j in range(size)
  ]
  return jnp.concatenate(cols, 2)
