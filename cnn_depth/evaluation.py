"""Sums over a whole split: padded to whole batches and added up in one compiled loop.

`SplitSum` is the one compiled sum over a split. The training loop (test and training sets every
`eval_every_steps`), the lesion study (the test error under every lesion pattern), the loss
landscape (every grid point) and the Hessian (every product H v) each give it their own per-batch
function: the split lives on the device, the padding is masked out of every sum, and new variables,
gates, directions or vectors reuse the compiled program.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth import data, layers


@flax.struct.dataclass
class PaddedSplit:
  """A split's images, labels and mask (1 real, 0 padding), padded to a whole number of batches."""

  images: jax.Array
  labels: jax.Array
  mask: jax.Array
  batch_size: int = flax.struct.field(pytree_node=False)
  num_examples: int = flax.struct.field(pytree_node=False)

  @property
  def num_batches(self) -> int:
    return self.images.shape[0] // self.batch_size


def pad_split(images, labels, batch_size: int, place: Callable = jnp.asarray) -> PaddedSplit:
  """`images` and `labels` (numpy) padded to whole batches of `batch_size`, placed by `place` (e.g.
  a replication over the mesh)."""
  labels = np.asarray(labels)
  if len(labels) == 0 or len(images) != len(labels):
    raise ValueError(
      f"need as many images as labels (and at least one): {len(images)} vs {len(labels)}"
    )
  padded = data.pad_to_batches(
    {"image": np.asarray(images), "label": labels.astype(np.int32)}, batch_size
  )
  return PaddedSplit(
    place(padded["image"]), place(padded["label"]), place(padded["mask"]), batch_size, len(labels)
  )


def sum_over_split(
  batch_sums: Callable[[dict], dict], split: PaddedSplit, batch_sharding=None
) -> dict:
  """The sums `batch_sums(batch)` returns, added over every batch of `split` in one `fori_loop`.

  Traced: call it inside `jax.jit` (`SplitSum` compiles it, with a trace counter). A batch is
  {'image', 'label', 'mask'}; `batch_sharding` splits it over the devices.
  """

  def batch(i):
    take = functools.partial(
      jax.lax.dynamic_slice_in_dim, start_index=i * split.batch_size, slice_size=split.batch_size
    )
    b = {"image": take(split.images), "label": take(split.labels), "mask": take(split.mask)}
    return b if batch_sharding is None else jax.lax.with_sharding_constraint(b, batch_sharding)

  zero = jax.tree_util.tree_map(
    lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(batch_sums, batch(0))
  )
  return jax.lax.fori_loop(
    0,
    split.num_batches,
    lambda i, acc: jax.tree_util.tree_map(jnp.add, acc, batch_sums(batch(i))),
    zero,
  )


def error_rate(sums: dict, num_examples: int) -> jax.Array:
  """1 - correct / num_examples: the error of a split from its summed `steps.eval_sums`."""
  return 1.0 - sums["correct"] / num_examples


class SplitSum:
  """`SplitSum(batch_sums, finish, batch_sharding)(*args, split)`: the sums `batch_sums(*args,
  batch)` returns, added over every batch of the padded `split` (`sum_over_split`), then
  `finish(sums, split.num_examples)` (default: the sums as they are), in ONE compiled program.
  With `map_over=i`, args[i] is a stack of values (grid points, say) and each row of it is summed
  over the whole split in turn (`jax.lax.map`, the body compiled once): one result per row.

  `args` are traced arguments of that program (variables, gates, directions, vectors...): any values
  of the same shapes reuse the compilation, and so does any split of the same shapes and size.
  A batch is {'image', 'label', 'mask'} (mask 1 real, 0 padding: `batch_sums` must weight by it);
  `batch_sharding` splits it over the devices. Compiled with `layers.compiler_options()`. `traces`
  counts the traces, `jitted` is the `jax.jit` (its `_cache_size()` counts the compilations): the
  tests' proof of one compile.
  """

  def __init__(
    self,
    batch_sums: Callable[..., dict],
    finish: Callable[[dict, int], Any] | None = None,
    batch_sharding=None,
    map_over: int | None = None,
  ):
    self.batch_sums, self.finish, self.batch_sharding = batch_sums, finish, batch_sharding
    self.map_over = map_over
    self.traces = 0
    self.jitted = jax.jit(self._program, compiler_options=layers.compiler_options())

  def _program(self, *args):
    self.traces += 1  # Python side effect: runs once per trace, not per call
    *args, split = args

    def one(args):
      sums = sum_over_split(lambda b: self.batch_sums(*args, b), split, self.batch_sharding)
      return sums if self.finish is None else self.finish(sums, split.num_examples)

    if self.map_over is None:
      return one(args)
    i = self.map_over  # each row of args[i] summed over the whole split, under `jax.lax.map`
    return jax.lax.map(lambda row: one([*args[:i], row, *args[i + 1 :]]), args[i])

  def __call__(self, *args):
    """The finished sums for `args`, the last of them the `PaddedSplit` to sum over."""
    return self.jitted(*args)
