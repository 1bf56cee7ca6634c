"""Path counting and routed path gradients (cnn_depth/analysis/paths.py; Veit et al. 2016 §5).

Exactness is checked on a net whose blocks are linear maps x -> x + W_i x, combined with the same
`gating.merge` the models use: the gradient through the paths of a set S of blocks is then a closed
form, c^T prod_{i in S} W_i (in block order). The real CIFAR ResNet is checked for what routing must
and must not change.
"""

from __future__ import annotations

import csv
import math
from fractions import Fraction

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.nets import random_variables  # numpy-drawn variables: flax init compiles ~10 s

from cnn_depth import models, steps
from cnn_depth.analysis import paths
from cnn_depth.models import gating

N_BLOCKS, DIM, BATCH = 4, 4, 6
TRACES = [0]  # LinearResNet.__call__ traces


class LinearResNet(nn.Module):
  """n residual blocks h -> h + W_i h on the flattened input; the output is the "logits"."""

  n: int = N_BLOCKS
  dim: int = DIM
  residual: bool = True

  @property
  def num_blocks(self) -> int:
    return self.n

  @property
  def dtype(self):
    return jnp.float32

  @nn.compact
  def __call__(self, x, *, train, gates=None, grad_route=None):
    del train
    TRACES[0] += 1
    h = x.reshape(x.shape[0], -1)
    for i in range(self.n):
      w = self.param(f"w{i}", nn.initializers.normal(0.6), (self.dim, self.dim))
      gate = 1.0 if gates is None else gates[i]
      h = gating.merge(h, h @ w.T, gate, None if grad_route is None else grad_route[i])
    return h


@pytest.fixture(scope="module")
def linear():
  model = LinearResNet()
  x = jax.random.normal(jax.random.key(1), (BATCH, 2, 2, 1))  # flattens to DIM
  v = model.init(jax.random.key(0), x, train=False)
  ws = [np.asarray(v["params"][f"w{i}"], np.float64) for i in range(N_BLOCKS)]
  labels = jnp.asarray(np.arange(BATCH) % DIM, jnp.int32)
  return model, v, x, labels, ws


def path_matrix(ws, blocks):
  """prod_{i in blocks} W_i, applied in block order (the first block acts first)."""
  m = np.eye(DIM)
  for i in sorted(blocks):
    m = ws[i] @ m
  return m


SETS = [(), (0,), (2,), (1, 3), (0, 2, 3), (0, 1, 2, 3)]


@pytest.mark.parametrize("blocks", SETS)
def test_routed_gradient_is_the_product_of_the_sampled_blocks(linear, blocks):
  model, v, x, labels, ws = linear
  c = np.asarray([0.3, -1.2, 0.7, 2.0])
  route = paths.route_for(N_BLOCKS, blocks)
  values, g = paths.routed_input_gradient(
    model, v, x, labels, route, mode=lambda out, lab: out @ jnp.asarray(c, out.dtype)
  )
  expected = path_matrix(ws, blocks).T @ c  # d (c . M_S h) / dh = M_S^T c, for every example
  np.testing.assert_allclose(
    np.asarray(g).reshape(BATCH, DIM), np.tile(expected, (BATCH, 1)), rtol=1e-5, atol=1e-5
  )
  # Routing changes gradients only: the objective is the unrouted forward's.
  np.testing.assert_allclose(values, model.apply(v, x, train=False) @ c, rtol=1e-6)


