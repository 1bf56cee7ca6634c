"""Hessian spectra (cnn_depth/analysis/hessian.py): the HVP of a quadratic form is A v, Lanczos
finds the known extreme eigenvalues of an indefinite matrix (and, run to the full dimension, every
eigenvalue), stochastic Lanczos quadrature puts the known masses at the known eigenvalues, and on a
tiny ResNet (through the CPU's custom-VJP convolution) the HVP is a central difference of
gradients, compiled once.
"""

from __future__ import annotations

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.nets import random_variables  # numpy-drawn variables: flax init compiles ~10 s
from jax.flatten_util import ravel_pytree

from cnn_depth import layers, models, steps
from cnn_depth.analysis import hessian

MEAN, STD = (120.0, 115.0, 110.0), (60.0, 62.0, 64.0)


def symmetric(eigenvalues, seed=0):
  """Q diag(eigenvalues) Q^T for a random orthogonal Q, float64."""
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(len(eigenvalues), len(eigenvalues))))
  return (q * np.asarray(eigenvalues, np.float64)) @ q.T


def matvec_of(a):
  """v -> A v on the host (float32 out, as a net's HVP): nothing to compile."""
  return lambda v: jnp.asarray(a @ np.asarray(v, np.float64), jnp.float32)


def test_hvp_of_a_quadratic_form_is_a_v():
  a = symmetric(np.linspace(-2.0, 3.0, 6))
  x = {"w": jnp.arange(4.0), "b": jnp.ones(2)}  # a tree: the form acts on its flat vector
  v = {"w": jnp.asarray([0.5, -1.0, 2.0, 0.0]), "b": jnp.asarray([1.0, -3.0])}
  flat = lambda t: ravel_pytree(t)[0]
  loss = lambda t: 0.5 * flat(t) @ jnp.asarray(a, jnp.float32) @ flat(t)
  np.testing.assert_allclose(flat(hessian.hvp(loss, x, v)), a @ flat(v), rtol=1e-5, atol=1e-5)
  grad, hv = hessian.grad_and_hvp(loss, x, v)  # what HessianOperator runs
  np.testing.assert_allclose(flat(grad), a @ flat(x), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(flat(hv), a @ flat(v), rtol=1e-5, atol=1e-5)
  # A cubic term makes the Hessian depend on the point: H(x) v = (A + diag(6 x)) v for sum(x^3).
  cubic = lambda t: loss(t) + jnp.sum(flat(t) ** 3)
  expected = a @ flat(v) + 6 * flat(x) * flat(v)
  np.testing.assert_allclose(flat(hessian.hvp(cubic, x, v)), expected, rtol=1e-5, atol=1e-4)


def test_lanczos_finds_the_extreme_eigenvalues():
  rng = np.random.default_rng(1)
  spectrum = np.concatenate([[12.0, 7.0, -3.0], rng.uniform(-0.5, 1.0, 297)])  # outliers + bulk
  a = symmetric(spectrum, seed=2)
  top, bottom = hessian.extreme_eigenvalues(matvec_of(a), 300, jax.random.key(0), num_iters=40)
  assert top == pytest.approx(12.0, rel=1e-4)
  assert bottom == pytest.approx(-3.0, rel=1e-4)
  assert hessian.curvature_ratio(top, bottom) == pytest.approx(0.25, rel=1e-3)


def test_lanczos_to_the_full_dimension_finds_every_eigenvalue():
  # Without reorthogonalisation, float32 Lanczos run this long repeats converged Ritz values.
  spectrum = np.concatenate([np.linspace(-4.0, -1.0, 20), np.geomspace(1e-2, 50.0, 40)])
  a = symmetric(spectrum, seed=3)
  alphas, betas = hessian.lanczos(matvec_of(a), jax.random.normal(jax.random.key(1), (60,)), 60)
  assert alphas.shape == (60,) and betas.shape == (59,)
  nodes, weights = hessian.ritz(alphas, betas)
  np.testing.assert_allclose(nodes, np.sort(spectrum), atol=2e-4 * 50)
  assert weights.sum() == pytest.approx(1.0, abs=1e-9)


def test_an_operator_that_overflows_has_undefined_extremes_after_one_product():
  calls = []
  nan_matvec = lambda v: calls.append(1) or v * jnp.nan
  top, bottom = hessian.extreme_eigenvalues(nan_matvec, 50, jax.random.key(0), num_iters=10)
  assert np.isnan(top) and np.isnan(bottom) and len(calls) == 1


def test_lanczos_stops_on_an_invariant_subspace():
  a = np.diag(np.repeat([-1.0, 2.0, 5.0], [20, 30, 50]))  # three distinct eigenvalues
  alphas, betas = hessian.lanczos(matvec_of(a), jnp.ones(100), 10)
  assert len(alphas) == 3 and len(betas) == 2
  np.testing.assert_allclose(hessian.ritz(alphas, betas)[0], [-1.0, 2.0, 5.0], atol=1e-5)


def test_slq_density_puts_the_known_mass_at_the_known_eigenvalues():
  eigenvalues, counts = np.asarray([-1.0, 2.0, 5.0]), np.asarray([40, 60, 100])
  # Rademacher starts see a diagonal matrix's eigenvalues with weight exactly count / dim.
  diag = matvec_of(np.diag(np.repeat(eigenvalues, counts)))
  nodes, weights = hessian.slq(diag, 200, jax.random.key(2), num_iters=10, num_draws=3)
  for n, w in zip(nodes, weights):
    keep = w > 1e-6
    np.testing.assert_allclose(n[keep], eigenvalues, atol=1e-5)
    np.testing.assert_allclose(w[keep], counts / 200, atol=1e-5)
  # A rotated matrix: the same masses in expectation, and the density's mean is tr(A) / dim.
  a = symmetric(np.repeat(eigenvalues, counts), seed=4)
  key = jax.random.key(3)
  for start in ("rademacher", "gaussian"):
    grid, density = hessian.spectral_density(matvec_of(a), 200, key, 20, num_draws=8, start=start)
    dt = grid[1] - grid[0]
    assert np.sum(density) * dt == pytest.approx(1.0, abs=1e-3)
    assert np.sum(grid * density) * dt == pytest.approx(np.trace(a) / 200, abs=0.15)
    for lam, c in zip(eigenvalues, counts):
      near = np.abs(grid - lam) < 0.5
      assert np.sum(density[near]) * dt == pytest.approx(c / 200, abs=0.08)
  with pytest.raises(ValueError, match="start"):
    hessian.slq(diag, 200, key, start="uniform")


def test_gaussian_density_of_one_node():
  grid = np.linspace(-1.0, 3.0, 4001)
  density = hessian.gaussian_density([[1.0, 2.0]], [[1.0, 0.0]], grid, sigma=0.1)
  assert grid[np.argmax(density)] == pytest.approx(1.0)
  assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-6)
  assert density.max() == pytest.approx(1 / (0.1 * np.sqrt(2 * np.pi)), rel=1e-6)


