"""Evaluation over a whole split: padded to whole batches and summed in one compiled loop.

The training loop (test and training sets every `eval_every_steps`) and the lesion study (the test
error under every lesion pattern) both evaluate this way: the split lives on the device, the padding
is masked out of every sum, and new variables or gates reuse the compiled program.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth import data


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

  Traced: call it inside `jax.jit`. A batch is {'image', 'label', 'mask'}; `batch_sharding` splits
  it over the devices.
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
