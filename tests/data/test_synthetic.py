"""'synthetic' (cnn_depth/data/synthetic.py): CIFAR-10's shapes, uniform pixels, the seed alone
decides the bytes."""

import numpy as np
import pytest

from cnn_depth import data


@pytest.mark.slow
def test_synthetic_has_cifar10_shapes_and_depends_on_the_seed_only():
  ds = data.load_dataset("synthetic", seed=3)
  assert (ds.train_images.shape, ds.test_images.shape) == ((50_000, 32, 32, 3), (10_000, 32, 32, 3))
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert (ds.num_classes, ds.crop_padding, ds.flip) == (10, 4, True)
  assert set(np.unique(ds.test_labels)) == set(range(10))
  assert abs(ds.mean[0] - 127.5) < 0.5 and abs(ds.std[0] - 73.9) < 0.5  # uniform on 0..255
  np.testing.assert_array_equal(
    ds.train_images[:8], data.load_dataset("synthetic", seed=3).train_images[:8]
  )
  assert not np.array_equal(ds.train_labels, data.load_dataset("synthetic", seed=4).train_labels)
