"""Shattered gradients (cnn_depth/analysis/shattered.py; Balduzzi et al. 2017): known answers.

A linear net has one gradient everywhere (correlation 1 at every lag); independent white-noise
gradients are uncorrelated; f(x) = sin(a.x) + cos(b.x) along a line in the direction a + b has the
gradient cos(w s) a - sin(w s) b, whose correlation at lag k is cos(w k ds) exactly (a, b centred,
orthogonal, of equal norm). The real ResNet's line gradients are checked against `jax.grad` at
single points, and for one compilation. No qualitative plain-vs-ResNet check: on tiny random nets it
is not robust.
"""

from __future__ import annotations

import csv

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.nets import random_variables  # numpy-drawn variables: flax init compiles ~10 s

from cnn_depth import layers, models, steps
from cnn_depth.analysis import shattered

MEAN, STD = (120.0, 115.0, 110.0), (60.0, 62.0, 64.0)
SHAPE = (8, 8, 3)


def numpy_correlation(grads, max_lag):
  """The definition, computed independently: mean over t of np.corrcoef(g_t, g_{t+k})."""
  g = np.asarray(grads, np.float64).reshape(len(grads), -1)
  return np.asarray(
    [
      np.mean([np.corrcoef(g[t], g[t + k])[0, 1] for t in range(len(g) - k)])
      for k in range(max_lag + 1)
    ]
  )


def test_input_line():
  rng = np.random.default_rng(0)
  x0, d = rng.normal(size=SHAPE), rng.normal(size=SHAPE) * 7.0
  xs = shattered.input_line(x0, d, num_points=9, radius=0.5)
  assert xs.shape == (9, *SHAPE) and xs.dtype == np.float32
  np.testing.assert_allclose(xs[4], x0, atol=1e-6)  # odd length: the middle is x0
  step = np.diff(xs.astype(np.float64), axis=0)
  np.testing.assert_allclose(step, np.broadcast_to(step[0], step.shape), atol=1e-5)  # evenly spaced
  np.testing.assert_allclose(np.sqrt(np.mean(np.square(xs[-1] - x0))), 0.5, rtol=1e-5)  # radius
  np.testing.assert_allclose((xs[-1] - x0) / 0.5, d / np.sqrt(np.mean(d**2)), atol=1e-5)
  with pytest.raises(ValueError, match="shape"):
    shattered.input_line(x0, d[:4], 9)
  with pytest.raises(ValueError, match="zero"):
    shattered.input_line(x0, np.zeros(SHAPE), 9)


def test_gradient_correlation_of_white_noise():
  grads = np.random.default_rng(1).normal(size=(64, 32, 32, 3))
  corr = shattered.gradient_correlation(grads, max_lag=10)
  assert corr.shape == (11,) and corr[0] == 1.0  # exactly
  assert np.all(np.abs(corr[1:]) < 0.02)  # each pair ~ N(0, 1/3072), averaged over >= 54 pairs
  np.testing.assert_allclose(corr, numpy_correlation(grads, 10), atol=1e-12)
  m = shattered.correlation_matrix(grads)
  assert m.shape == (64, 64) and np.all(np.diag(m) == 1.0)
  np.testing.assert_allclose([np.mean(np.diag(m, k)) for k in range(11)], corr, atol=1e-12)


def test_gradient_correlation_rules():
  grads = np.random.default_rng(2).normal(size=(6, 10))
  grads[2] = 3.0  # constant over its dimensions: its pairs are left out
  corr = shattered.gradient_correlation(grads, max_lag=5)
  keep = [0, 1, 3, 4, 5]
  for k in (1, 2, 3):
    pairs = [(t, t + k) for t in range(6 - k) if t in keep and t + k in keep]
    want = np.mean([np.corrcoef(grads[a], grads[b])[0, 1] for a, b in pairs])
    assert corr[k] == pytest.approx(want, abs=1e-12)
  assert np.isnan(shattered.gradient_correlation(np.zeros((4, 5)), 2)).all()
  with pytest.raises(ValueError, match="max_lag"):
    shattered.gradient_correlation(grads, max_lag=6)


