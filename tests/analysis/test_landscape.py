"""Loss landscapes (cnn_depth/analysis/landscape.py; Li et al. 2018): filter normalisation keeps the
weights' filter norms (conv, scanned conv, dense) and zeroes the rest; the landscape at alpha = 0 is
the net's test loss and error, along a zero direction it is flat, and along the head's kernel it is
the known curve of scaled logits; one compilation for every line of the same length.
"""

from __future__ import annotations

import csv

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.nets import random_variables  # numpy-drawn variables: flax init compiles ~10 s

from cnn_depth import evaluation, layers, models, steps
from cnn_depth.analysis import landscape

MEAN, STD = (120.0, 115.0, 110.0), (60.0, 62.0, 64.0)


def _names(path):
  return [k.key for k in path]


def test_filter_normalisation_keeps_every_filter_norm():
  model = models.cifar_resnet(20, width=4)  # scanned stages: blocks 1-2 stacked, (2, 3, 3, c, c)
  params = random_variables(model, (8, 8, 3))["params"]
  d = landscape.filter_normalized_direction(jax.random.key(0), params)
  seen = set()
  for (path, w), (_, dw) in zip(*(jax.tree_util.tree_leaves_with_path(t) for t in (params, d))):
    w, dw, names = np.asarray(w), np.asarray(dw), _names(path)
    assert dw.shape == w.shape
    if names[-1] != "kernel":
      assert not dw.any(), names  # biases, BN scale and bias: not perturbed
      continue
    if names[0] == "head":
      axes, kind = (0,), "dense"  # (in, out): one filter per output unit
    elif names[0].endswith("_blocks"):
      axes, kind = (1, 2, 3), "stacked"  # (block, kh, kw, in, out): per block and output channel
      own = np.sqrt(np.sum(w**2, axis=axes))
      assert not np.allclose(own[0], own[1], rtol=1e-2)  # blocks differ: a shared norm would fail
    else:
      axes, kind = (0, 1, 2), "conv"  # HWIO: one filter per output channel
    norm = lambda a: np.sqrt(np.sum(a**2, axis=axes))
    np.testing.assert_allclose(norm(dw), norm(w), rtol=1e-5)
    cosine = np.sum(w * dw) / (np.linalg.norm(w) * np.linalg.norm(dw))
    assert abs(cosine) < 0.9, names  # random, not the weights themselves
    seen.add(kind)
  assert seen == {"dense", "stacked", "conv"}
  again = landscape.filter_normalized_direction(jax.random.key(0), params)
  other = landscape.filter_normalized_direction(jax.random.key(1), params)
  head = lambda t: np.asarray(t["head"]["kernel"])
  np.testing.assert_array_equal(head(again), head(d))
  assert not np.allclose(head(other), head(d))


@pytest.fixture(scope="module")
def net():
  """ResNet-8 at width 4 on 20 random 8x8 images (batches of 8: the last is padded), the head's bias
  0 so that moving along the head's kernel scales the logits."""
  model = models.cifar_resnet(8, width=4)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, 20).astype(np.int32)
  variables = random_variables(model, (8, 8, 3))
  variables["params"]["head"]["bias"] = np.zeros_like(variables["params"]["head"]["bias"])
  return model, variables, images, labels


@pytest.fixture(scope="module")
def surface(net):
  model, variables, images, labels = net
  return landscape.LossSurface(model, variables, images, labels, MEAN, STD, batch_size=8)


def logits_of(model, variables, images):
  x = steps.normalize(jnp.asarray(images), MEAN, STD)
  apply = lambda v, x: model.apply(v, x, train=False)
  return np.asarray(jax.jit(apply, compiler_options=layers.compiler_options())(variables, x))


def scaled_logits_curve(logits, labels, scales):
  """(losses, errors) of the logits times each scale, by hand (argmax ties pick class 0)."""
  losses, errors = [], []
  for s in scales:
    z = s * logits.astype(np.float64)
    z -= z.max(-1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), -1, keepdims=True))
    losses.append(-np.mean(logp[np.arange(len(labels)), labels]))
    errors.append(np.mean(np.argmax(z, -1) != labels))
  return np.asarray(losses), np.asarray(errors)


def head_direction(params, scale=1.0):
  """The head's kernel (times `scale`), 0 elsewhere: theta + alpha d scales the logits by
  1 + alpha * scale (the head's bias is 0)."""
  d = landscape.zero_direction(params)
  d["head"]["kernel"] = scale * jnp.asarray(params["head"]["kernel"])
  return d


ALPHAS = np.asarray([-1.5, -1.0, 0.0, 0.5, 2.0], np.float32)


