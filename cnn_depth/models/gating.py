"""The per-block gate and gradient route: one home for what every family's blocks share.

Every net with blocks numbers them in *stage-major order* (global index = sum(stage_sizes[:stage]) +
block, both from 0) and is called as `model.apply(variables, x, train=..., gates=None,
grad_route=None)`:

* `gates` (num_blocks,) or (num_blocks, batch) multiplies what each block adds. A residual block
  gives skip + gate * branch (`merge`): gate 0 deletes the block and keeps its skip path (the lesion
  study of Veit et al. 2016), gate p_l is stochastic depth at test time (Huang et al. 2016). A plain
  block or layer gives gate * out + (1 - gate) * shortcut_A(x) (`plain_merge`,
  `delete_to_identity`): gate 0 again deletes it (the input passes unchanged, or subsampled and
  zero-padded where the block changes shape), which in a plain net breaks the only path. A dense
  layer concatenates gate * its new maps (`concat_merge`).
* `grad_route` (num_blocks,) in {ROUTE_BOTH, ROUTE_BRANCH, ROUTE_SKIP} limits where the gradient
  flows through each block: values unchanged, the gradient of the other path zeroed (Veit et al.
  §5).

Both are traced values, so one compiled function serves every lesion pattern and every path sample.
Stochastic depth's survival schedule
and draws live here too; its rng stream, `DROP_RNG`, also feeds dropout.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth import layers

# the rng stream of stochastic depth and dropout: apply(..., rngs={DROP_RNG: key})
DROP_RNG = "drop"

# Where the gradient may flow through a block (the `grad_route` codes).
ROUTE_BOTH, ROUTE_BRANCH, ROUTE_SKIP = 0, 1, 2


@jax.custom_jvp
def route_gradient(value, allow):
  """`value` unchanged in the forward pass; its gradient multiplied by `allow` (0 or 1) in the
  backward.

  A custom JVP rather than `allow * v + (1 - allow) * stop_gradient(v)`, so that vmapping over many
  routes (the path analysis) shares one forward pass instead of repeating it per route.
  """
  del allow
  return value


@route_gradient.defjvp
def _route_gradient_jvp(primals, tangents):
  value, allow = primals
  dvalue, _ = tangents
  return value, jnp.asarray(allow, dvalue.dtype) * dvalue


def expand_gate(gate, ndim: int):
  """A per-block gate is a scalar (one draw per mini-batch) or a (batch,) vector (one per
  sample)."""
  gate = jnp.asarray(gate)
  return gate.reshape(gate.shape + (1,) * (ndim - gate.ndim))


def _route(skip, branch, route):
  if route is None:
    return skip, branch
  return (route_gradient(skip, route != ROUTE_BRANCH), route_gradient(branch, route != ROUTE_SKIP))


def _scale(gate, x):
  return x if gate is None else expand_gate(gate, x.ndim).astype(x.dtype) * x


def merge(skip, branch, gate=None, route=None):
  """skip + gate * branch, the gradient optionally routed: a residual block's output."""
  skip, branch = _route(skip, branch, route)
  return skip + _scale(gate, branch)


def plain_merge(skip, out, gate, route=None):
  """gate * out + (1 - gate) * skip: a plain block whose deletion passes `skip` instead."""
  keep = expand_gate(gate, out.ndim).astype(out.dtype)
  return merge((1 - keep) * skip, out, gate, route)


def delete_to_identity(x, out, gate=None, route=None):
  """A plain layer of stride 1 (VGG, Inception): gate 0 gives x, zero-padded where `out` has more
  maps."""
  if gate is None and route is None:
    return out
  gate = jnp.ones((), jnp.float32) if gate is None else gate
  return plain_merge(layers.shortcut_a(x.astype(out.dtype), out.shape[-1], 1), out, gate, route)


def concat_merge(x, new, gate=None, route=None):
  """[x, gate * new] along the channels: a dense layer, whose deletion leaves zeros for its maps."""
  x, new = _route(x, new, route)
  return jnp.concatenate([x, _scale(gate, new).astype(x.dtype)], -1)


def block_controls(gates, grad_route, num_blocks: int, net: str):
  """`gates` and `grad_route` as arrays in block order (None where not given), checked against the
  net's number of blocks."""
  if num_blocks == 0:
    for name, value in (("gates", gates), ("grad_route", grad_route)):
      if value is not None and np.size(value):
        raise ValueError(f"{net} has no blocks to gate or route: {name} must be None or empty")
    return None, None
  g = (
    None
    if gates is None
    else jnp.asarray(gates, jnp.float32).reshape((num_blocks,) + jnp.shape(gates)[1:])
  )
  r = None if grad_route is None else jnp.asarray(grad_route, jnp.int32).reshape((num_blocks,))
  return g, r


def at(controls, i: int):
  """Block i's entry of `block_controls`' arrays (None where an array is None)."""
  return tuple(None if c is None else c[i] for c in controls)


# --------------------------------------------------------------------------------------------------
# Stochastic depth (Huang et al. 2016) and dropout.


def survival_probabilities(num_blocks: int, survival_last: float) -> np.ndarray:
  """p_l = 1 - (l / L) (1 - p_L) for blocks l = 1..L (Huang et al. 2016, eq. 4, the linear decay
  rule)."""
  if not 0.0 <= survival_last <= 1.0:
    raise ValueError(f"survival probability p_L must lie in [0, 1], got {survival_last}")
  l = np.arange(1, num_blocks + 1, dtype=np.float64)
  return (1.0 - l / num_blocks * (1.0 - survival_last)).astype(np.float32)


def stochastic_depth_gates(rng, survival: jax.Array, batch_size: int | None = None) -> jax.Array:
  """Training-time gates: a Bernoulli(p_l) draw per block.

  `batch_size=None` is stochastic depth as in Huang et al.: one draw per block per mini-batch, the
  whole residual branch is used or skipped for every example. An integer gives the per-sample
  variant usually called "drop path" (one draw per block per example, shape (blocks, batch)): a
  different method, with its own (higher-variance, lower-correlation) noise. Neither rescales at
  training time; at test time the branch is scaled by p_l.
  """
  shape = survival.shape if batch_size is None else survival.shape + (batch_size,)
  p = survival if batch_size is None else survival[:, None]
  return jax.random.bernoulli(rng, p, shape).astype(jnp.float32)


def dropout(rate: float, train: bool, name: str | None = None) -> nn.Dropout:
  """Dropout drawing from `DROP_RNG`, so one `rngs={'drop': key}` serves it and stochastic depth."""
  return nn.Dropout(rate, deterministic=not train, rng_collection=DROP_RNG, name=name)
