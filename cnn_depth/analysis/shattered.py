"""Shattered gradients (Balduzzi et al. 2017, "The shattered gradients problem: if resnets are the
answer, then what is the question?").

Balduzzi et al. sweep a net's input along a line (a 1-D input, 256 evenly spaced points; §2, Figs. 1
and 2) and look at the gradient of the output with respect to the input at each point. In a deep
plain net neighbouring gradients are nearly uncorrelated, like white noise, the more so the deeper
the net (their analysis, §3: the correlation between the gradients of a rectifier net falls like
2^-L with depth L; batch normalization does not stop it). With skip connections it decays far more
slowly, sublinearly in L.

For images the same experiment runs along a line through image space:

* `input_line`: x_t = x0 + t * radius * d for t evenly spaced in [-1, 1], x0 a (normalised) image,
  d a direction scaled to unit RMS per input dimension, so `radius` is in units of the normalised
  input's per-pixel standard deviation (the points lie 2 * radius / (num_points - 1) apart).
* `line_gradients`: the gradient of one scalar output at every point of the line, with respect to
  the *normalised* float input (after `steps.normalize`), BN in inference mode. The scalar is by
  default the logit of the class the net predicts at the line's centre, held fixed along the line
  (a smooth function of the input whose gradient is what the net's decision responds to); a fixed
  class or a fixed random unit projection of the logits can be chosen instead.
* `gradient_correlation`: for each lag k, the mean over t of the Pearson correlation, over input
  dimensions, between g_t and g_{t+k} (`correlation_matrix` holds every pair: Balduzzi et al.'s
  covariance matrices of gradients, scale-free). Balduzzi et al. have one scalar gradient per point
  and take the autocorrelation of that sequence over t; for an image the gradient is a whole map,
  and the correlation between the maps at nearby points says directly whether the net responds to
  the same input pattern there. It is 1 at lag 0, and 1 at every lag for a linear net (a constant
  gradient), where a per-dimension autocorrelation over t would be 0 / 0; white noise gives ~0.
* `correlation_study`: the curve averaged over several lines through several base images.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth import layers, steps
from cnn_depth.analysis.results import write_table

# The scalar output whose input gradient is taken (`line_gradients`'s `output`).
PREDICTED, PROJECTION = "predicted", "projection"
_MODE_PREDICTED, _MODE_CLASS, _MODE_PROJECTION = 0, 1, 2

# --------------------------------------------------------------------------------------------------
# The line of inputs.


def input_line(x0, direction, num_points: int = 256, radius: float = 1.0) -> np.ndarray:
  """(num_points, *x0.shape) float32: x_t = x0 + t * radius * d, t evenly spaced in [-1, 1].

  `d` is `direction` rescaled to unit RMS over its entries (||d||_2 = sqrt(x0.size)), so each input
  dimension moves by about `radius` (normalised units, i.e. per-pixel standard deviations) between
  the centre and either end. With an odd `num_points` the middle point is x0 itself. The 1-D line is
  Balduzzi et al.'s setting (§2, Figs. 1 and 2: 256 points).
  """
  x0 = np.asarray(x0, np.float32)
  d = np.asarray(direction, np.float64)
  if d.shape != x0.shape:
    raise ValueError(f"direction must have the shape of x0 {x0.shape}, got {d.shape}")
  if num_points < 2:
    raise ValueError(f"a line needs num_points >= 2, got {num_points}")
  rms = np.sqrt(np.mean(np.square(d)))
  if not np.isfinite(rms) or rms == 0:
    raise ValueError("direction must be finite and not all zero")
  t = np.linspace(-1.0, 1.0, num_points)
  line = x0[None].astype(np.float64) + (radius * t).reshape((-1,) + (1,) * x0.ndim) * (d / rms)
  return line.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Input gradients along the line.


class LineGradientFunction:
  """`fn(variables, xs, output='predicted', seed=0) -> grads`: d f(x_t) / d x_t for every point of
  the line `xs` (T, H, W, C) of normalised inputs, as a float32 array of the same shape.

  f is one scalar output of the net (BN in inference mode), fixed for the whole line: `'predicted'`,
  the logit of the class predicted at the middle point xs[T // 2]; an int, that class's logit (an
  index past the last class gives zero gradients); `'projection'`, logits . w with w a random unit
  vector drawn from `seed`. The output choice, the variables and the line are arguments of one
  compiled program: any line of the same shape reuses it (`traces` counts the traces). The points
  run `batch_size` at a time (`lax.map`: vmap within a chunk), which bounds the memory.
  """

  def __init__(self, model, batch_size: int = 64):
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    self.model, self.batch_size = model, int(batch_size)
    self.traces = 0
    self.jitted = jax.jit(self._grads, compiler_options=layers.compiler_options())

  def _grads(self, variables, xs, mode, cls, key):
    self.traces += 1  # Python side effect: once per trace
    dtype = getattr(self.model, "dtype", jnp.float32)

    def logits(x):
      out = self.model.apply(variables, x[None].astype(dtype), train=False)
      return out[0].astype(jnp.float32)

    centre = logits(xs[xs.shape[0] // 2])
    num_classes = centre.shape[-1]
    projection = jax.random.normal(key, (num_classes,), jnp.float32)
    weights = jnp.select(
      [mode == _MODE_PREDICTED, mode == _MODE_CLASS],
      [jax.nn.one_hot(jnp.argmax(centre), num_classes), jax.nn.one_hot(cls, num_classes)],
      projection / jnp.linalg.norm(projection),
    )
    weights = jax.lax.stop_gradient(weights)
    grad = jax.grad(lambda x: jnp.dot(logits(x), weights))
    return jax.lax.map(grad, xs.astype(jnp.float32), batch_size=min(self.batch_size, xs.shape[0]))

  def __call__(self, variables, xs, output: str | int = PREDICTED, seed: int = 0) -> np.ndarray:
    mode, cls = _output_mode(output)
    key = jax.random.PRNGKey(seed)
    xs = jnp.asarray(xs, jnp.float32)
    return np.asarray(self.jitted(dict(variables), xs, np.int32(mode), np.int32(cls), key))


def _output_mode(output: str | int) -> tuple[int, int]:
  if isinstance(output, str):
    if output in (PREDICTED, PROJECTION):
      return (_MODE_PREDICTED if output == PREDICTED else _MODE_PROJECTION), 0
  elif isinstance(output, (int, np.integer)) and not isinstance(output, bool) and output >= 0:
    return _MODE_CLASS, int(output)
  raise ValueError(
    f"output must be 'predicted', 'projection' or a class index >= 0, got {output!r}"
  )


@functools.lru_cache(maxsize=16)
def line_gradient_fn(model, batch_size: int = 64) -> LineGradientFunction:
  """The `LineGradientFunction` of `model` (cached: equal models share one compiled program)."""
  return LineGradientFunction(model, batch_size)


def line_gradients(
  model, variables: Mapping[str, Any], xs, output: str | int = PREDICTED, seed: int = 0
) -> np.ndarray:
  """(T, H, W, C) float32: the gradient of the scalar `output` with respect to each (normalised)
  input of the line `xs`; see `LineGradientFunction` for the choice of output."""
  return line_gradient_fn(model)(variables, xs, output, seed)


# --------------------------------------------------------------------------------------------------
# Correlation of the gradients along the line.


def _unit_rows(grads) -> np.ndarray:
  """(T, D) float64: each gradient centred over its D input dimensions and scaled to unit L2 norm;
  NaN rows where a gradient is constant over the dimensions (its correlation is undefined)."""
  g = np.asarray(grads, np.float64)
  if g.ndim < 2 or g.shape[0] < 1:
    raise ValueError(f"grads must be (T, ...) with one gradient per point, got {g.shape}")
  g = g.reshape(g.shape[0], -1)
  g = g - g.mean(axis=1, keepdims=True)
  norm = np.sqrt(np.sum(np.square(g), axis=1, keepdims=True))
  with np.errstate(invalid="ignore", divide="ignore"):
    return np.where(norm > 0, g / norm, np.nan)


def correlation_matrix(grads) -> np.ndarray:
  """(T, T): the Pearson correlation, over input dimensions, of the gradients at every pair of
  points of the line (the covariance matrices of gradients Balduzzi et al. plot, in scale-free
  form). The diagonal is exactly 1; NaN rows and columns for constant gradients."""
  u = _unit_rows(grads)
  c = np.clip(u @ u.T, -1.0, 1.0)
  valid = ~np.isnan(u[:, 0])
  np.fill_diagonal(c, np.where(valid, 1.0, np.nan))
  return c


def gradient_correlation(grads, max_lag: int) -> np.ndarray:
  """(max_lag + 1,): for each lag k, the mean over t of corr(g_t, g_{t+k}), the Pearson correlation
  over input dimensions between the gradients k points apart (the mean of the k-th diagonal of
  `correlation_matrix`; T - k pairs). Lag 0 is exactly 1; a constant gradient (a linear net) gives 1
  at every lag; independent white-noise gradients give about 0 for k >= 1 (Balduzzi et al. §2).
  Pairs with a gradient constant over its dimensions are left out; NaN where none is left."""
  u = _unit_rows(grads)
  if not 0 <= max_lag < len(u):
    raise ValueError(f"max_lag must lie in [0, {len(u) - 1}] for {len(u)} points, got {max_lag}")
  valid = ~np.isnan(u[:, 0])
  out = np.full(max_lag + 1, np.nan)
  out[0] = 1.0 if valid.any() else np.nan
  for k in range(1, max_lag + 1):
    pair = valid[:-k] & valid[k:]
    if pair.any():
      c = np.sum(u[:-k][pair] * u[k:][pair], axis=1)
      out[k] = float(np.mean(np.clip(c, -1.0, 1.0)))
  return out


def _nan_mean_std(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and (population) std over axis 0, ignoring NaN, NaN where a column has no value."""
  valid = ~np.isnan(curves)
  count = valid.sum(axis=0)
  filled = np.where(valid, curves, 0.0)
  with np.errstate(invalid="ignore", divide="ignore"):
    mean = filled.sum(axis=0) / count
    var = np.where(valid, np.square(curves - mean), 0.0).sum(axis=0) / count
  return mean, np.sqrt(var)


