"""Hessian spectra of the training loss: extreme eigenvalues (Li et al. 2018 §6, the ratio
|lambda_min / lambda_max| that measures non-convexity) and the spectral density by stochastic
Lanczos quadrature (Ghorbani et al. 2019, "An investigation into neural net optimization via Hessian
eigenvalue density"; Lin et al. 2016, "Approximating spectral densities of large matrices").

Nothing forms the Hessian: `hvp` multiplies it into a vector as the forward-mode derivative of the
gradient (Pearlmutter 1994), the cost of about two gradients. `HessianOperator` is that product for
the mean cross-entropy of a fixed set of training examples, as a function of the flat parameter
vector (BN in inference mode with the trained running statistics), compiled once. `lanczos` runs
the Lanczos iteration with full reorthogonalisation on any such matvec; the eigenvalues of its
tridiagonal matrix (Ritz values) converge first at both ends of the spectrum
(`extreme_eigenvalues`), and their weights, the squared first components of its eigenvectors, give
a quadrature of the spectral measure seen from the start vector (`spectral_density`).

The CPU convolution (`layers.conv_cpu_vjp`, conv_impl 'auto' on CPU) is a `jax.custom_vjp`, which
`jax.jvp` refuses to differentiate directly. Forward-over-reverse still works: the inner `jax.grad`
replaces the convolution by its forward and backward rules, plain JAX code that the outer `jax.jvp`
differentiates. So the HVP runs on the nets as they are, whatever their conv_impl.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from cnn_depth import evaluation, steps
from cnn_depth.analysis.results import write_table

Matvec = Callable[[jax.Array], jax.Array]

# --------------------------------------------------------------------------------------------------
# Hessian-vector products.


def grad_and_hvp(loss_fn: Callable[[Any], jax.Array], params, v):
  """(gradient, H v) of `loss_fn` at `params`, `v` a tree like `params`: H v is the directional
  derivative of the gradient along v, d/dt grad(loss)(params + t v) at t = 0 (Pearlmutter 1994),
  forward over reverse (see the module docstring for the custom-VJP convolution); the gradient is
  the primal output of the same pass."""
  return jax.jvp(jax.grad(loss_fn), (params,), (v,))


def hvp(loss_fn: Callable[[Any], jax.Array], params, v):
  """H v, H the Hessian of `loss_fn` at `params`; see `grad_and_hvp`."""
  return grad_and_hvp(loss_fn, params, v)[1]


def batch_loss_fn(model, batch_stats, batch: Mapping[str, Any], mean, std, num_examples: int):
  """`loss(params)`: the masked sum of the cross-entropy over one padded `batch` ({'image', 'label',
  'mask'}) divided by `num_examples`, BN in inference mode with the fixed `batch_stats`. Summed over
  the batches of a split, it is the split's mean cross-entropy, and so are its derivatives."""
  mean, std = tuple(map(float, mean)), tuple(map(float, std))

  def loss(params):
    x = steps.normalize(batch["image"], mean, std, model.dtype)
    logits = model.apply({"params": params, "batch_stats": batch_stats}, x, train=False)
    mask = batch["mask"].astype(jnp.float32)
    return jnp.sum(steps.cross_entropy(logits, batch["label"]) * mask) / num_examples

  return loss


def make_loss_fn(model, batch_stats, split: evaluation.PaddedSplit, mean, std):
  """`loss(params)`: the mean cross-entropy over the real examples of `split` (padding masked), BN
  in inference mode with the fixed `batch_stats`; the whole split in one `fori_loop`. Traceable:
  call it inside `jax.jit` with the split and statistics as arguments, not closed-over constants."""

  def loss(params):
    def batch_sums(batch):
      return {"loss": batch_loss_fn(model, batch_stats, batch, mean, std, 1)(params)}

    return evaluation.sum_over_split(batch_sums, split)["loss"] / split.num_examples

  return loss


