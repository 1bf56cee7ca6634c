"""Paths through a ResNet and the gradient each path length carries (Veit et al. 2016, §5, Fig. 6).

Unrolled, a ResNet of n blocks is a collection of 2**n paths: each block contributes either its
residual branch or its skip connection, so C(n, k) paths go through exactly k branches
(`path_counts`), a binomial distribution of path lengths centred on n/2
(`path_length_distribution`).

Veit et al. measure how much gradient the paths of each length k carry: forward a batch through the
whole net, sample k blocks uniformly, let the gradient flow through the residual branch of those k
blocks and through the skip connection of all others, and record the gradient magnitude at the input
(`path_gradient_norms`). The magnitude falls fast (roughly exponentially) with k; times the number
of paths it gives the total gradient per path length (`total_gradient`), and most of it comes from a
narrow band of short paths: 5-17 of the 54 blocks of their ResNet-110 (`effective_paths`).

How the routing works: each block's `grad_route` (models/gating.py, `merge`) puts a
`lax.stop_gradient` on the skip tensor (ROUTE_BRANCH) or on the branch tensor (ROUTE_SKIP) just
before the addition; values are unchanged, only the backward pass is restricted. In a
post-activation ResNet the ReLU after the addition belongs to both paths: its mask (from the full
forward pass) applies whichever path the gradient takes, as in Veit et al.'s experiment. A
downsampling block's option-A (or B) shortcut is its skip path. The stem before the first block and
the pooling/classifier after the last are shared by all paths.

The routes are traced arguments of one compiled program: every path sample reuses one compilation.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth import layers, steps
from cnn_depth.analysis.lesion import block_sets
from cnn_depth.analysis.results import write_table
from cnn_depth.models import gating

# --------------------------------------------------------------------------------------------------
# Counting paths.


def path_counts(n: int) -> list[int]:
  """[C(n, k) for k = 0..n]: the number of paths through exactly k residual branches (exact
  ints)."""
  if n < 0:
    raise ValueError(f"the number of blocks must be >= 0, got {n}")
  return [math.comb(n, k) for k in range(n + 1)]


def path_length_distribution(n: int) -> np.ndarray:
  """C(n, k) / 2**n for k = 0..n: the share of all paths that have length k (binomial, p = 1/2)."""
  total = 2**n
  return np.asarray([c / total for c in path_counts(n)])  # int / int: exact, then rounded once


# --------------------------------------------------------------------------------------------------
# Routes and the routed gradient.


def route_for(num_blocks: int, blocks: Sequence[int]) -> np.ndarray:
  """grad_route (num_blocks,) int32: ROUTE_BRANCH for `blocks`, ROUTE_SKIP for all others."""
  route = np.full(num_blocks, gating.ROUTE_SKIP, np.int32)
  route[np.asarray(list(blocks), dtype=np.int64)] = gating.ROUTE_BRANCH
  return route


def sample_routes(
  num_blocks: int, ks: Sequence[int], samples: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """(routes (R, num_blocks), k of each row (R,)): for each k, `samples` sets of k blocks drawn
  uniformly without replacement, or every set where there are no more than `samples` of them
  (k = 0, 1, n-1, n for small n; the exact mean, at less cost)."""
  if samples < 1:
    raise ValueError(f"samples must be >= 1, got {samples}")
  rng = np.random.default_rng(seed)
  routes, row_k = [], []
  for k in ks:
    for blocks in block_sets(num_blocks, int(k), samples, rng):
      routes.append(route_for(num_blocks, blocks))
      row_k.append(int(k))
  return np.asarray(routes, np.int32).reshape(-1, num_blocks), np.asarray(row_k, np.int64)


Objective = Callable[[jax.Array, jax.Array], jax.Array]


def _objective(mode: str | Objective) -> Objective:
  """Per-example scalar whose input gradient is measured: (logits (B, C), labels (B,)) -> (B,)."""
  if callable(mode):
    return mode
  if mode == "loss":
    return steps.cross_entropy
  if mode == "logit":
    return lambda logits, labels: jnp.take_along_axis(logits, labels[:, None], axis=-1)[:, 0]
  raise ValueError(
    f"mode must be 'loss', 'logit' or a function (logits, labels) -> (batch,), got {mode!r}"
  )


def routed_input_gradient(
  model,
  variables: Mapping[str, Any],
  x: jax.Array,
  labels: jax.Array,
  grad_route,
  mode: str | Objective = "loss",
) -> tuple[jax.Array, jax.Array]:
  """(objective (B,), d objective_b / d x_b (B, H, W, C)) with the gradient restricted by
  `grad_route`.

  `x` is the *normalised* input. BN runs in inference mode (running statistics), so examples do not
  interact and the gradient of the summed objective holds each example's own input gradient. Pure;
  call it inside jit.
  """
  objective = _objective(mode)

  def total(x):
    logits = model.apply(variables, x, train=False, grad_route=grad_route)
    values = objective(logits, labels)
    return jnp.sum(values), values

  grads, values = jax.grad(total, has_aux=True)(x)
  return values, grads


class PathGradientFunction:
  """`fn(routes (R, num_blocks)) -> (R,)`: the input-gradient magnitude of a fixed batch per route.

  The magnitude is the mean over the batch of each example's L2 norm ||d l_b / d x_b||_2 (over
  H, W, C of the normalised input), with l_b that example's cross-entropy (`mode='loss'`), its
  true-class logit (`'logit'`) or any per-example objective. This is the gradient of the mean loss
  scaled by the batch size, so it does not depend on the batch size. Routes run `chunk_size` at a
  time under `vmap` in one compiled program (the last chunk padded), so memory stays bounded and
  nothing recompiles; `traces` counts the traces. `chunk_size=None` picks one from the size of the
  work: 8 for a 128-batch of 8x8 digits through 15 blocks, 1 for CIFAR-sized inputs (each route
  keeps a whole forward pass of activations; on CPU, chunks beyond 1 gain only ~10%).
  """

  def __init__(
    self,
    model,
    variables,
    images,
    labels,
    mean,
    std,
    mode: str | Objective = "loss",
    chunk_size: int | None = None,
  ):
    if not getattr(model, "residual", True):
      raise ValueError(
        "path gradients need a residual net: a plain net (residual=False) has one "
        "path only, through every block"
      )
    self.model, self.num_blocks = model, int(model.num_blocks)
    if chunk_size is None:
      work = int(np.prod(np.shape(images)[:3])) * max(self.num_blocks, 1)  # batch * H * W * blocks
      chunk_size = max(1, min(8, 2**20 // max(work, 1)))
    if chunk_size < 1:
      raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    self.variables, self.chunk_size = dict(variables), int(chunk_size)
    self._objective = _objective(mode)
    self._x = steps.normalize(
      jnp.asarray(images), tuple(map(float, mean)), tuple(map(float, std)), model.dtype
    )
    self._labels = jnp.asarray(np.asarray(labels), jnp.int32)
    self.traces = 0
    self.jitted = jax.jit(self._norms, compiler_options=layers.compiler_options())

  def _norms(self, variables, x, labels, routes):
    self.traces += 1  # Python side effect: once per trace

    def one(route):
      _, g = routed_input_gradient(self.model, variables, x, labels, route, self._objective)
      g = g.astype(jnp.float32).reshape(g.shape[0], -1)
      return jnp.mean(jnp.sqrt(jnp.sum(jnp.square(g), axis=-1)))

    return jax.vmap(one)(routes)

  def __call__(self, routes) -> np.ndarray:
    routes = np.asarray(routes, np.int32).reshape(-1, self.num_blocks)
    out = []
    for start in range(0, len(routes), self.chunk_size):
      chunk = routes[start : start + self.chunk_size]
      n = len(chunk)
      if n < self.chunk_size:
        fill = np.full((self.chunk_size - n, self.num_blocks), gating.ROUTE_BOTH, np.int32)
        chunk = np.concatenate([chunk, fill])
      out.append(np.asarray(self.jitted(self.variables, self._x, self._labels, chunk))[:n])
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def make_path_gradient_fn(
  model, variables, images, labels, mean, std, mode="loss", chunk_size: int | None = None
) -> PathGradientFunction:
  """The routed input-gradient magnitude of a fixed batch as a function of the routes; see
  `PathGradientFunction`."""
  return PathGradientFunction(model, variables, images, labels, mean, std, mode, chunk_size)


def path_gradient_norms(
  model,
  variables,
  images,
  labels,
  mean,
  std,
  ks: Sequence[int],
  samples: int,
  seed: int = 0,
  mode: str | Objective = "loss",
  chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std) aligned with `ks`: the gradient magnitude at the input carried by paths of length k
  (Veit et al. 2016, §5, Fig. 6a).

  For each k, `samples` sets of k blocks are drawn uniformly without replacement (every set, where
  there are no more: see `sample_routes`); for each, the gradient flows through the residual branch
  of those blocks and the skip of all others, and its magnitude at the (normalised) input is
  measured as in `PathGradientFunction`: the mean over the batch of per-example L2 norms. BN runs in
  inference mode (running statistics) rather than with the batch's statistics: the examples then
  stay independent, each example's input gradient is its own, and the measurement is of the net as
  it is evaluated. The mean and std are over the sampled sets. A plain net raises ValueError.
  """
  fn = make_path_gradient_fn(model, variables, images, labels, mean, std, mode, chunk_size)
  routes, row_k = sample_routes(fn.num_blocks, ks, samples, seed)
  norms = fn(routes)
  mean_k = np.asarray([np.mean(norms[row_k == k]) for k in ks])
  std_k = np.asarray([np.std(norms[row_k == k]) for k in ks])
  return mean_k, std_k