def correlation_study(
  model,
  variables: Mapping[str, Any],
  images,
  mean: Sequence[float],
  std: Sequence[float],
  num_lines: int = 8,
  num_points: int = 256,
  radius: float = 1.0,
  max_lag: int = 32,
  seed: int = 0,
  output: str | int = PREDICTED,
) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std) over lines, each (max_lag + 1,): the gradient correlation per lag
  (`gradient_correlation`), averaged over `num_lines` lines (`input_line`).

  The lines go through base images drawn from `images` (uint8-like, normalised with `mean`, `std`)
  without repetition while there are enough, each in its own Gaussian direction, all drawn from
  `seed`; with `output='projection'` every line uses the same projection of the logits (from
  `seed`). One compiled program serves every line (`line_gradient_fn`). Lines whose correlation is
  undefined at a lag (constant gradients) are left out of that lag's mean and std.
  """
  if num_lines < 1:
    raise ValueError(f"num_lines must be >= 1, got {num_lines}")
  images = np.asarray(images)
  rng = np.random.default_rng(seed)
  order = np.concatenate(
    [rng.permutation(len(images)) for _ in range(-(-num_lines // len(images)))]
  )
  fn = line_gradient_fn(model)
  norm = tuple(map(float, mean)), tuple(map(float, std))
  curves = []
  for b in order[:num_lines]:
    x0 = np.asarray(steps.normalize(jnp.asarray(images[b]), *norm))
    xs = input_line(x0, rng.normal(size=x0.shape), num_points, radius)
    curves.append(gradient_correlation(fn(variables, xs, output, seed), max_lag))
  return _nan_mean_std(np.asarray(curves))


# --------------------------------------------------------------------------------------------------
# CSV (one row per lag, for plotting).


def write_correlation_csv(
  path, results: Mapping[tuple[str, int, int, bool], Sequence[float]]
) -> None:
  """Columns model,depth,seed,trained,lag,correlation: one row per lag (0, 1, ...) of each curve of
  `results`, keyed by (model label, depth, seed, trained); trained is written as 0/1."""
  rows = [
    (str(name), int(depth), int(seed), int(bool(trained)), lag, float(c))
    for (name, depth, seed, trained), curve in results.items()
    for lag, c in enumerate(np.asarray(curve, np.float64).ravel())
  ]
  write_table(path, ("model", "depth", "seed", "trained", "lag", "correlation"), rows)
