"""Datasets prepared by TFDS in the array_record format, read without TensorFlow
(cnn_depth/data/tfds.py): CIFAR-10 written by a fake TFDS builder, the wrong format or class count,
and a dataset not prepared."""

import json

import numpy as np
import pytest
from helpers.data_files import cifar_examples, cifar_tfds_features, write_tfds

from cnn_depth import data
from cnn_depth.data import DataError


def test_cifar10_tfds(tmp_path):
  train, train_truth = cifar_examples(7, seed=0)
  test, test_truth = cifar_examples(3, seed=1)
  path = write_tfds(
    tmp_path, "cifar10", cifar_tfds_features(), {"train": train, "test": test}, "3.0.2"
  )
  assert path.parent.name == "cifar10" and (path / "dataset_info.json").is_file()
  ds = data.load_dataset("cifar10", data_dir=tmp_path)
  assert ds.train_images.shape == (7, 32, 32, 3) and ds.test_images.shape == (3, 32, 32, 3)
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  # TFDS shuffles records when writing: match images to labels by content.
  assert {im.tobytes(): int(y) for im, y in zip(ds.train_images, ds.train_labels)} == train_truth
  assert {im.tobytes(): int(y) for im, y in zip(ds.test_images, ds.test_labels)} == test_truth


def test_tfds_wrong_format_and_wrong_classes(tmp_path):
  train, _ = cifar_examples(2, seed=0)
  path = write_tfds(
    tmp_path / "a", "cifar10", cifar_tfds_features(100), {"train": train, "test": train}
  )
  with pytest.raises(DataError, match="100 classes"):
    data.load_dataset("cifar10", data_dir=tmp_path / "a")
  info = json.loads((path / "dataset_info.json").read_text())
  info["fileFormat"] = "tfrecord"
  (path / "dataset_info.json").write_text(json.dumps(info))
  with pytest.raises(DataError, match="file_format=array_record"):
    data.load_dataset("cifar10", data_dir=tmp_path / "a")


def test_tfds_not_prepared(tmp_path):
  (tmp_path / "cifar10" / "incomplete.X1Y2_3.0.2").mkdir(parents=True)
  with pytest.raises(DataError, match="No prepared TFDS dataset 'cifar10'") as e:
    data.load_dataset("cifar10", data_dir=tmp_path)
  assert "tfds build cifar10" in str(e.value)