class Linear(nn.Module):
  """A linear "net": one Dense layer on the flattened image."""

  num_classes: int = 5

  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.Dense(self.num_classes)(x.reshape(x.shape[0], -1))


def test_linear_net_has_one_gradient_everywhere():
  rng = np.random.default_rng(3)
  kernel = rng.normal(size=(int(np.prod(SHAPE)), 5)).astype(np.float32)
  v = {"params": {"Dense_0": {"kernel": kernel, "bias": rng.normal(size=5).astype(np.float32)}}}
  model = Linear()
  xs = shattered.input_line(rng.normal(size=SHAPE), rng.normal(size=SHAPE), 17, radius=10.0)
  grads = shattered.line_gradients(model, v, xs, output=3)
  np.testing.assert_allclose(grads, np.broadcast_to(kernel[:, 3].reshape(SHAPE), grads.shape))
  classes = np.argmax(xs.reshape(17, -1) @ kernel + v["params"]["Dense_0"]["bias"], axis=1)
  assert classes[0] != classes[8] != classes[16]  # the prediction changes along the line ...
  grads = shattered.line_gradients(model, v, xs)  # ... the output stays: the middle's class
  np.testing.assert_allclose(
    grads, np.broadcast_to(kernel[:, classes[8]].reshape(SHAPE), grads.shape)
  )
  grads = shattered.line_gradients(model, v, xs, output="projection", seed=4)
  w = np.linalg.pinv(kernel) @ grads[0].reshape(-1)  # kernel has full column rank
  assert np.linalg.norm(w) == pytest.approx(1.0, abs=1e-4)  # a unit projection of the logits
  np.testing.assert_allclose(shattered.gradient_correlation(grads, 16), 1.0, atol=1e-9)
  images = rng.integers(0, 256, (3, *SHAPE), dtype=np.uint8)
  mean, std = shattered.correlation_study(
    model, v, images, MEAN, STD, num_lines=4, num_points=17, radius=2.0, max_lag=8
  )
  np.testing.assert_allclose(mean, 1.0, atol=1e-9)
  np.testing.assert_allclose(std, 0.0, atol=1e-9)
  assert shattered.line_gradient_fn(model).traces == 1  # every output, every line: one program
  with pytest.raises(ValueError, match="output"):
    shattered.line_gradients(model, v, xs, output="loss")


class SinNet:
  """f(x) = sin(a.x) + cos(b.x), one "logit"; gradient cos(a.x) a - sin(b.x) b."""

  def apply(self, variables, x, train=False):
    a, b = variables["params"]["a"], variables["params"]["b"]
    x = x.reshape(x.shape[0], -1)
    return (jnp.sin(x @ a) + jnp.cos(x @ b))[:, None]


def test_smooth_function_decays_as_a_cosine():
  rng = np.random.default_rng(5)
  a, b = rng.normal(size=(2, int(np.prod(SHAPE))))
  a, b = a - a.mean(), b - b.mean()
  b -= (a @ b) / (a @ a) * a  # orthogonal to a, still centred
  b *= np.linalg.norm(a) / np.linalg.norm(b)  # same norm
  a, b = a / np.linalg.norm(a), b / np.linalg.norm(a)
  d = a + b  # a.x_t = b.x_t = w s_t along the line through 0
  num_points, max_lag, w = 65, 24, 2 * np.pi
  radius = w * np.sqrt(np.mean(d**2)) / (a @ a)
  xs = shattered.input_line(np.zeros(SHAPE), d.reshape(SHAPE), num_points, radius)
  v = {"params": {"a": a.astype(np.float32), "b": b.astype(np.float32)}}
  grads = shattered.line_gradients(SinNet(), v, xs)
  s = np.linspace(-1, 1, num_points)[:, None]
  expect = np.cos(w * s) * a - np.sin(w * s) * b
  np.testing.assert_allclose(grads.reshape(num_points, -1), expect, atol=1e-4)
  corr = shattered.gradient_correlation(grads, max_lag)
  ds = 2 / (num_points - 1)
  np.testing.assert_allclose(corr, np.cos(w * ds * np.arange(max_lag + 1)), atol=1e-4)
  np.testing.assert_allclose(corr, numpy_correlation(grads, max_lag), atol=1e-9)
  assert corr[16] == pytest.approx(-1.0, abs=1e-4)  # half a period: the opposite gradient