def _batch_grad_and_hvp(params, batch_stats, v, batch, *, model, mean, std, num_examples) -> dict:
  """{'grad', 'hv'}, flat: one batch's share (`batch_loss_fn`) of the gradient and of H v, `v` flat
  in the order of `ravel_pytree(params)`."""
  loss = batch_loss_fn(model, batch_stats, batch, mean, std, num_examples)
  grad, hv = grad_and_hvp(loss, params, ravel_pytree(params)[1](v))
  return {"grad": ravel_pytree(grad)[0], "hv": ravel_pytree(hv)[0]}


@functools.lru_cache(maxsize=16)
def _program(model, mean: tuple, std: tuple, num_examples: int) -> evaluation.SplitSum:
  """The compiled (gradient, H v) sums over a padded split of `num_examples` examples, for one model
  and normalisation (each batch's loss is divided by the split's size: a static number)."""
  per_batch = functools.partial(
    _batch_grad_and_hvp, model=model, mean=mean, std=std, num_examples=num_examples
  )
  return evaluation.SplitSum(per_batch, lambda sums, _: (sums["grad"], sums["hv"]))


class HessianOperator:
  """`H(v)`: the Hessian of the mean training cross-entropy (`make_loss_fn`) with respect to the
  parameters, times a flat vector v (`dim` entries, the order of `ravel_pytree(params)`).

  The examples are padded to whole batches of `batch_size` and kept on the device; the parameters,
  statistics, examples and v are arguments of one compiled program (`evaluation.SplitSum`), shared
  by every operator of an equal model, normalisation and number of examples: every product (every
  Lanczos step, every start vector, every checkpoint and seed of the net) reuses it. H v is linear
  in the loss, so the program sums the products of the batches (`batch_loss_fn`) in a `fori_loop`
  rather than differentiating a loop over the batches: one batch's activations in memory, not the
  split's. It returns the gradient too (forward-over-reverse computes it anyway): `grad_and_hvp`.
  `traces` counts the traces of the shared program.
  """

  def __init__(
    self, model, variables: Mapping[str, Any], images, labels, mean, std, batch_size: int = 500
  ):
    self.model, self.mean, self.std = model, mean, std
    on_device = lambda tree: jax.tree_util.tree_map(jnp.asarray, tree)  # moved once, not per call
    self.variables = on_device(dict(variables))
    self.params, self.batch_stats = self.variables["params"], self.variables.get("batch_stats", {})
    flat, self.unravel = ravel_pytree(self.params)
    self.dim, self.dtype = int(flat.size), flat.dtype
    self.split = evaluation.pad_split(images, labels, min(int(batch_size), len(labels)))
    norm = tuple(map(float, mean)), tuple(map(float, std))
    self._program = _program(model, *norm, self.split.num_examples)
    self.jitted = self._program.jitted

  @property
  def traces(self) -> int:
    return self._program.traces

  def grad_and_hvp(self, v, params=None) -> tuple[jax.Array, jax.Array]:
    """(gradient, H v), flat, at `params` (a tree like the operator's; default its own)."""
    params = self.params if params is None else params
    return self._program(params, self.batch_stats, jnp.asarray(v, self.dtype), self.split)

  def __call__(self, v) -> jax.Array:
    return self.grad_and_hvp(v)[1]


# --------------------------------------------------------------------------------------------------
# Lanczos.


@functools.partial(jax.jit, donate_argnums=0)
def _lanczos_step(basis, v, w, i):
  """Store v as basis row i; alpha = v.w; w minus its projection on every stored row (classical
  Gram-Schmidt twice, "twice is enough"; rows not yet stored are 0); beta = |w|; the next v."""
  basis = basis.at[i].set(v)
  alpha = jnp.vdot(v, w)
  for _ in range(2):
    w = w - basis.T @ (basis @ w)
  beta = jnp.linalg.norm(w)
  return basis, w / jnp.where(beta > 0, beta, 1), alpha, beta