# --------------------------------------------------------------------------------------------------
# Total gradient per path length, and the effective paths.


def total_gradient(counts: Sequence[int], mean: Sequence[float]) -> np.ndarray:
  """counts[k] * mean[k]: the total gradient magnitude of all paths of length k (Fig. 6b)."""
  counts = np.asarray([float(c) for c in counts])
  mean = np.asarray(mean, np.float64)
  if counts.shape != mean.shape:
    raise ValueError(
      f"counts and mean must align (one value per path length): {counts.shape} vs {mean.shape}"
    )
  return counts * mean


def effective_paths(
  counts: Sequence[int], mean: Sequence[float], share: float = 0.9
) -> tuple[int, int]:
  """(lo, hi): the shortest contiguous range of path lengths holding at least `share` of the total
  gradient (`total_gradient`), with counts[k], mean[k] for k = 0..n.

  An exhaustive search over windows (two pointers, O(n)), not a greedy growth from the peak: among
  the windows of the smallest width the one with the most gradient wins (then the shortest paths).
  Veit et al. find 5-17 of the 54 blocks of their ResNet-110 at share 0.9.
  """
  if not 0.0 < share <= 1.0:
    raise ValueError(f"share must lie in (0, 1], got {share}")
  total = total_gradient(counts, mean)
  if np.any(total < 0) or not np.all(np.isfinite(total)) or total.sum() <= 0:
    raise ValueError("the total gradient must be finite, non-negative and not all zero")
  target = share * total.sum() * (1 - 1e-12)  # slack for rounding at share = 1
  prefix = np.concatenate([[0.0], np.cumsum(total)])
  best = None  # (width, -mass, lo)
  hi = 0
  for lo in range(len(total)):
    hi = max(hi, lo)
    while hi < len(total) and prefix[hi + 1] - prefix[lo] < target:
      hi += 1
    if hi == len(total):
      break
    key = (hi - lo, -(prefix[hi + 1] - prefix[lo]), lo)
    best = key if best is None or key < best else best
  width, _, lo = best
  return int(lo), int(lo + width)


