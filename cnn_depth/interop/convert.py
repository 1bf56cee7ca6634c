"""Our variables <-> a PyTorch `state_dict` of the same net (numpy arrays both ways, exact copies).

    variables = from_torch(state_dict, arch)  # {'params': ..., 'batch_stats': ...}, unrolled
    state_dict = to_torch(variables, arch)  # torch names and layouts, + num_batches_tracked

Layouts: a convolution kernel is HWIO here and OIHW in PyTorch, a dense kernel (in, out) here and
(out, in) there; BN's scale/bias are params and its running mean/var batch_stats here, all four
`weight`/`bias`/`running_mean`/`running_var` there (plus `num_batches_tracked`, which PyTorch
needs for a strict load and nothing reads: written as 0, ignored on import). A tensor the
architecture names in `layouts` (VGG's first classifier layer) is converted by that layout instead.
Transposes and permutations only: a round trip returns the same bits.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth import models
from cnn_depth.interop.architectures import Architecture, Layout
from cnn_depth.models import layout

COLLECTIONS = ("params", "batch_stats")
TRACKED = "num_batches_tracked"


def build(arch: Architecture, **overrides):
  """Our model of `arch` (unrolled stages, float32 unless overridden)."""
  return models.build_model({"stages": "unroll", **arch.model, **overrides},
                            num_classes=arch.num_classes)  # fmt: skip


def variable_shapes(arch: Architecture) -> dict:
  """{collection: {path tuple: shape}} of the unrolled net's variables (traced scanned: a
  1202-layer net traces in a second instead of ten)."""
  model = build(arch, stages="scan")
  x = jnp.zeros((1, *arch.input_shape), jnp.float32)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  shapes = layout.convert_variables({c: shapes.get(c, {}) for c in COLLECTIONS}, "unroll")
  return {col: _flatten(shapes[col]) for col in COLLECTIONS}


def _flatten(tree: Mapping[str, Any], prefix: tuple = ()) -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(_flatten(value, prefix + (key,)))
    else:
      out[prefix + (key,)] = value
  return out


def _unflatten(flat: Mapping[tuple, Any]) -> dict:
  out: dict = {}
  for path, value in flat.items():
    node = out
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return out


class _Standard:
  """The default layouts: conv kernels HWIO <-> OIHW, dense kernels (in, out) <-> (out, in), every
  other leaf as it is."""

  def __init__(self, leaf: str):
    self.leaf = leaf

  def to_torch(self, array: np.ndarray) -> np.ndarray:
    if self.leaf == "kernel" and array.ndim == 4:  # HWIO -> OIHW
      return np.ascontiguousarray(np.transpose(array, (3, 2, 0, 1)))
    if self.leaf == "kernel" and array.ndim == 2:  # (in, out) -> (out, in)
      return np.ascontiguousarray(array.T)
    return np.ascontiguousarray(array)

  def from_torch(self, array: np.ndarray) -> np.ndarray:
    if self.leaf == "kernel" and array.ndim == 4:  # OIHW -> HWIO
      return np.ascontiguousarray(np.transpose(array, (2, 3, 1, 0)))
    if self.leaf == "kernel" and array.ndim == 2:
      return np.ascontiguousarray(array.T)
    return np.ascontiguousarray(array)

  def torch_shape(self, shape: tuple) -> tuple:
    shape = tuple(shape)
    if self.leaf == "kernel" and len(shape) == 4:
      return (shape[3], shape[2], shape[0], shape[1])
    return shape[::-1] if self.leaf == "kernel" and len(shape) == 2 else shape


def _layout(arch: Architecture, key: str, leaf: str) -> Layout:
  """The layout of the tensor `key` (our leaf `leaf`): the architecture's own, or the standard."""
  return arch.layouts.get(key) or _Standard(leaf)


def torch_keys(arch: Architecture) -> dict[str, tuple]:
  """Every state_dict key of `arch` with its PyTorch shape (num_batches_tracked included)."""
  keys = {}
  for col, flat in variable_shapes(arch).items():
    for path, sds in flat.items():
      key = arch.torch_name(path[:-1], path[-1])
      keys[key] = _layout(arch, key, path[-1]).torch_shape(sds.shape)
      if col == "batch_stats" and path[-1] == "mean":
        keys[f"{arch.module_name(path[:-1])}.{TRACKED}"] = ()
  return keys


def to_torch(variables: Mapping[str, Any], arch: Architecture) -> dict[str, np.ndarray]:
  """Our variables (either stage layout) as `arch`'s state_dict, float32 numpy arrays."""
  unrolled = layout.convert_variables(
    {c: variables[c] for c in COLLECTIONS if c in variables}, "unroll"
  )
  out = {}
  for col in COLLECTIONS:
    for path, value in _flatten(unrolled.get(col, {})).items():
      key = arch.torch_name(path[:-1], path[-1])
      out[key] = _layout(arch, key, path[-1]).to_torch(np.asarray(value))
      if col == "batch_stats" and path[-1] == "mean":
        out[f"{arch.module_name(path[:-1])}.{TRACKED}"] = np.zeros((), np.int64)
  return out


def from_torch(
  state_dict: Mapping[str, np.ndarray], arch: Architecture, what: str = "the file", dtype=np.float32
):
  """`state_dict` as our unrolled variables; a ValueError in one sentence naming the first key (in
  the file's order) that is unexpected or of the wrong shape, or else the first missing one."""
  expected = {}  # torch key -> (collection, our path, torch shape)
  for col, flat in variable_shapes(arch).items():
    for path, sds in flat.items():
      key = arch.torch_name(path[:-1], path[-1])
      expected[key] = (col, path, _layout(arch, key, path[-1]).torch_shape(sds.shape))
  fits = f"{what} does not fit {arch.source} {arch.name}"
  leaves: dict[str, dict] = {col: {} for col in COLLECTIONS}
  for key, array in state_dict.items():
    if key.endswith(f".{TRACKED}"):
      continue
    if key not in expected:
      raise ValueError(f"{fits}: it has the key {key}, which {arch.name} does not")
    col, path, shape = expected[key]
    if tuple(np.shape(array)) != shape:
      raise ValueError(
        f"{fits}: its key {key} has shape {list(np.shape(array))}, the architecture needs "
        f"{list(shape)}"
      )
    leaves[col][path] = _layout(arch, key, path[-1]).from_torch(np.asarray(array, dtype))
  missing = [k for k in expected if k not in state_dict]
  if missing:
    raise ValueError(
      f"{fits}: it has no key {missing[0]} (expected shape {list(expected[missing[0]][2])})"
      f"{f' and {len(missing) - 1} more are missing' if len(missing) > 1 else ''}; is it a "
      f"{arch.name} checkpoint of {arch.source}?"
    )
  return {col: _unflatten(flat) for col, flat in leaves.items()}