@pytest.mark.slow
def test_line_at_zero_is_the_nets_loss_and_error(net, surface):
  model, variables, images, labels = net
  d = landscape.filter_normalized_direction(jax.random.key(0), variables["params"])
  losses, errors = surface.line(d, ALPHAS)
  assert losses.shape == errors.shape == (5,)
  split = evaluation.pad_split(images, labels, 8)
  batch = {"image": split.images, "label": split.labels, "mask": split.mask}
  sums = steps.eval_sums(variables, batch, model=model, mean=MEAN, std=STD)
  assert losses[2] == pytest.approx(float(sums["loss_sum"]) / 20, rel=1e-5)
  assert errors[2] == pytest.approx(1 - float(sums["correct"]) / 20, abs=1e-6)
  assert len(set(losses.round(4))) == 5  # the direction moves the loss


def test_line_along_the_head_scales_the_logits(net, surface):
  model, variables, images, labels = net
  losses, errors = surface.line(head_direction(variables["params"]), ALPHAS)
  expected = scaled_logits_curve(logits_of(model, variables, images), labels, 1 + ALPHAS)
  np.testing.assert_allclose(losses, expected[0], rtol=1e-5)
  np.testing.assert_allclose(errors, expected[1], atol=1e-6)
  assert losses[1] == pytest.approx(np.log(10), rel=1e-6)  # alpha = -1: all logits 0
  assert errors[1] == pytest.approx(np.mean(labels != 0), abs=1e-6)
  a, l = np.asarray(ALPHAS, np.float64), losses  # convex in alpha: slopes increase
  slopes = np.diff(l) / np.diff(a)
  assert np.all(np.diff(slopes) > 0)


def test_zero_direction_is_flat_and_one_compilation_serves_every_line(net, surface):
  params = net[1]["params"]
  flat, _ = surface.line(landscape.zero_direction(params), ALPHAS)
  assert np.all(flat == flat[2])
  other = landscape.filter_normalized_direction(jax.random.key(3), params)
  surface.line(other, ALPHAS[::-1] * 0.5)
  assert surface.traces == 1 and surface.jitted._cache_size() == 1
  with pytest.raises(ValueError, match="coords"):
    surface([other], np.zeros((3, 2)))


def test_plane(net, surface):
  model, variables, images, labels = net
  alphas, betas = np.asarray([-1.0, 0.0, 1.0]), np.asarray([0.0, 0.5])
  d1, d2 = head_direction(variables["params"]), head_direction(variables["params"], 2.0)
  losses, errors = surface.plane(d1, d2, alphas, betas)
  assert losses.shape == errors.shape == (3, 2)
  scales = 1 + alphas[:, None] + 2 * betas[None, :]  # [i, j] at (alphas[i], betas[j])
  logits = logits_of(model, variables, images)
  expected = scaled_logits_curve(logits, labels, scales.ravel())
  np.testing.assert_allclose(losses.ravel(), expected[0], rtol=1e-5)
  np.testing.assert_allclose(errors.ravel(), expected[1], atol=1e-6)
  # The wrappers: the same numbers (a new compilation, served by the persistent cache).
  again = landscape.landscape_2d(
    model, variables, d1, d2, alphas, betas, images, labels, MEAN, STD, batch_size=8
  )
  np.testing.assert_array_equal(again[0], losses)
  line = landscape.landscape_1d(
    model, variables, d1, ALPHAS, images, labels, MEAN, STD, batch_size=8
  )
  np.testing.assert_array_equal(line[0], surface.line(d1, ALPHAS)[0])


def test_csv_files(tmp_path):
  landscape.write_landscape_1d_csv(
    tmp_path / "landscape_1d.csv",
    {
      ("resnet", 20, 0): ([-1.0, 0.0], [2.5, 0.1], [0.9, 0.08]),
      ("plain", 56, 1): ([0.0], [0.3], [0.1]),
    },
  )
  with open(tmp_path / "landscape_1d.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["model", "depth", "seed", "alpha", "train_loss", "test_error"]
  assert [(r["model"], int(r["depth"]), int(r["seed"]), float(r["alpha"])) for r in rows] == [
    ("resnet", 20, 0, -1.0),
    ("resnet", 20, 0, 0.0),
    ("plain", 56, 1, 0.0),
  ]
  assert float(rows[0]["train_loss"]) == 2.5 and float(rows[1]["test_error"]) == 0.08
  losses = np.arange(6.0).reshape(2, 3)
  landscape.write_landscape_2d_csv(
    tmp_path / "landscape_2d.csv", {("resnet", 20, 0): ([-1.0, 1.0], [0.0, 0.5, 1.0], losses)}
  )
  with open(tmp_path / "landscape_2d.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["model", "depth", "seed", "alpha", "beta", "train_loss"]
  got = {(float(r["alpha"]), float(r["beta"])): float(r["train_loss"]) for r in rows}
  assert got[(1.0, 0.0)] == 3.0 and got[(-1.0, 1.0)] == 2.0 and len(got) == 6
  with pytest.raises(ValueError, match="shape"):
    landscape.write_landscape_2d_csv(
      tmp_path / "bad.csv", {("resnet", 20, 0): ([0.0], [0.0, 1.0], losses)}
    )