@pytest.fixture(scope="module")
def operator():
  """The Hessian of ResNet-8 (width 4) on 7 random 8x8 images, batches of 4 (one padded)."""
  model = models.cifar_resnet(8, width=4)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, 7).astype(np.int32)
  variables = random_variables(model, (8, 8, 3))
  return hessian.HessianOperator(model, variables, images, labels, MEAN, STD, batch_size=4)


@pytest.mark.slow
def test_hvp_of_a_net_is_a_difference_of_gradients(operator):
  h = operator
  assert layers.resolve_conv_impl(h.model.conv_impl) == "cpu_vjp"  # the custom-VJP convolution
  params = ravel_pytree(h.params)[0]
  v = jax.random.normal(jax.random.key(0), (h.dim,))
  v = v * (jnp.linalg.norm(params) / jnp.linalg.norm(v))  # the weights' scale
  # A ReLU net's gradient jumps where a unit changes sign: a step of 1e-3 of the weights crosses
  # such kinks and the difference is off by 3x-15x; 1e-4 crosses none here (1e-5: float32 noise).
  eps = 1e-4
  grad = lambda p: np.asarray(h.grad_and_hvp(v, h.unravel(p))[0], np.float64)
  difference = (grad(params + eps * v) - grad(params - eps * v)) / (2 * eps)
  hv = np.asarray(h(v))
  assert hv.shape == (h.dim,) and np.linalg.norm(hv) > 1e-2
  assert np.linalg.norm(hv - difference) < 5e-3 * np.linalg.norm(hv)
  assert np.linalg.norm(2 * hv - difference) > 0.5 * np.linalg.norm(hv)  # the test can fail


