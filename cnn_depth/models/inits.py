"""The kernel initialisers a net's convolutions can draw from, one registry entry each, and the
biases' N(0, sigma_b2).

Each entry turns sigma_w2 (the weight variance of the mean-field papers, sigma_w^2) into an
ordinary jax initialiser `(key, shape, dtype) -> array` for HWIO kernels (and (in, out) matrices):

* 'he': N(0, sigma_w2 / fan_out), He et al. 2015 ("Delving deep into rectifiers") eq. 10 in its
  backward form; sigma_w2 = 2 is `layers.he_normal`, every net's draw until now, value for value.
* 'gaussian': N(0, sigma_w2 / fan_in), the i.i.d. Gaussian nets of the mean-field papers (Poole et
  al. 2016; Schoenholz et al. 2017, "Deep information propagation": W ~ N(0, sigma_w^2 / N)).
* 'orthogonal': a Haar-orthogonal (k*k*c_in) x c_out matrix times sqrt(sigma_w2)
  (`jax.nn.initializers.orthogonal`; Saxe et al. 2014).
* 'delta_orthogonal': Xiao et al. 2018 ("Dynamical isometry and a mean field theory of CNNs",
  Algorithm 2): every tap zero but the centre one, an orthogonal c_in x c_out matrix times
  sqrt(sigma_w2). `jax.nn.initializers.delta_orthogonal` for c_in <= c_out; for fewer outputs than
  inputs (bottleneck reductions, where jax's raises) DKS's scaled uniform orthogonal rule, whose
  factor max(sqrt(c_out / c_in), 1) is 1 there: the orthogonal matrix with orthonormal columns.
* 'suo': DKS's scaled uniform orthogonal sampler (Martens et al. 2021, "Rapid training of deep
  neural networks without skip connections or normalization layers using Deep Kernel Shaping",
  section "Parameter distributions"; `dks.jax.parameter_sampling_functions`), the initialisation
  DKS and TAT assume: delta-orthogonal rescaled by max(sqrt(c_out / c_in), 1) so that every layer
  keeps the per-unit q, times sqrt(sigma_w2) (1 in DKS).

Adding an initialiser is one `register(Init(...))` call.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]  # (key, shape, dtype) -> array


@dataclasses.dataclass(frozen=True)
class Init:
  """One kernel initialiser: `make(sigma_w2)` is the jax initialiser; `description` says what it
  draws and from which paper (the models table lists it)."""

  name: str
  make: Callable[[float], Initializer]
  description: str


INITS: dict[str, Init] = {}


def register(init: Init, *, replace: bool = False) -> Init:
  """Adds `init` to the registry (a second one of the same name needs `replace=True`)."""
  if init.name in INITS and not replace:
    raise ValueError(f"initialiser {init.name!r} is already registered")
  INITS[init.name] = init
  return init


def get(name: str) -> Init:
  if name not in INITS:
    raise ValueError(f"unknown initialiser {name!r}; known: {', '.join(INITS)}")
  return INITS[name]


def names() -> tuple[str, ...]:
  return tuple(INITS)


def kernel(name: str, sigma_w2: float = 2.0) -> Initializer:
  """The jax initialiser of kernel initialiser `name` with weight variance `sigma_w2`."""
  if not (isinstance(sigma_w2, (int, float)) and math.isfinite(sigma_w2) and sigma_w2 > 0):
    raise ValueError(f"sigma_w2={sigma_w2!r} cannot be used: give a finite number > 0")
  return get(name).make(float(sigma_w2))


def bias(sigma_b2: float = 0.0) -> Initializer:
  """N(0, sigma_b2) (Schoenholz et al. 2017's b ~ N(0, sigma_b^2)); zeros, drawing nothing, for
  sigma_b2 = 0."""
  if not (isinstance(sigma_b2, (int, float)) and math.isfinite(sigma_b2) and sigma_b2 >= 0):
    raise ValueError(f"sigma_b2={sigma_b2!r} cannot be used: give a finite number >= 0")
  if sigma_b2 == 0:
    return jax.nn.initializers.zeros
  return jax.nn.initializers.normal(math.sqrt(sigma_b2))


def _at_centre(matrix: jax.Array, shape) -> jax.Array:
  """A kernel of `shape` that is zero but for its centre tap, `matrix` (a 2-D shape: `matrix`)."""
  if len(shape) == 2:
    return matrix
  if any(s % 2 != 1 for s in shape[:-2]):
    raise ValueError(f"a delta initialisation needs odd spatial sizes, got kernel shape {shape}")
  centre = tuple((s - 1) // 2 for s in shape[:-2])
  return jnp.zeros(shape, matrix.dtype).at[centre].set(matrix)


def scaled_uniform_orthogonal(scale: float = 1.0) -> Initializer:
  """DKS's SUO sampler (delta form for kernels): `scale` * max(sqrt(c_out / c_in), 1) times a
  Haar-orthogonal c_in x c_out matrix at the centre tap.

  Drawn with `jax.nn.initializers.orthogonal`, which samples as dks's `_uniform_orthogonal` does
  (QR of a normal matrix, signs fixed by R's diagonal) but returns the square matrix transposed:
  transposed back here, a draw equals dks's for the same key.
  """

  def init(key, shape, dtype=jnp.float32):
    c_in, c_out = shape[-2], shape[-1]
    factor = max(math.sqrt(c_out / c_in), 1.0)
    matrix = jax.nn.initializers.orthogonal(scale * factor)(key, (c_in, c_out), dtype)
    return _at_centre(matrix.T if c_in == c_out else matrix, shape)

  return init


def delta_orthogonal(scale: float = 1.0) -> Initializer:
  """Xiao et al. 2018's delta-orthogonal kernel times `scale`: jax's where it covers the shape
  (c_in <= c_out), else the SUO rule (the same thing there: orthonormal columns, factor 1)."""

  def init(key, shape, dtype=jnp.float32):
    if len(shape) == 2:
      return jax.nn.initializers.orthogonal(scale)(key, shape, dtype)
    if shape[-2] <= shape[-1]:
      return jax.nn.initializers.delta_orthogonal(scale)(key, shape, dtype)
    return scaled_uniform_orthogonal(scale)(key, shape, dtype)

  return init


register(
  Init(
    "he",
    lambda s: jax.nn.initializers.variance_scaling(s, "fan_out", "normal"),
    "N(0, sigma_w2/fan_out), He et al. 2015 (fb.resnet.torch, torchvision); the default",
  )
)
register(
  Init(
    "gaussian",
    lambda s: jax.nn.initializers.variance_scaling(s, "fan_in", "normal"),
    "N(0, sigma_w2/fan_in), the mean-field papers' i.i.d. Gaussian (Schoenholz et al. 2017)",
  )
)
register(
  Init(
    "orthogonal",
    lambda s: jax.nn.initializers.orthogonal(math.sqrt(s)),
    "a Haar-orthogonal (k*k*c_in) x c_out matrix times sigma_w (Saxe et al. 2014)",
  )
)
register(
  Init(
    "delta_orthogonal",
    lambda s: delta_orthogonal(math.sqrt(s)),
    "the centre tap an orthogonal c_in x c_out matrix times sigma_w, the rest 0 (Xiao et al. 2018)",
  )
)
register(
  Init(
    "suo",
    lambda s: scaled_uniform_orthogonal(math.sqrt(s)),
    "delta-orthogonal rescaled by max(sqrt(c_out/c_in), 1), DKS's sampler (Martens et al. 2021)",
  )
)
