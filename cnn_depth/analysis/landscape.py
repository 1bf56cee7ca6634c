"""Loss landscapes of trained nets (Li et al. 2018, "Visualizing the loss landscape of neural
nets").

* `filter_normalized_direction` (§4): a random Gaussian direction in parameter space whose
  every filter is rescaled to the norm of the same filter of the weights, d_ij <- d_ij / ||d_ij||
  * ||theta_ij||. Without it the scale invariance of ReLU nets with BN makes plots of different nets
  (or of one net at different weight scales) incomparable; with it, the sharpness of two minima can
  be compared side by side (Li et al. §6: the plain nets' landscapes turn chaotic with depth, the
  ResNets' stay nearly convex).
* `LossSurface` evaluates the mean cross-entropy and the error at theta + sum_i c_i d_i for a whole
  grid of coordinates c in ONE compiled program: the directions, the coordinates and the variables
  are arguments, the whole padded split is summed batch by batch (`evaluation.SplitSum`) and each
  batch runs every grid point under `jax.lax.map`, BN in inference mode with the trained running
  statistics. `landscape_1d` (Li et al. §3, the 1-D plots f(theta + alpha d)) and `landscape_2d`
  (§3, the contour plots f(theta + alpha d1 + beta d2)) wrap it.

As Li et al. recommend (§4), the directions perturb the convolution and dense kernels only: biases
and BN's scale and bias get 0 in the direction, and the BN running statistics stay the trained ones.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from cnn_depth import evaluation, steps
from cnn_depth.analysis.results import write_table

# A ResNet's scanned stage: its parameters carry a leading block axis (models/layout.py).
_STACKED = re.compile(r"stage\d+_blocks$")


def _keys(path) -> list[str]:
  return [str(getattr(k, "key", getattr(k, "name", k))) for k in path]


def _filter_axes(path, leaf) -> tuple[int, ...]:
  """The axes that one filter of a `kernel` leaf spans: all but the last (the output channel of an
  HWIO conv kernel, the output unit of an (in, out) dense kernel) and, in a scanned stage, all but
  the leading block axis too (each block's filters are its own)."""
  stacked = any(_STACKED.match(k) for k in _keys(path))
  return tuple(range(1 if stacked else 0, leaf.ndim - 1))


def filter_norms(path, leaf) -> jax.Array:
  """The Frobenius norm of each filter of a `kernel` leaf, dims kept (broadcasts against it)."""
  return jnp.sqrt(jnp.sum(jnp.square(leaf), axis=_filter_axes(path, leaf), keepdims=True))


@jax.jit  # one small program, not a dispatch (and a compilation) per leaf and operation
def filter_normalized_direction(key: jax.Array, params: Mapping[str, Any]) -> dict:
  """A random direction with Li et al.'s filter normalisation (§4), shaped like `params`.

  Every leaf named `kernel` is drawn from N(0, 1) and each of its filters -- per output channel of a
  conv kernel (per block too in a scanned stage), per output unit of a dense kernel -- rescaled to
  the Frobenius norm of the same filter of `params`. Every other leaf (biases, BN scale and bias) is
  0: Li et al. leave the 1-D parameters unperturbed.
  """
  flat, unravel = ravel_pytree(params)
  noise = unravel(jax.random.normal(key, flat.shape, flat.dtype))  # one draw: one threefry

  def normalize(path, p, d):
    if _keys(path)[-1] != "kernel":
      return jnp.zeros_like(p)
    return d * (filter_norms(path, p) / filter_norms(path, d))

  return jax.tree_util.tree_map_with_path(normalize, params, noise)


def zero_direction(params: Mapping[str, Any]) -> dict:
  """A direction of zeros shaped like `params`: the landscape along it is flat."""
  return jax.tree_util.tree_map(jnp.zeros_like, params)


def _point_sums(variables, directions, c, batch, *, sums) -> dict:
  """`sums` of one batch at params + sum_i c[i] * directions[i]."""
  move = lambda p, *ds: p + sum(c[i].astype(p.dtype) * d for i, d in enumerate(ds))
  return sums(
    {**variables, "params": jax.tree_util.tree_map(move, variables["params"], *directions)}, batch
  )


def _loss_and_error(sums: dict, num_examples: int) -> tuple[jax.Array, jax.Array]:
  return sums["loss_sum"] / num_examples, evaluation.error_rate(sums, num_examples)


@functools.lru_cache(maxsize=16)
def _program(model, mean: tuple, std: tuple) -> evaluation.SplitSum:
  """The compiled grid of (loss, error) over a padded split, for one model and normalisation."""
  sums = functools.partial(steps.eval_sums, model=model, mean=mean, std=std)
  return evaluation.SplitSum(
    functools.partial(_point_sums, sums=sums), _loss_and_error, map_over=2
  )  # one grid point (row of the coordinates) after another, each over the whole split


class LossSurface:
  """`surface(directions, coords) -> (losses, errors)`: the mean cross-entropy and the error of the
  whole split at params + sum_i coords[g, i] * directions[i], for every grid point g.

  The split is padded to whole batches of `batch_size` (padding masked) and kept on the device. The
  variables, the directions and the (G, k) coordinates are arguments of one compiled program
  (`evaluation.SplitSum`) that maps over the grid points, each summed over the whole split
  (`jax.lax.map`: the body compiles once whatever G is), shared by every surface of an equal model
  and normalisation, so any grid of the same size, any directions and any checkpoint or seed of the
  net reuse it; `traces` counts its traces.
  """

  def __init__(
    self,
    model,
    variables: Mapping[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 500,
  ):
    self.model, self.variables = model, dict(variables)
    self._split = evaluation.pad_split(images, labels, min(int(batch_size), len(labels)))
    self.num_examples = self._split.num_examples
    self._program = _program(model, tuple(map(float, mean)), tuple(map(float, std)))
    self.jitted = self._program.jitted

  @property
  def traces(self) -> int:
    return self._program.traces

  def __call__(self, directions: Sequence[Any], coords) -> tuple[np.ndarray, np.ndarray]:
    coords = np.asarray(coords, np.float32)
    if coords.ndim != 2 or coords.shape[1] != len(directions):
      raise ValueError(
        f"coords must have shape (grid points, {len(directions)}) (one column per direction), "
        f"got {coords.shape}"
      )
    losses, errors = self._program(self.variables, tuple(directions), coords, self._split)
    return np.asarray(losses, np.float64), np.asarray(errors, np.float64)

  def line(self, direction, alphas) -> tuple[np.ndarray, np.ndarray]:
    """(losses, errors), each (len(alphas),): f(theta + alpha d) (Li et al. §3, 1-D plots)."""
    return self([direction], np.asarray(alphas, np.float32).reshape(-1, 1))

  def plane(self, d1, d2, alphas, betas) -> tuple[np.ndarray, np.ndarray]:
    """(losses, errors), each (len(alphas), len(betas)): f(theta + alpha d1 + beta d2) (Li et al.
    §3, contour plots); entry [i, j] is at (alphas[i], betas[j])."""
    a, b = np.meshgrid(np.asarray(alphas), np.asarray(betas), indexing="ij")
    losses, errors = self([d1, d2], np.stack([a.ravel(), b.ravel()], axis=1))
    return losses.reshape(a.shape), errors.reshape(a.shape)


def landscape_1d(
  model, variables, direction, alphas, images, labels, mean, std, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
  """(losses, errors) along theta + alpha * direction; see `LossSurface.line`. Build one
  `LossSurface` to evaluate several lines of one net with a single compilation."""
  surface = LossSurface(model, variables, images, labels, mean, std, batch_size)
  return surface.line(direction, alphas)


def landscape_2d(
  model, variables, d1, d2, alphas, betas, images, labels, mean, std, batch_size: int = 500
) -> tuple[np.ndarray, np.ndarray]:
  """(losses, errors), each (len(alphas), len(betas)), on the plane theta + alpha d1 + beta d2; see
  `LossSurface.plane`."""
  surface = LossSurface(model, variables, images, labels, mean, std, batch_size)
  return surface.plane(d1, d2, alphas, betas)


# --------------------------------------------------------------------------------------------------
# CSV files (one row per grid point, for plotting).

RunKey = tuple[str, int, int]  # (model, depth, seed)


def write_landscape_1d_csv(
  path, results: Mapping[RunKey, tuple[Sequence[float], Sequence[float], Sequence[float]]]
) -> None:
  """`landscape_1d.csv`: columns model,depth,seed,alpha,train_loss,test_error, one row per alpha of
  each run of `results` ((model, depth, seed) -> (alphas, train losses, test errors))."""
  rows = [
    (name, int(depth), int(seed), float(a), float(l), float(e))
    for (name, depth, seed), (alphas, losses, errors) in results.items()
    for a, l, e in zip(alphas, losses, errors, strict=True)
  ]
  write_table(path, ("model", "depth", "seed", "alpha", "train_loss", "test_error"), rows)


def write_landscape_2d_csv(
  path, results: Mapping[RunKey, tuple[Sequence[float], Sequence[float], np.ndarray]]
) -> None:
  """`landscape_2d.csv`: columns model,depth,seed,alpha,beta,train_loss, one row per grid point of
  each run of `results` ((model, depth, seed) -> (alphas, betas, losses (len(alphas),
  len(betas))))."""
  rows = []
  for (name, depth, seed), (alphas, betas, losses) in results.items():
    losses = np.asarray(losses)
    if losses.shape != (len(alphas), len(betas)):
      raise ValueError(f"losses have shape {losses.shape}, expected ({len(alphas)}, {len(betas)})")
    rows += [
      (name, int(depth), int(seed), float(a), float(b), float(losses[i, j]))
      for i, a in enumerate(alphas)
      for j, b in enumerate(betas)
    ]
  write_table(path, ("model", "depth", "seed", "alpha", "beta", "train_loss"), rows)
