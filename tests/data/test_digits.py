"""'digits' (cnn_depth/data/digits.py): scikit-learn's digits without importing it, a stratified
test split per seed, and a validation split carved from the training images."""

import numpy as np
import pytest

from cnn_depth import data
from cnn_depth.data import DataError


def test_digits_split_shapes_and_stats():
  ds = data.load_dataset("digits")
  assert ds.name == "digits" and ds.num_classes == 10 and ds.crop_padding == 1 and ds.flip is False
  assert ds.train_images.shape == (1500, 8, 8, 1) and ds.test_images.shape == (297, 8, 8, 1)
  assert ds.image_shape == (8, 8, 1)
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert ds.test_labels.dtype == np.int32 and ds.train_images.max() == 255
  assert set(np.unique(ds.train_labels)) == set(range(10))
  test_counts = np.bincount(ds.test_labels, minlength=10)
  assert test_counts.min() >= 28 and test_counts.max() <= 31  # stratified: about 30 per class
  # All 1,797 images, each exactly once.
  from sklearn.datasets import load_digits

  assert len(
    np.unique(np.concatenate([ds.train_images, ds.test_images]).reshape(1797, -1), axis=0)
  ) == len(np.unique(load_digits().images.reshape(1797, -1), axis=0))
  flat = ds.train_images.reshape(-1).astype(np.float64)
  assert ds.mean == pytest.approx((flat.mean(),)) and ds.std == pytest.approx((flat.std(),))
  assert 50 < ds.mean[0] < 110 and 70 < ds.std[0] < 120


def test_digits_are_scikit_learns_own_without_importing_it():
  """`digits.read` parses the CSV that `load_digits` reads (importing scikit-learn takes ~1 s)."""
  from sklearn.datasets import load_digits

  from cnn_depth.data import digits

  ref = load_digits()
  train_x, train_y, test_x, test_y = digits.read(None, seed=0)
  test = digits.stratified_holdout(ref.target, digits.DIGITS_TEST_SIZE, 0)
  scaled = np.round(ref.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  np.testing.assert_array_equal(train_x, scaled[~test])
  np.testing.assert_array_equal(test_x, scaled[test])
  np.testing.assert_array_equal(np.concatenate([train_y, test_y]),
                                np.concatenate([ref.target[~test], ref.target[test]]))  # fmt: skip


def test_digits_deterministic_per_seed():
  a, b = data.load_dataset("digits"), data.load_dataset("digits", seed=0)
  c = data.load_dataset("digits", seed=1)
  np.testing.assert_array_equal(a.test_images, b.test_images)
  np.testing.assert_array_equal(a.train_labels, b.train_labels)
  assert not np.array_equal(a.test_images, c.test_images)
  np.testing.assert_array_equal(np.bincount(a.test_labels), np.bincount(c.test_labels))


def test_validation_split():
  full = data.load_dataset("digits", seed=3)  # the seed fixes the test split as well
  ds = data.load_dataset("digits", validation_size=300, seed=3)
  assert ds.name == "digits:val300"
  assert ds.train_images.shape == (1200, 8, 8, 1) and ds.test_images.shape == (300, 8, 8, 1)
  rows = lambda x: sorted(map(bytes, x.reshape(len(x), -1)))
  assert rows(np.concatenate([ds.train_images, ds.test_images])) == rows(full.train_images)
  np.testing.assert_array_equal(
    np.bincount(np.concatenate([ds.train_labels, ds.test_labels])), np.bincount(full.train_labels)
  )
  again = data.load_dataset("digits", validation_size=300, seed=3)
  np.testing.assert_array_equal(ds.test_images, again.test_images)
  with pytest.raises(DataError, match="validation_size"):
    data.load_dataset("digits", validation_size=1500)