def write_csv(
  path,
  ks: Sequence[int],
  counts: Sequence[int],
  mean: Sequence[float],
  std: Sequence[float],
  seed_std: Sequence[float] | None = None,
  seeds: int | None = None,
) -> None:
  """Columns k,num_paths,grad_norm_mean,grad_norm_std,total_grad (counts aligned with ks), and with
  `seed_std` given, grad_norm_seed_std,seeds.

  For the seeds of one net (`seeds` of them), grad_norm_mean is the mean over seeds of each seed's
  mean, grad_norm_std the spread over the sampled paths within a seed (root mean square over seeds
  of each seed's std: one seed's std where there is one), total_grad = num_paths x grad_norm_mean,
  and grad_norm_seed_std the std over seeds of the per-seed means (0 for one seed): the spread from
  training. The per-seed values go to `write_seed_csv`.
  """
  header = ["k", "num_paths", "grad_norm_mean", "grad_norm_std", "total_grad"]
  spread = [] if seed_std is None else ["grad_norm_seed_std", "seeds"]
  rows = [
    (int(k), int(c), float(m), float(s), float(c) * float(m))
    for k, c, m, s in zip(ks, counts, mean, std, strict=True)
  ]
  if seed_std is not None:
    rows = [(*row, float(d), int(seeds or 1)) for row, d in zip(rows, seed_std, strict=True)]
  write_table(path, header + spread, rows)


def write_seed_csv(
  path,
  ks: Sequence[int],
  counts: Sequence[int],
  by_seed: Mapping[int, tuple[Sequence[float], Sequence[float]]],
) -> None:
  """Columns seed,k,num_paths,grad_norm_mean,grad_norm_std,total_grad: each seed's own measurement
  (seed -> (mean, std over the sampled paths) aligned with ks), for statements per seed."""
  rows = [
    (int(seed), int(k), int(c), float(m), float(s), float(c) * float(m))
    for seed, (mean, std) in by_seed.items()
    for k, c, m, s in zip(ks, counts, mean, std, strict=True)
  ]
  write_table(
    path, ["seed", "k", "num_paths", "grad_norm_mean", "grad_norm_std", "total_grad"], rows
  )