def lanczos(matvec: Matvec, v0, num_iters: int) -> tuple[np.ndarray, np.ndarray]:
  """(alphas (m,), betas (m-1,)): the diagonal and off-diagonal of the tridiagonal matrix
  T = Q^T A Q of m = min(num_iters, dim) Lanczos steps from v0 (Golub & Van Loan, "Matrix
  Computations", the symmetric Lanczos process), float64.

  Each new vector is reorthogonalised against all earlier ones: without it the vectors lose
  orthogonality as Ritz values converge and T grows spurious copies of them, which would bias the
  quadrature weights. The basis is kept on the device as an (m, dim) array; every step is one
  `matvec` (jit it: it is called m times) and one compiled update. The iteration stops early when
  the Krylov space is invariant (beta below float precision): T then has fewer rows; and at the
  first value that is not finite (an operator that overflows, as a net whose activations do),
  which T keeps as its last entry.
  """
  v = jnp.asarray(v0)
  v = v / jnp.linalg.norm(v)
  m = min(int(num_iters), v.shape[0])
  basis = jnp.zeros((m, v.shape[0]), v.dtype)
  alphas, betas = [], []
  tol = 10 * float(jnp.finfo(v.dtype).eps)
  for i in range(m):
    basis, v, alpha, beta = _lanczos_step(basis, v, matvec(v), i)
    alphas.append(float(alpha))
    betas.append(float(beta))
    if not (math.isfinite(alphas[-1]) and math.isfinite(betas[-1])):
      break
    if betas[-1] <= tol * max(max(map(abs, alphas)), max(betas)):
      break
  return np.asarray(alphas), np.asarray(betas[: len(alphas) - 1])


def ritz(alphas, betas) -> tuple[np.ndarray, np.ndarray]:
  """(nodes, weights): the eigenvalues of the tridiagonal T (Ritz values, ascending) and the squared
  first components of its eigenvectors, the Gauss quadrature of the start vector's spectral measure
  (Golub & Meurant; weights sum to 1)."""
  t = np.diag(np.asarray(alphas, np.float64))
  if len(betas):
    t += np.diag(np.asarray(betas, np.float64), 1) + np.diag(np.asarray(betas, np.float64), -1)
  nodes, vectors = np.linalg.eigh(t)
  return nodes, vectors[0] ** 2


def extreme_eigenvalues(
  matvec: Matvec, dim: int, key: jax.Array, num_iters: int = 30, dtype=jnp.float32
) -> tuple[float, float]:
  """(lambda_max, lambda_min): the largest and the smallest (most negative) Ritz values of
  `num_iters` Lanczos steps from a Gaussian start; both ends of the spectrum converge first, the
  isolated outliers of a net's Hessian within a few dozen steps (Ghorbani et al.). (nan, nan) where
  a product is not finite (the loss overflows there): the spectrum is undefined."""
  alphas, betas = lanczos(matvec, jax.random.normal(key, (dim,), dtype), num_iters)
  if not (np.all(np.isfinite(alphas)) and np.all(np.isfinite(betas))):
    return math.nan, math.nan
  nodes, _ = ritz(alphas, betas)
  return float(nodes[-1]), float(nodes[0])


def curvature_ratio(lambda_max: float, lambda_min: float) -> float:
  """|lambda_min / lambda_max|, Li et al.'s (§6) measure of non-convexity: ~0 where the loss is
  locally convex (no negative curvature), large where it is not."""
  return abs(lambda_min / lambda_max) if lambda_max else math.inf


# --------------------------------------------------------------------------------------------------
# Stochastic Lanczos quadrature.


def slq(
  matvec: Matvec,
  dim: int,
  key: jax.Array,
  num_iters: int = 80,
  num_draws: int = 10,
  start: str = "rademacher",
  dtype=jnp.float32,
) -> tuple[np.ndarray, np.ndarray]:
  """(nodes, weights), each (num_draws, m): the Ritz values and quadrature weights of `num_draws`
  Lanczos runs from random starts (Rademacher or Gaussian entries; either is an unbiased probe of
  tr f(H) / dim; Ghorbani et al., Lin et al.). Runs cut short by an invariant Krylov space
  are padded with weight-0 nodes."""
  if start not in ("rademacher", "gaussian"):
    raise ValueError(f"start must be 'rademacher' or 'gaussian', got {start!r}")
  runs = []
  for k in jax.random.split(key, num_draws):
    if start == "rademacher":
      v0 = jax.random.rademacher(k, (dim,), dtype)
    else:
      v0 = jax.random.normal(k, (dim,), dtype)
    runs.append(ritz(*lanczos(matvec, v0, num_iters)))
  m = max(len(n) for n, _ in runs)
  nodes, weights = np.zeros((num_draws, m)), np.zeros((num_draws, m))
  for r, (n, w) in enumerate(runs):
    nodes[r, : len(n)], nodes[r, len(n) :], weights[r, : len(w)] = n, n[-1], w
  return nodes, weights


