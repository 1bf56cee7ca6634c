"""The activation functions a net can use, one registry entry each, and their transformed form.

Each `Activation` holds the function twice: in `jax.numpy` for the nets, and in float64 NumPy
(with its derivative) for the theory that reads it at build time and the studies that plot it:
mean-field signal propagation (`meanfield.py`: q*, chi_1, depth scales) and kernel shaping
(`shaping.py`: DKS and TAT). The NumPy forms are those of DeepMind's `dks` package
(`dks/base/activation_getter.py`), whose solved constants the shaping tests compare against: the
same names, the same definitions (its GELU is the tanh approximation, `gelu_exact` the erf form).

A transformed activation (Martens et al. 2021, "Rapid training of deep neural networks without
skip connections or normalization layers using Deep Kernel Shaping", eq. 4) is
gamma * (phi(alpha * x + beta) + delta): `Transform` holds (alpha, beta, gamma, delta) as dks names
them (input_scale, input_shift, output_scale, output_shift); TAT's leaky ReLU also sets the slope.

Adding an activation is one `register(Activation(...))` call.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth import lazy_import

# SciPy only where the float64 maps are evaluated (the solver, the theory): not at every start.
special = lazy_import("scipy.special")

_SELU_LAMBDA = 1.0507009873554804934193349852946
_SELU_ALPHA = 1.6732632423543772848170429916717
_SQRT_2_PI = np.sqrt(2.0 / np.pi)


@dataclasses.dataclass(frozen=True)
class Activation:
  """One activation function.

  `fn(x, **params)` is the jax.numpy form used by the nets; `numpy(x, **params)` and
  `derivative(x, **params)` the float64 forms the theory integrates (they accept arrays). `params`
  names the keyword parameters the function takes with their defaults (leaky ReLU's
  negative_slope). `transforms` lists the kernel-shaping methods that apply ('dks', 'tat'): ReLU has
  neither (dks itself refuses TAT on ReLU and discourages DKS; use leaky ReLU). `smooth` activations
  are shaped by TAT through the curvature of their C map, leaky ReLU through C(0).
  """

  name: str
  fn: Callable[..., jax.Array]
  numpy: Callable[..., np.ndarray]
  derivative: Callable[..., np.ndarray]
  smooth: bool = True
  transforms: tuple[str, ...] = ("dks", "tat")
  params: tuple[tuple[str, float], ...] = ()


ACTIVATIONS: dict[str, Activation] = {}


def register(activation: Activation, *, replace: bool = False) -> Activation:
  """Adds `activation` to the registry (a second one of the same name needs `replace=True`)."""
  if activation.name in ACTIVATIONS and not replace:
    raise ValueError(f"activation {activation.name!r} is already registered")
  ACTIVATIONS[activation.name] = activation
  return activation


def get(name: str) -> Activation:
  if name not in ACTIVATIONS:
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
  return ACTIVATIONS[name]


@dataclasses.dataclass(frozen=True)
class Transform:
  """gamma * (phi(alpha * x + beta) + delta), in dks's names; the identity by default."""

  input_scale: float = 1.0  # alpha
  input_shift: float = 0.0  # beta
  output_scale: float = 1.0  # gamma
  output_shift: float = 0.0  # delta


IDENTITY = Transform()


def make(name: str, transform: Transform = IDENTITY, **params) -> Callable[[jax.Array], jax.Array]:
  """The jax.numpy activation `name` with `params` (e.g. negative_slope), transformed: what a
  net's layers call."""
  act = get(name)
  fn = functools.partial(act.fn, **params) if params else act.fn
  if transform == IDENTITY:
    return fn
  t = transform

  def transformed(x):
    return t.output_scale * (fn(t.input_scale * x + t.input_shift) + t.output_shift)

  return transformed


# --------------------------------------------------------------------------------------------------
# The entries (NumPy forms as in dks/base/activation_getter.py).


def _np_relu(x):
  return np.maximum(0.0, x)


def _np_leaky_relu(x, negative_slope=0.01):
  return np.where(x < 0, negative_slope * x, x)


def _np_elu(x, a=1.0, scale=1.0):
  return scale * np.where(x < 0, a * np.expm1(np.minimum(x, 0.0)), x)


def _np_softplus(x):
  return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)


def _np_gelu(x):  # the tanh approximation (jax.nn.gelu's default)
  return x * 0.5 * (1.0 + np.tanh(_SQRT_2_PI * (x + 0.044715 * x**3)))


def _np_gelu_derivative(x):
  u = _SQRT_2_PI * (x + 0.044715 * x**3)
  t = np.tanh(u)
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * _SQRT_2_PI * (1.0 + 3 * 0.044715 * x**2)


def _np_gelu_exact(x):
  return x * (special.erf(x / np.sqrt(2.0)) + 1.0) / 2.0


def _np_gelu_exact_derivative(x):
  return (special.erf(x / np.sqrt(2.0)) + 1.0) / 2.0 + x * np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi)


def _jnp_elu(x, a=1.0, scale=1.0):
  return scale * jnp.where(x < 0, a * jnp.expm1(jnp.minimum(x, 0.0)), x)


register(
  Activation(
    "relu",
    jax.nn.relu,
    _np_relu,
    lambda x: (np.asarray(x) > 0).astype(np.float64),
    smooth=False,
    transforms=(),
  )
)
register(
  Activation(
    "leaky_relu",
    lambda x, negative_slope=0.01: jnp.where(x < 0, negative_slope * x, x),
    _np_leaky_relu,
    lambda x, negative_slope=0.01: np.where(np.asarray(x) < 0, negative_slope, 1.0),
    smooth=False,
    params=(("negative_slope", 0.01),),
  )
)
register(Activation("tanh", jnp.tanh, np.tanh, lambda x: 1.0 - np.tanh(x) ** 2))
register(
  Activation(
    "erf",
    jax.scipy.special.erf,
    lambda x: special.erf(x),
    lambda x: 2.0 / np.sqrt(np.pi) * np.exp(-np.square(x)),
  )
)
register(
  Activation(
    "sigmoid",
    jax.nn.sigmoid,
    lambda x: special.expit(x),
    lambda x: special.expit(x) * special.expit(-x),
  )
)
register(Activation("softplus", jax.nn.softplus, _np_softplus, lambda x: special.expit(x)))
register(
  Activation(
    "elu", _jnp_elu, _np_elu, lambda x: np.where(np.asarray(x) < 0, np.exp(np.minimum(x, 0)), 1.0)
  )
)
register(
  Activation(
    "selu",
    functools.partial(_jnp_elu, a=_SELU_ALPHA, scale=_SELU_LAMBDA),
    functools.partial(_np_elu, a=_SELU_ALPHA, scale=_SELU_LAMBDA),
    lambda x: _SELU_LAMBDA * np.where(np.asarray(x) < 0, _SELU_ALPHA * np.exp(np.minimum(x, 0)), 1),
    smooth=False,  # its derivative jumps at 0 (lambda*alpha to lambda): C''(1) is infinite
    transforms=("dks",),
  )
)
register(
  Activation(
    "swish",
    jax.nn.silu,
    lambda x: x * special.expit(x),
    lambda x: special.expit(x) * (1.0 + x * special.expit(-x)),
  )
)
register(Activation("gelu", jax.nn.gelu, _np_gelu, _np_gelu_derivative))
register(
  Activation(
    "gelu_exact",
    functools.partial(jax.nn.gelu, approximate=False),
    _np_gelu_exact,
    _np_gelu_exact_derivative,
  )
)
