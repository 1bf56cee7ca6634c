"""'digits': scikit-learn's 1,797 8x8 handwritten digits, shipped inside its wheel.

The default dataset: no download, no data_dir. Pixels 0..16 are scaled to 0..255 and a stratified
297-image test set is held out per seed; the device augments with a 1-pixel pad-and-crop, no flip
(a flipped digit is another glyph).
"""

from __future__ import annotations

import numpy as np

from cnn_depth.data.registry import DatasetSpec, packaged_file, register

DIGITS_TEST_SIZE = 297  # of 1,797: about 30 per class, leaving a round 1,500 for training


def read(data_dir, seed: int):
  """(train_x, train_y, test_x, test_y) of the digits, split by `seed`; `data_dir` is not used."""
  del data_dir  # embedded in scikit-learn
  table = np.loadtxt(_csv_path(), delimiter=",")  # 1,797 rows: 64 pixels, then the label
  images = np.round(table[:, :64].reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = table[:, 64].astype(np.int32)
  test = stratified_holdout(labels, DIGITS_TEST_SIZE, seed)
  return images[~test], labels[~test], images[test], labels[test]


def _csv_path() -> str:
  """scikit-learn's digits.csv.gz (what `sklearn.datasets.load_digits` reads): a run's whole data
  loading is 20 ms this way, without importing scikit-learn."""
  return packaged_file("sklearn", "datasets/data/digits.csv.gz", "digits", "scikit-learn")


def stratified_holdout(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
  """A boolean mask selecting `size` examples, each class in proportion to its frequency.

  Per-class quotas by largest remainder (ties to the lower class); within each class, the first of a
  `np.random.default_rng(seed)` permutation (classes in increasing order, one generator).
  """
  classes, counts = np.unique(labels, return_counts=True)
  quota = counts * size / len(labels)
  take = np.floor(quota).astype(int)
  order = np.argsort(-(quota - take), kind="stable")
  take[order[: size - take.sum()]] += 1
  rng = np.random.default_rng(seed)
  mask = np.zeros(len(labels), bool)
  for c, k in zip(classes, take):
    mask[rng.permutation(np.flatnonzero(labels == c))[:k]] = True
  return mask


DIGITS = register(
  DatasetSpec(
    name="digits",
    summary="embedded in scikit-learn, no download",
    image_shape=(8, 8, 1),
    num_classes=10,
    read=read,
    crop_padding=1,
    flip=False,
  )
)
