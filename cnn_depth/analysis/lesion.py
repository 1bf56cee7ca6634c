"""Lesion studies of trained nets (Veit et al. 2016, "Residual networks behave like ensembles of
relatively shallow networks", §4).

* `single_block_lesion` (§4.1, Fig. 3): delete one block at a time -- its residual branch is gated
  to 0, its skip path kept -- and measure the test error. A ResNet barely notices the loss of most
  blocks; a plain net (whose only path goes through every block) breaks.
* `multi_block_lesion` (§4.2, Fig. 5a): delete k blocks at once, the mean and std of the test error
  over random sets of k blocks.
* `reorder_lesion` (§4.3, Fig. 5b): swap random pairs of blocks of compatible shapes; the error
  grows smoothly as the order moves away from the trained one (measured by Kendall's tau).

Everything goes through one compiled program per study: the per-block `gates` (models/gating.py)
and the variables are traced arguments, so every lesion pattern and every permutation reuses the
same compilation. `ErrorFunction.traces` and `ErrorFunction.jitted._cache_size()` say how often it
compiled.

Blocks are numbered in the stage-major order of `models.block_names`.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np

from cnn_depth import evaluation, layers, models, steps
from cnn_depth.analysis.results import write_table

# --------------------------------------------------------------------------------------------------
# The test error as a function of the gates (and, for reordering, of the variables).


class ErrorFunction:
  """`error(gates, variables=None) -> float`: the test error of the whole set, BN in inference mode.

  The set is padded to whole batches of `batch_size` (the padding masked out) and kept on the
  device; one compiled program runs every batch (`evaluation.SplitSum`). `gates` (num_blocks,) and
  `variables` are arguments of that program, so any lesion pattern and any variables of the same
  shapes (e.g. a permutation of the blocks) reuse the compilation. `traces` counts how often it was
  traced.
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
    self.model, self.num_blocks = model, int(model.num_blocks)
    self.variables = dict(variables)
    self._split = evaluation.pad_split(images, labels, min(int(batch_size), len(labels)))
    self.num_examples = self._split.num_examples
    sums = functools.partial(
      steps.eval_sums, model=model, mean=tuple(map(float, mean)), std=tuple(map(float, std))
    )
    self._program = evaluation.SplitSum(
      lambda variables, gates, batch: sums(variables, batch, gates=gates), evaluation.error_rate
    )
    self.jitted = self._program.jitted

  @property
  def traces(self) -> int:
    return self._program.traces

  def __call__(self, gates=None, variables: Mapping[str, Any] | None = None) -> float:
    gates = np.ones(self.num_blocks, np.float32) if gates is None else np.asarray(gates, np.float32)
    if gates.shape != (self.num_blocks,):
      raise ValueError(
        f"gates must have shape ({self.num_blocks},) (one per block), got {gates.shape}"
      )
    v = self.variables if variables is None else dict(variables)
    return float(self._program(v, gates, self._split))


class StreamedErrorFunction:
  """`ErrorFunction` for a streamed test split (ImageNet's validation set): the first call reads the
  split from disk batch by batch (padded, masked) and keeps the uint8 batches in host memory (the
  50k ImageNet validation images at 224x224: 7.5 GB), every call sums one compiled evaluation
  step over them. `gates` and `variables` are traced, as in `ErrorFunction`."""

  def __init__(self, model, variables: Mapping[str, Any], dataset, batch_size: int = 250):
    self.model, self.num_blocks = model, int(model.num_blocks)
    self.variables, self.dataset, self.batch_size = dict(variables), dataset, batch_size
    mean, std = tuple(map(float, dataset.mean)), tuple(map(float, dataset.std))
    self.jitted = jax.jit(
      lambda v, batch, gates: steps.eval_sums(
        v, batch, model=model, mean=mean, std=std, gates=gates
      ),  # fmt: skip
      compiler_options=layers.compiler_options(),
    )
    self._batches: list | None = None

  def __call__(self, gates=None, variables: Mapping[str, Any] | None = None) -> float:
    gates = np.ones(self.num_blocks, np.float32) if gates is None else np.asarray(gates, np.float32)
    if self._batches is None:
      split = self.dataset.test_split
      self._batches = list(self.dataset.batches(split, self.batch_size, train=False))
    v = self.variables if variables is None else dict(variables)
    sums = [self.jitted(v, batch, gates) for batch in self._batches]
    correct, count = (float(sum(s[k] for s in sums)) for k in ("correct", "count"))
    return 1.0 - correct / count


def make_error_fn(
  model, variables, images, labels, mean, std, batch_size: int = 500
) -> ErrorFunction:
  """The test error as a function of the per-block gates; see `ErrorFunction`."""
  return ErrorFunction(model, variables, images, labels, mean, std, batch_size)


def deletion_gates(num_blocks: int, deleted: Sequence[int]) -> np.ndarray:
  """Gates (num_blocks,) with the blocks in `deleted` set to 0 and all others to 1."""
  gates = np.ones(num_blocks, np.float32)
  gates[np.asarray(list(deleted), dtype=np.int64)] = 0.0
  return gates