@pytest.fixture(scope="module")
def resnet():
  model = models.cifar_resnet(8, width=4)
  return model, random_variables(model, SHAPE, seed=6)


def test_resnet_line_gradients_are_input_gradients(resnet):
  model, v = resnet
  fn = shattered.line_gradient_fn(model)
  rng = np.random.default_rng(7)
  image = rng.integers(0, 256, SHAPE, dtype=np.uint8)
  x0 = np.asarray(steps.normalize(jnp.asarray(image), MEAN, STD))
  xs = shattered.input_line(x0, rng.normal(size=SHAPE), num_points=7, radius=1.0)
  grads = fn(v, xs)
  assert grads.shape == xs.shape and grads.dtype == np.float32

  opts = layers.compiler_options()
  logits = lambda v, x: model.apply(v, x[None], train=False)[0]
  grad = jax.jit(jax.grad(lambda x, v, c: logits(v, x)[c]), compiler_options=opts)
  c = int(np.argmax(jax.jit(logits, compiler_options=opts)(v, xs[3])))
  for t in (0, 3, 6):
    np.testing.assert_allclose(grads[t], grad(xs[t], v, c), rtol=1e-4, atol=1e-6)
  assert np.abs(grads).max() > 0

  other = shattered.input_line(xs[0], rng.normal(size=SHAPE), num_points=7, radius=3.0)
  fn(v, other, output="projection")
  np.testing.assert_allclose(fn(v, other, output=2)[4], grad(other[4], v, 2), rtol=1e-4, atol=1e-6)
  images = rng.integers(0, 256, (2, *SHAPE), dtype=np.uint8)
  mean, std = shattered.correlation_study(
    model, v, images, MEAN, STD, num_lines=3, num_points=7, radius=1.0, max_lag=6, seed=1
  )
  assert mean.shape == std.shape == (7,) and mean[0] == 1.0 and std[0] == 0.0
  assert np.all(np.abs(mean) <= 1.0) and np.all(std >= 0.0)
  again = shattered.correlation_study(
    model, v, images, MEAN, STD, num_lines=3, num_points=7, radius=1.0, max_lag=6, seed=1
  )
  np.testing.assert_array_equal(again[0], mean)  # seeded
  assert fn.traces == 1 and fn.jitted._cache_size() == 1  # two lines, three outputs, one program


def test_correlation_csv(tmp_path):
  path = tmp_path / "out" / "shattered.csv"
  shattered.write_correlation_csv(
    path, {("plain", 20, 0, False): [1.0, 0.5, 0.25], ("resnet", 20, 1, True): np.array([1.0, 0.9])}
  )
  with open(path) as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["model", "depth", "seed", "trained", "lag", "correlation"]
  got = [
    (r["model"], r["depth"], r["seed"], r["trained"], r["lag"], r["correlation"]) for r in rows
  ]
  assert got == [
    ("plain", "20", "0", "0", "0", "1.0"),
    ("plain", "20", "0", "0", "1", "0.5"),
    ("plain", "20", "0", "0", "2", "0.25"),
    ("resnet", "20", "1", "1", "0", "1.0"),
    ("resnet", "20", "1", "1", "1", "0.9"),
  ]