def gaussian_density(nodes, weights, grid, sigma: float) -> np.ndarray:
  """phi(t) = (1/draws) sum_draws sum_k w_k N(t; node_k, sigma^2) on `grid`: the quadrature's
  spectral measure broadened by a Gaussian of width `sigma` (Ghorbani et al., Lin et al.).
  It integrates to 1 wherever the grid covers the nodes by a few sigma."""
  nodes, weights = np.atleast_2d(nodes), np.atleast_2d(weights)
  t = np.asarray(grid, np.float64)[:, None]
  density = np.zeros(t.shape[0])
  for n, w in zip(nodes, weights):  # one draw at a time: (grid, m) in memory, not (grid, draws, m)
    density += np.exp(-0.5 * ((t - n) / sigma) ** 2) @ w
  return density / (nodes.shape[0] * sigma * math.sqrt(2 * math.pi))


def spectral_density(
  matvec: Matvec,
  dim: int,
  key: jax.Array,
  num_iters: int = 80,
  num_draws: int = 10,
  sigma: float | None = None,
  num_points: int | None = None,
  start: str = "rademacher",
  dtype=jnp.float32,
) -> tuple[np.ndarray, np.ndarray]:
  """(grid, density): the spectral density of the operator by stochastic Lanczos quadrature
  (`slq`, then `gaussian_density`). `sigma` defaults to 1% of the spread of the Ritz values; the
  grid spans the nodes +- 5 sigma at spacing <= sigma / 4 (`num_points` overrides), so the density
  integrates to ~1."""
  nodes, weights = slq(matvec, dim, key, num_iters, num_draws, start, dtype)
  lo, hi = float(nodes.min()), float(nodes.max())
  if sigma is None:
    sigma = 0.01 * (hi - lo) if hi > lo else 1e-3 * max(1.0, abs(hi))
  if num_points is None:
    num_points = int(np.ceil((hi - lo + 10 * sigma) / (sigma / 4))) + 1
  grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, num_points)
  return grid, gaussian_density(nodes, weights, grid, sigma)


# --------------------------------------------------------------------------------------------------
# CSV files.

RunKey = tuple[str, int, int]  # (model, depth, seed)


def write_hessian_csv(path, results: Mapping[RunKey, Sequence[tuple[int, float, float]]]) -> None:
  """`hessian.csv`: columns model,depth,seed,step,lambda_max,lambda_min,ratio, one row per
  (step, lambda_max, lambda_min) of each run of `results` ((model, depth, seed) -> rows); ratio is
  `curvature_ratio`."""
  rows = [
    (name, int(depth), int(seed), int(step), float(hi), float(lo), curvature_ratio(hi, lo))
    for (name, depth, seed), measured in results.items()
    for step, hi, lo in measured
  ]
  header = ("model", "depth", "seed", "step", "lambda_max", "lambda_min", "ratio")
  write_table(path, header, rows)


def write_density_csv(
  path, results: Mapping[RunKey, Sequence[tuple[int, Sequence[float], Sequence[float]]]]
) -> None:
  """`hessian_density.csv`: columns model,depth,seed,step,eigenvalue,density, one row per grid point
  of each (step, grid, density) of each run of `results` ((model, depth, seed) -> densities)."""
  rows = [
    (name, int(depth), int(seed), int(step), float(t), float(p))
    for (name, depth, seed), measured in results.items()
    for step, grid, density in measured
    for t, p in zip(grid, density, strict=True)
  ]
  write_table(path, ("model", "depth", "seed", "step", "eigenvalue", "density"), rows)