@pytest.mark.parametrize("blocks", [(), (1,), (0, 3), (0, 1, 2, 3)])
def test_routed_loss_gradient_closed_form(linear, blocks):
  model, v, x, labels, ws = linear
  h = np.asarray(x, np.float64).reshape(BATCH, DIM)
  out = h @ path_matrix(ws, []).T
  for w in ws:  # the full forward: prod (I + W_i)
    out = out + out @ w.T
  p = np.exp(out - out.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  delta = p - np.eye(DIM)[np.asarray(labels)]  # d CE_b / d logits_b
  expected = delta @ path_matrix(ws, blocks)  # rows: M_S^T delta_b
  _, g = paths.routed_input_gradient(model, v, x, labels, paths.route_for(N_BLOCKS, blocks))
  np.testing.assert_allclose(np.asarray(g).reshape(BATCH, DIM), expected, rtol=1e-5, atol=1e-5)


def test_path_gradient_norms_match_closed_form_and_trace_once(linear):
  model, v, x, labels, ws = linear
  ks, samples, seed = [0, 1, 2, 3, 4], 3, 7
  before = TRACES[0]
  # 12 routes: 6 calls, 1 trace.
  mean, std = paths.path_gradient_norms(
    model, v, x, labels, (0.0,), (1.0,), ks, samples, seed, chunk_size=2
  )
  assert TRACES[0] - before == 1
  assert mean.shape == std.shape == (len(ks),)

  h = np.asarray(x, np.float64).reshape(BATCH, DIM)
  out = h.copy()
  for w in ws:
    out = out + out @ w.T
  p = np.exp(out - out.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  delta = p - np.eye(DIM)[np.asarray(labels)]
  routes, row_k = paths.sample_routes(N_BLOCKS, ks, samples, seed)
  assert [int(np.sum(row_k == k)) for k in ks] == [1, 3, 3, 3, 1]  # C(4, k) <= 3: every set
  norms = []
  for route in routes:
    blocks = np.flatnonzero(route == gating.ROUTE_BRANCH)
    norms.append(np.mean(np.linalg.norm(delta @ path_matrix(ws, blocks), axis=1)))
  norms = np.asarray(norms)
  np.testing.assert_allclose(mean, [norms[row_k == k].mean() for k in ks], rtol=1e-5)
  np.testing.assert_allclose(std, [norms[row_k == k].std() for k in ks], rtol=1e-4, atol=1e-7)
  assert std[0] == 0 and std[-1] == 0


def test_sampled_routes_have_k_branches():
  routes, row_k = paths.sample_routes(10, [0, 3, 10], 5, seed=0)
  assert routes.shape == (7, 10) and routes.dtype == np.int32
  np.testing.assert_array_equal(np.sum(routes == gating.ROUTE_BRANCH, 1), row_k)
  assert set(np.unique(routes)) <= {gating.ROUTE_BRANCH, gating.ROUTE_SKIP}


@pytest.fixture(scope="module")
def resnet():
  model = models.cifar_resnet(14, width=4)
  images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
  labels = np.arange(8) % 10
  return model, random_variables(model, (16, 16, 3)), images, labels


@pytest.mark.slow
def test_resnet_routes_change_gradients_not_values(resnet):
  model, v, images, labels = resnet
  x = steps.normalize(jnp.asarray(images), (120.0,) * 3, (60.0,) * 3)
  n = model.num_blocks
  skip = np.full(n, gating.ROUTE_SKIP, np.int32)
  both = np.full(n, gating.ROUTE_BOTH, np.int32)
  forward = jax.jit(lambda route: model.apply(v, x, train=False, grad_route=route))
  np.testing.assert_array_equal(forward(skip), forward(both))
  routed = jax.jit(lambda route: paths.routed_input_gradient(model, v, x, labels, route))
  vals_skip, g_skip = routed(skip)
  vals_both, g_both = routed(both)
  _, g_none = jax.jit(lambda: paths.routed_input_gradient(model, v, x, labels, None))()
  np.testing.assert_array_equal(vals_skip, vals_both)
  np.testing.assert_allclose(g_both, g_none, rtol=1e-5, atol=1e-6)
  assert np.all(np.isfinite(g_skip)) and float(jnp.linalg.norm(g_skip)) > 0
  assert not np.allclose(g_skip, g_both, rtol=1e-3, atol=1e-6)


@pytest.mark.slow
def test_resnet_path_gradient_norms(resnet):
  model, v, images, labels = resnet
  fn = paths.make_path_gradient_fn(
    model, v, images, labels, (120.0,) * 3, (60.0,) * 3, chunk_size=4
  )
  for ks in ([0, 1], [2, 3, 6], [5]):
    routes, _ = paths.sample_routes(model.num_blocks, ks, 3, seed=1)
    norms = fn(routes)
    assert norms.shape == (len(routes),) and np.all(np.isfinite(norms)) and np.all(norms > 0)
  assert fn.traces == 1 and fn.jitted._cache_size() == 1
  mean, std = paths.path_gradient_norms(
    model, v, images, labels, (120.0,) * 3, (60.0,) * 3, [0, 3, 6], 2, seed=0
  )
  assert mean.shape == std.shape == (3,) and std[0] == 0 and std[2] == 0


def test_plain_net_is_refused(resnet):
  _, _, images, labels = resnet
  plain = models.cifar_resnet(14, width=4, residual=False)
  with pytest.raises(ValueError, match="residual"):  # refused before the variables are looked at
    paths.path_gradient_norms(plain, {}, images, labels, (0.0,) * 3, (1.0,) * 3, [0], 1)


def test_bad_mode_is_refused(linear):
  model, v, x, labels, _ = linear
  with pytest.raises(ValueError, match="mode"):
    paths.make_path_gradient_fn(model, v, x, labels, (0.0,), (1.0,), mode="gradient")


# --------------------------------------------------------------------------------------------------
# Counting.


@pytest.mark.parametrize("n", [0, 1, 3, 15, 54, 600])
def test_path_counts(n):
  counts = paths.path_counts(n)
  assert len(counts) == n + 1 and all(isinstance(c, int) for c in counts)
  assert sum(counts) == 2**n
  assert counts == counts[::-1]
  dist = paths.path_length_distribution(n)
  np.testing.assert_allclose(dist, dist[::-1], rtol=0, atol=0)
  assert math.isclose(dist.sum(), 1.0, rel_tol=1e-12)


def test_path_counts_resnet110():
  counts = paths.path_counts(54)  # ResNet-110: 54 blocks
  assert counts[27] == 1_946_939_425_648_112
  assert counts[1] == 54 and counts[2] == 54 * 53 // 2
  assert np.argmax(paths.path_length_distribution(54)) == 27


def test_effective_paths_of_a_geometric_magnitude_curve():
  # mean[k] = 2^-k with n = 20: total[k] = C(20, k) / 2^k, proportional to the Binomial(20, 1/3) pmf
  # (sum (3/2)^20). The windows of 7 lengths: [3, 9] holds 89.05%, [4, 10] 90.19%, [5, 11] less;
  # no window of 6 lengths reaches 90%. So the shortest window holding 90% is [4, 10].
  n = 20
  counts = paths.path_counts(n)
  total = [Fraction(math.comb(n, k), 2**k) for k in range(n + 1)]
  share = lambda lo, hi: sum(total[lo : hi + 1]) / sum(total)
  assert sum(total) == Fraction(3, 2) ** n
  assert share(4, 10) >= Fraction(9, 10) > share(3, 9) > share(5, 11)
  assert all(share(lo, lo + 5) < Fraction(9, 10) for lo in range(n - 4))
  mean = 0.5 ** np.arange(n + 1)
  assert paths.effective_paths(counts, mean, 0.9) == (4, 10)
  assert paths.effective_paths(counts, mean, 1.0) == (0, n)
  np.testing.assert_allclose(paths.total_gradient(counts, mean), [float(t) for t in total])
  # A single dominant length is a window of one.
  spike = np.zeros(n + 1)
  spike[3] = 1.0
  assert paths.effective_paths(counts, spike, 0.9) == (3, 3)
  with pytest.raises(ValueError):
    paths.total_gradient(counts, mean[:-1])


def test_write_csv(tmp_path):
  ks = [0, 1, 2]
  counts = paths.path_counts(2)
  out = tmp_path / "paths" / "grad.csv"
  paths.write_csv(out, ks, counts, [1.0, 0.5, 0.25], [0.0, 0.1, 0.0])
  with open(out) as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["k", "num_paths", "grad_norm_mean", "grad_norm_std", "total_grad"]
  assert [int(r["num_paths"]) for r in rows] == [1, 2, 1]
  assert [float(r["total_grad"]) for r in rows] == [1.0, 1.0, 0.25]


def test_write_csv_with_seeds(tmp_path):
  """With the spread over seeds: two more columns after the old ones; the per-seed file."""
  ks, counts = [0, 1, 2], paths.path_counts(2)
  paths.write_csv(tmp_path / "g.csv", ks, counts, [1.0, 0.5, 0.25], [0.1] * 3, [0.2, 0.1, 0.0], 3)
  with open(tmp_path / "g.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == [
    "k",
    "num_paths",
    "grad_norm_mean",
    "grad_norm_std",
    "total_grad",
    "grad_norm_seed_std",
    "seeds",
  ]
  assert [(float(r["grad_norm_seed_std"]), r["seeds"]) for r in rows] == [
    (0.2, "3"),
    (0.1, "3"),
    (0.0, "3"),
  ]
  by_seed = {4: ([1.0, 0.5, 0.25], [0.0] * 3), 7: ([2.0, 1.0, 0.5], [0.1] * 3)}
  paths.write_seed_csv(tmp_path / "s.csv", ks, counts, by_seed)
  with open(tmp_path / "s.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == [
    "seed",
    "k",
    "num_paths",
    "grad_norm_mean",
    "grad_norm_std",
    "total_grad",
  ]
  assert [(r["seed"], r["k"], float(r["total_grad"])) for r in rows] == [
    ("4", "0", 1.0),
    ("4", "1", 1.0),
    ("4", "2", 0.25),
    ("7", "0", 2.0),
    ("7", "1", 2.0),
    ("7", "2", 0.5),
  ]