# --------------------------------------------------------------------------------------------------
# Veit et al. §4.1 and §4.2: deleting blocks.


def single_block_lesion(error_fn, num_blocks: int) -> tuple[float, np.ndarray]:
  """(intact error, errors (num_blocks,)): the error with every block deleted in turn (§4.1,
  Fig. 3)."""
  intact = error_fn(np.ones(num_blocks, np.float32))
  errors = np.asarray([error_fn(deletion_gates(num_blocks, [i])) for i in range(num_blocks)])
  return intact, errors


def block_sets(num_blocks: int, k: int, samples: int, rng: np.random.Generator) -> list[tuple]:
  """`samples` random sets of k blocks, or every set when there are no more than `samples`."""
  if not 0 <= k <= num_blocks:
    raise ValueError(f"k={k} must lie between 0 and the number of blocks ({num_blocks})")
  if math.comb(num_blocks, k) <= samples:
    return list(itertools.combinations(range(num_blocks), k))
  return [tuple(sorted(rng.choice(num_blocks, k, replace=False).tolist())) for _ in range(samples)]


def multi_block_lesion(
  error_fn, num_blocks: int, ks: Sequence[int], samples: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """(means, stds) aligned with `ks`: the test error with k random blocks deleted (§4.2, Fig. 5a).

  For each k, `samples` sets of k blocks are drawn uniformly without replacement; where there are no
  more than `samples` distinct sets (k = 0, 1, n-1, n for small n), every set is evaluated once
  instead, which gives the exact mean. The std is over the evaluated sets (population std).
  """
  if samples < 1:
    raise ValueError(f"samples must be >= 1, got {samples}")
  rng = np.random.default_rng(seed)
  cache: dict[tuple, float] = {}
  means, stds = [], []
  for k in ks:
    errs = []
    for blocks in block_sets(num_blocks, int(k), samples, rng):
      if blocks not in cache:
        cache[blocks] = error_fn(deletion_gates(num_blocks, blocks))
      errs.append(cache[blocks])
    means.append(np.mean(errs))
    stds.append(np.std(errs))
  return np.asarray(means), np.asarray(stds)


# --------------------------------------------------------------------------------------------------
# Veit et al. §4.3: reordering blocks.


def kendall_tau(order: Sequence[int]) -> float:
  """Kendall's tau between `order` (a permutation of 0..n-1) and the identity.

  tau = (concordant - discordant pairs) / (n (n-1) / 2); 1 for the identity, -1 for its reverse.
  O(n^2), which is nothing at the block counts of these nets.
  """
  p = np.asarray(order)
  n = len(p)
  if n < 2:
    return 1.0
  i, j = np.triu_indices(n, 1)
  return float(np.sum(np.sign(p[j] - p[i]))) / (n * (n - 1) / 2)


def swappable_groups(model, variables: Mapping[str, Any]) -> list[list[int]]:
  """Groups of blocks (global indices) that may trade places: same stage, not shape-changing, and
  identical variable shapes. Each stage's downsampling first block stays in place; a stage-0 first
  block that keeps the shape (CIFAR ResNets) may move, as its input and output shapes and its
  parameters are those of its neighbours."""
  # Shapes only (no copies; abstract `jax.ShapeDtypeStruct` variables work too).
  flat = jax.eval_shape(lambda v: models.convert_variables(v, "unroll"), dict(variables))
  names = models.block_names(model)
  down = models.downsampling_blocks(model)

  def shapes(name):
    return jax.tree_util.tree_map(
      lambda a: tuple(a.shape), {c: t[name] for c, t in flat.items() if name in t}
    )

  groups, start = [], 0
  for n in model.stage_sizes:
    by_shape: dict[str, list[int]] = {}
    for i in range(start, start + n):
      if not down[i]:
        by_shape.setdefault(repr(shapes(names[i])), []).append(i)
    groups += [g for g in by_shape.values() if len(g) > 1]
    start += n
  return groups


def permute_blocks(
  variables: Mapping[str, Any], names: Sequence[str], order: Sequence[int]
) -> dict:
  """Variables (unrolled layout) whose block at position i is the original block `order[i]`."""
  out = {}
  for col, tree in variables.items():
    tree = dict(tree)
    moved = {names[i]: tree[names[o]] for i, o in enumerate(order) if o != i and names[o] in tree}
    out[col] = {**tree, **moved}
  return out


def random_swaps(
  groups: Sequence[Sequence[int]], num_blocks: int, num_swaps: int, rng: np.random.Generator
) -> np.ndarray:
  """A block order made by `num_swaps` swaps, each of a pair drawn uniformly from all compatible
  pairs."""
  pairs = [p for g in groups for p in itertools.combinations(g, 2)]
  order = np.arange(num_blocks)
  if num_swaps and not pairs:
    raise ValueError(
      "no two blocks of this net have compatible shapes (each stage has at most one block that "
      "keeps its input's shape, as in ResNet-8): nothing can be reordered; scripts/lesion.py "
      "--max_swaps=0 keeps the trained order and runs the deletions"
    )
  for _ in range(num_swaps):
    a, b = pairs[rng.integers(len(pairs))]
    order[a], order[b] = order[b], order[a]
  return order


def reorder_lesion(
  model,
  variables,
  images,
  labels,
  mean,
  std,
  max_swaps: int,
  samples: int,
  seed: int = 0,
  batch_size: int = 500,
) -> list[tuple[float, float]]:
  """[(kendall_tau, test_error)] for `samples` random reorderings of the blocks (§4.3, Fig. 5b).

  Each reordering swaps a number of random pairs of compatible blocks (`swappable_groups`) drawn
  uniformly from 1..`max_swaps` (`max_swaps=0`: no swap, the trained order). Tau compares the
  resulting order of all blocks with the trained one. The blocks' variables (parameters and BN
  statistics together) are permuted in the unrolled layout and fed to one compiled error function of
  the unrolled model: the permuted variables have the same shapes, so nothing recompiles.
  """
  flat_model = models.layout.unrolled(model)
  flat = models.convert_variables(variables, "unroll")
  names = models.block_names(model)
  groups = swappable_groups(model, variables)
  error_fn = make_error_fn(flat_model, flat, images, labels, mean, std, batch_size)
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(samples):
    num_swaps = int(rng.integers(1, max_swaps + 1)) if max_swaps > 0 else 0
    order = random_swaps(groups, model.num_blocks, num_swaps, rng)
    out.append((kendall_tau(order), error_fn(None, permute_blocks(flat, names, order))))
  return out


# --------------------------------------------------------------------------------------------------
# CSV files (one row per measurement, for plotting.py).


def _by_seed(results: Mapping[str, Any]) -> tuple[bool, list[tuple]]:
  """(whether `results` names seeds, [(label, seed, value), ...]).

  `results` maps a label to one run's value, or to {seed: value} for the seeds of one net (the
  studies' form); in the first form the seed is None and the CSVs have no seed column.
  """
  rows = [
    (label, seed, v)
    for label, value in results.items()
    for seed, v in (value.items() if isinstance(value, Mapping) else [(None, value)])
  ]
  return any(seed is not None for _, seed, _ in rows), rows


def _header(seeded: bool, *columns: str) -> tuple:
  return ("model", "seed", *columns) if seeded else ("model", *columns)


def _key(seeded: bool, label: str, seed) -> tuple:
  return (label, "" if seed is None else int(seed)) if seeded else (label,)


def write_single_csv(
  path, results: Mapping[str, tuple[float, Sequence[float], Sequence[bool]] | Mapping[int, tuple]]
) -> None:
  """Columns model,seed,block,downsampling,test_error for each model of `results` (label -> (intact
  error, error per deleted block, downsampling flag per block), or label -> {seed: that tuple} for
  the seeds of one net); block -1 is the intact net. The seed column only where seeds are named."""
  seeded, items = _by_seed(results)
  rows = []
  for model_name, seed, (errors_intact, errors, downsampling) in items:
    if len(errors) != len(downsampling):
      raise ValueError(f"{len(errors)} errors but {len(downsampling)} downsampling flags")
    key = _key(seeded, model_name, seed)
    rows.append((*key, -1, 0, float(errors_intact)))
    rows += [
      (*key, i, int(bool(d)), float(e)) for i, (e, d) in enumerate(zip(errors, downsampling))
    ]
  write_table(path, _header(seeded, "block", "downsampling", "test_error"), rows)


def write_multi_csv(
  path,
  results: Mapping[
    str, tuple[Sequence[int], Sequence[float], Sequence[float]] | Mapping[int, tuple]
  ],
) -> None:
  """Columns model,seed,k,test_error_mean,test_error_std for each model of `results` (label -> (ks,
  mean error, std of the error over the sampled block sets), or label -> {seed: that tuple}); one
  row per seed and k, the mean and std over that seed's sampled sets. The seed column only where
  seeds are named."""
  seeded, items = _by_seed(results)
  rows = [
    (*_key(seeded, model_name, seed), int(k), float(m), float(s))
    for model_name, seed, (ks, means, stds) in items
    for k, m, s in zip(ks, means, stds, strict=True)
  ]
  write_table(path, _header(seeded, "k", "test_error_mean", "test_error_std"), rows)


def write_reorder_csv(
  path, results: Mapping[str, Sequence[tuple[float, float]] | Mapping[int, Sequence[tuple]]]
) -> None:
  """Columns model,seed,kendall_tau,test_error (one row per reordering) for each model of `results`
  (label -> [(tau, error), ...], or label -> {seed: that list}). The seed column only where seeds
  are named."""
  seeded, items = _by_seed(results)
  rows = [
    (*_key(seeded, model_name, seed), float(t), float(e))
    for model_name, seed, pairs in items
    for t, e in pairs
  ]
  write_table(path, _header(seeded, "kendall_tau", "test_error"), rows)
