"""Where a net's blocks are: their names in block order, which ones change shape, and the scanned
and unrolled layouts of their variables.

Every net with blocks names them `stage{s}_block{b}` and has `stage_sizes`, `num_blocks`,
`residual` and `shape_changing_blocks()`, so the steps' per-block norms and the lesion and path
studies address a VGG layer or a dense layer as they address a residual block. Nets without blocks
(LeNet-5, AlexNet, NiN) take `Blockless`. A ResNet scans the identical blocks 1..n-1 of a stage,
stacked along a leading axis under `stage{s}_blocks` (resnet.py); `unstack_stages` / `stack_stages`
convert between that layout and the unrolled one, and `block_variables` addresses any (stage,
block).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np


class Blocks:
  """`num_blocks` of a net that has `stage_sizes` (mixed into every family with blocks)."""

  @property
  def num_blocks(self) -> int:
    return int(sum(self.stage_sizes))


class Blockless(Blocks):
  """The block interface of a net with no blocks to gate (LeNet-5, AlexNet, NiN)."""

  stage_sizes = ()
  residual = False

  def shape_changing_blocks(self) -> np.ndarray:
    return np.zeros(0, bool)


def unrolled(model):
  """The same net with every stage unrolled (itself if it has no scanned stages): a scan body is
  traced once, so what visits each block (counting, reordering blocks) needs this twin."""
  return model.clone(stages="unroll") if getattr(model, "stages", None) == "scan" else model


def block_names(model) -> list[str]:
  """`stage{s}_block{b}` for every block, in the order of the per-block arrays."""
  return [f"stage{s}_block{b}" for s, n in enumerate(model.stage_sizes) for b in range(n)]


def downsampling_blocks(model) -> np.ndarray:
  """A boolean per block: True where deleting the block cannot give the identity (it changes the map
  size or the channel count), from the net's `shape_changing_blocks()`."""
  return np.asarray(model.shape_changing_blocks(), bool)


_STACKED = re.compile(r"stage(\d+)_blocks$")


def is_stacked(name: str) -> bool:
  """Whether the top-level variable `name` holds a stage's scanned blocks, stacked along a leading
  axis (`stage{s}_blocks`): what treats each block's parameter on its own (AGC's unit norms, the
  scalars of optim.py) maps over that axis."""
  return _STACKED.match(name) is not None


def unstack_stages(tree: Mapping[str, Any]) -> dict:
  """Scanned layout -> unrolled layout, for one collection (e.g. variables['params'])."""
  out = {}
  for key, value in tree.items():
    m = _STACKED.match(key)
    if m is None:
      out[key] = value
      continue
    n = jax.tree_util.tree_leaves(value)[0].shape[0]
    for j in range(n):
      out[f"stage{m.group(1)}_block{j + 1}"] = jax.tree_util.tree_map(
        lambda a: (
          jax.ShapeDtypeStruct(a.shape[1:], a.dtype)
          if isinstance(a, jax.ShapeDtypeStruct)
          else a[j]
        ),
        value,
      )
  return out


def stack_stages(tree: Mapping[str, Any]) -> dict:
  """Unrolled layout -> scanned layout, for one collection."""
  out, rest = {}, {}
  for key, value in tree.items():
    m = re.match(r"stage(\d+)_block(\d+)$", key)
    if m and int(m.group(2)) > 0:
      rest.setdefault(m.group(1), {})[int(m.group(2))] = value
    else:
      out[key] = value
  for s, blocks in rest.items():
    ordered = [blocks[j] for j in sorted(blocks)]
    out[f"stage{s}_blocks"] = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *ordered)
  return out


def convert_variables(variables: Mapping[str, Any], to: str) -> dict:
  """All collections of `variables` converted to the 'scan' or 'unroll' layout."""
  fn = {"scan": stack_stages, "unroll": unstack_stages}[to]
  return {col: fn(tree) for col, tree in variables.items()}


def block_variables(variables: Mapping[str, Any], stage: int, block: int) -> dict:
  """The variables (every collection) of block `block` of stage `stage`, in either layout."""
  flat = convert_variables(variables, "unroll")
  name = f"stage{stage}_block{block}"
  return {col: tree[name] for col, tree in flat.items() if name in tree}
