"""Device mesh and shardings: the batch is split over a `data` axis, the train state replicated.

Under `jax.jit` with these shardings BatchNorm statistics are computed over the *global* batch (XLA
inserts the all-reduces), so a run on 8 devices equals the run on 1 device up to float
reassociation. Multi-host: call `jax.distributed.initialize()` first; each process then feeds its
local share of the batch and `global_batch` assembles the global array.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def data_mesh(devices=None) -> Mesh:
  """A 1-D mesh over every device of every process (or the given ones)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(global_batch: int, mesh: Mesh) -> int:
  """The per-device batch, or a ValueError if the global batch does not split evenly."""
  n = mesh.devices.size
  if global_batch % n:
    raise ValueError(
      f"the global batch size {global_batch} is not divisible by the {n} devices; "
      f"choose a multiple of {n}"
    )
  return global_batch // n


def global_batch(local_batch, mesh: Mesh):
  """Host-local numpy arrays (this process's share) -> global jax.Arrays sharded over `data`."""
  sharding = batch_sharded(mesh)
  return jax.tree_util.tree_map(
    lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), local_batch
  )


def replicate(array, mesh: Mesh):
  """A host numpy array, identical in every process, as a jax.Array replicated over the mesh."""
  return jax.make_array_from_process_local_data(replicated(mesh), np.asarray(array))
