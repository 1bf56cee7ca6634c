"""The compiled sum over a split (cnn_depth/evaluation.py): padded to whole batches, the padding
masked out, every batch summed in one program that new arguments and new splits of the same shapes
reuse (the training loop's evaluation, the lesion, the landscape and the Hessian rely on it)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from cnn_depth import evaluation


def weighted_sums(w, bias, batch):
  """Per batch: the masked sum of (w . image + bias) and of the labels, and the real examples."""
  mask = batch["mask"]
  return {
    "score": jnp.sum((batch["image"] @ w + bias) * mask),
    "labels": jnp.sum(batch["label"] * mask.astype(jnp.int32)),
    "count": jnp.sum(mask),
  }


def test_pad_split_pads_to_whole_batches_and_masks_the_padding():
  images, labels = np.ones((10, 3), np.float32), np.arange(10)
  split = evaluation.pad_split(images, labels, 4)
  assert split.images.shape == (12, 3) and split.num_batches == 3 and split.num_examples == 10
  np.testing.assert_array_equal(split.mask, [1.0] * 10 + [0.0] * 2)
  with pytest.raises(ValueError, match="as many images as labels"):
    evaluation.pad_split(images, labels[:9], 4)


def test_split_sum_adds_every_real_example_in_one_compilation():
  rng = np.random.default_rng(0)
  images, labels = rng.normal(size=(10, 3)).astype(np.float32), rng.integers(0, 10, 10)
  split = evaluation.pad_split(images, labels, 4)  # 3 batches, the last half padding
  mean = evaluation.SplitSum(
    weighted_sums, lambda sums, n: (sums["score"] / n, sums["labels"], sums["count"])
  )
  for w, bias in [(np.ones(3), 0.0), (np.arange(3.0), 2.0), (-np.ones(3), -1.0)]:
    w, bias = np.float32(w), np.float32(bias)
    score, label_sum, count = mean(w, bias, split)
    assert float(score) == pytest.approx(np.mean(images @ w + bias), rel=1e-6)
    assert int(label_sum) == labels.sum() and float(count) == 10.0
  other = evaluation.pad_split(images[::-1] * 2, labels[::-1], 4)  # same shapes and size
  assert float(mean(w, bias, other)[0]) == pytest.approx(np.mean(2 * images @ w + bias), rel=1e-6)
  assert mean.traces == 1 and mean.jitted._cache_size() == 1
  sums = evaluation.SplitSum(weighted_sums)(w, bias, split)  # no finish: the sums themselves
  assert set(sums) == {"score", "labels", "count"} and float(sums["count"]) == 10.0


def test_error_rate():
  sums = {"correct": jnp.float32(30.0)}
  assert float(evaluation.error_rate(sums, 40)) == pytest.approx(0.25)