def test_loss_fn_is_the_mean_cross_entropy_whose_gradient_the_operator_returns(operator):
  h = operator
  jit = lambda f: jax.jit(f, compiler_options=layers.compiler_options())
  loss = jit(lambda p, bs, split: hessian.make_loss_fn(h.model, bs, split, MEAN, STD)(p))
  x = steps.normalize(h.split.images, MEAN, STD)
  logits = np.asarray(jit(lambda v, x: h.model.apply(v, x, train=False))(h.variables, x), float)
  logp = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
  real = np.asarray(h.split.mask, bool)  # 7 images, one padding
  expected = -np.mean(logp[np.arange(len(real)), np.asarray(h.split.labels)][real])
  assert float(loss(h.params, h.batch_stats, h.split)) == pytest.approx(expected, rel=1e-5)
  # The directional derivative along the gradient, by a central difference of the loss: |g|^2.
  params = ravel_pytree(h.params)[0]
  g = h.grad_and_hvp(jnp.zeros(h.dim))[0]
  v = g * (jnp.linalg.norm(params) / jnp.linalg.norm(g))
  eps = 1e-4
  at = lambda p: float(loss(h.unravel(p), h.batch_stats, h.split))
  slope = (at(params + eps * v) - at(params - eps * v)) / (2 * eps)
  assert slope == pytest.approx(float(g @ v), rel=1e-2)


def test_extreme_eigenvalues_of_a_net_bound_its_rayleigh_quotients(operator):
  h = operator
  top, bottom = hessian.extreme_eigenvalues(h, h.dim, jax.random.key(1), num_iters=15)
  assert top > 0 > bottom  # random ReLU nets have negative curvature
  for k in jax.random.split(jax.random.key(2), 3):
    v = jax.random.normal(k, (h.dim,))
    rayleigh = float(v @ h(v) / (v @ v))
    assert bottom - 1e-4 * top <= rayleigh <= top * (1 + 1e-4)
  assert h.traces == 1 and h.jitted._cache_size() == 1  # one compilation for every product


def test_csv_files(tmp_path):
  hessian.write_hessian_csv(
    tmp_path / "hessian.csv", {("resnet", 20, 0): [(0, 10.0, -1.0), (100, 4.0, -0.5)]}
  )
  with open(tmp_path / "hessian.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["model", "depth", "seed", "step", "lambda_max", "lambda_min", "ratio"]
  assert [(r["model"], int(r["depth"]), int(r["step"])) for r in rows] == [
    ("resnet", 20, 0),
    ("resnet", 20, 100),
  ]
  assert float(rows[0]["ratio"]) == 0.1 and float(rows[1]["ratio"]) == 0.125
  hessian.write_density_csv(
    tmp_path / "density.csv",
    {("plain", 56, 1): [(0, [0.0, 1.0], [0.5, 0.5])], ("resnet", 56, 1): [(5, [2.0], [1.0])]},
  )
  with open(tmp_path / "density.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["model", "depth", "seed", "step", "eigenvalue", "density"]
  assert [(r["model"], float(r["eigenvalue"]), float(r["density"])) for r in rows] == [
    ("plain", 0.0, 0.5),
    ("plain", 1.0, 0.5),
    ("resnet", 2.0, 1.0),
  ]
  with pytest.raises(ValueError):
    hessian.write_density_csv(tmp_path / "bad.csv", {("plain", 56, 1): [(0, [0.0], [0.5, 0.5])]})
