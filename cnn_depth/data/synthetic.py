"""'synthetic': random CIFAR-10-shaped pixels and labels, for timing the training loop.

For where no dataset is at hand (benchmarks, a GPU without CIFAR-10). Nothing can be learnt from it:
errors stay at chance. The bytes depend on the seed only.
"""

from __future__ import annotations

import numpy as np

from cnn_depth.data.registry import DatasetSpec, register

SYNTHETIC_SIZES = (50_000, 10_000)  # CIFAR-10's training and test set sizes


def read(data_dir, seed: int):
  """(train_x, train_y, test_x, test_y): uniform uint8 32x32x3 images and labels in 0..9."""
  del data_dir  # nothing is read
  rng = np.random.default_rng(seed)
  train_x, test_x = (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for n in SYNTHETIC_SIZES)
  train_y, test_y = (rng.integers(0, 10, n, dtype=np.int32) for n in SYNTHETIC_SIZES)
  return train_x, train_y, test_x, test_y


SYNTHETIC = register(
  DatasetSpec(
    name="synthetic",
    summary="random CIFAR-shaped data, for timing",
    image_shape=(32, 32, 3),
    num_classes=10,
    read=read,
    crop_padding=4,
    flip=True,
  )
)
