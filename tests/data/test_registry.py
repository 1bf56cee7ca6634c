"""The dataset registry (cnn_depth/data/registry.py, through cnn_depth.data): specs, lookup,
open_dataset, padding, and importing the package imports no data library."""

import dataclasses

import numpy as np
import pytest
from helpers.data_files import write_fake_imagenet
from helpers.runner import run_script

from cnn_depth import data
from cnn_depth.data import DataError, DatasetSpec


def toy_read(data_dir, seed):
  """Six 2x2x1 training images with values 0..23 and three test images: fixed, whatever the seed."""
  del data_dir, seed
  train_x = np.arange(24, dtype=np.uint8).reshape(6, 2, 2, 1)
  return train_x, np.arange(6, dtype=np.int32) % 3, train_x[:3] + 100, np.zeros(3, np.int32)


@pytest.fixture
def toy():
  """Registers 'toy' (in memory) for one test and removes it afterwards, whatever the test did."""
  spec = data.register(
    DatasetSpec(
      name="toy",
      summary="a toy for tests",
      image_shape=(2, 2, 1),
      num_classes=3,
      read=toy_read,
      crop_padding=1,
      flip=False,
    )
  )
  yield spec
  data.unregister("toy")


def test_the_registry_holds_the_six_datasets():
  assert data.names() == ("digits", "mnist5k", "cifar10", "cifar100", "imagenet2012", "synthetic")
  expected = {
    "digits": ((8, 8, 1), 10, 1, False),
    "mnist5k": ((32, 32, 1), 10, 2, False),
    "cifar10": ((32, 32, 3), 10, 4, True),
    "cifar100": ((32, 32, 3), 100, 4, True),
    "synthetic": ((32, 32, 3), 10, 4, True),
    "imagenet2012": ((224, 224, 3), 1000, 0, False),
  }
  for name, (shape, classes, crop, flip) in expected.items():
    spec = data.get(name)
    assert (spec.name, spec.image_shape, spec.num_classes) == (name, shape, classes)
    assert (spec.crop_padding, spec.flip) == (crop, flip)
    assert spec.streamed == (name == "imagenet2012") and spec.summary
  imagenet = data.get("imagenet2012")
  assert imagenet.test_split == "validation" and len(imagenet.mean) == len(imagenet.std) == 3
  assert imagenet.info is data.imagenet_info and imagenet.stream is data.imagenet_loader
  assert data.get("digits").test_split == "test" and data.get("digits").mean is None


def test_unknown_dataset_lists_the_registry():
  with pytest.raises(DataError) as e:
    data.get("nope")
  msg = str(e.value)
  assert msg.startswith(
    "Unknown dataset 'nope'. Known: 'digits' (embedded in scikit-learn, no download), "
  )
  assert all(f"'{name}' (" in msg for name in data.names())
  with pytest.raises(DataError, match="Unknown dataset 'nope'"):
    data.open_dataset("nope")


def test_a_registered_spec_is_loaded_and_opened(toy):
  ds = data.load_dataset("toy")
  assert isinstance(ds, data.InMemoryDataset) and not ds.streamed
  assert (ds.name, ds.num_classes, ds.crop_padding, ds.flip, ds.image_shape) == (
    "toy",
    3,
    1,
    False,
    (2, 2, 1),
  )
  np.testing.assert_array_equal(ds.train_images.ravel(), np.arange(24))
  assert ds.mean == pytest.approx((11.5,)) and ds.std == pytest.approx((np.arange(24).std(),))
  val = data.open_dataset("toy", validation_size=2, seed=1)
  assert isinstance(val, data.InMemoryDataset) and val.name == "toy:val2"
  assert (val.num_train, val.num_test) == (4, 2)
  with pytest.raises(ValueError, match="already registered"):
    data.register(toy)
  fixed = dataclasses.replace(toy, mean=(1.0,), std=(2.0,))
  assert data.register(fixed, replace=True) is fixed and data.get("toy") is fixed
  assert (data.load_dataset("toy").mean, data.load_dataset("toy").std) == ((1.0,), (2.0,))


def test_a_reader_of_the_wrong_shape_is_refused(toy):
  data.register(dataclasses.replace(toy, image_shape=(2, 2, 3)), replace=True)
  with pytest.raises(DataError, match=r"read images of shape \(2, 2, 1\), but its spec says"):
    data.load_dataset("toy")


def test_spec_checks():
  base = dict(name="x", summary="s", image_shape=(2, 2, 1), num_classes=2)
  stream = lambda *a, **k: iter(())
  info = lambda data_dir: None
  with pytest.raises(ValueError, match="exactly one of read"):
    DatasetSpec(**base)
  with pytest.raises(ValueError, match="exactly one of read"):
    DatasetSpec(**base, read=toy_read, stream=stream)
  with pytest.raises(ValueError, match="needs info and fixed mean"):
    DatasetSpec(**base, stream=stream, info=info, crop_padding=0, flip=False)
  with pytest.raises(ValueError, match="crop_padding=0 and flip=False"):
    DatasetSpec(**base, stream=stream, info=info, mean=(0.0,), std=(1.0,))
  with pytest.raises(ValueError, match="both mean and std"):
    DatasetSpec(**base, read=toy_read, mean=(0.0,))
  assert DatasetSpec(
    **base, stream=stream, info=info, mean=(0.0,), std=(1.0,), crop_padding=0, flip=False
  ).streamed


def test_imagenet_is_opened_not_loaded(tmp_path):
  with pytest.raises(DataError, match=r"'imagenet2012' is streamed .* use open_dataset"):
    data.load_dataset("imagenet2012", tmp_path)
  with pytest.raises(DataError, match="validation_size=5: 'imagenet2012' is streamed"):
    data.open_dataset("imagenet2012", tmp_path, validation_size=5)
  with pytest.raises(DataError, match="No prepared TFDS dataset 'imagenet2012'"):
    data.open_dataset("imagenet2012", tmp_path)

  write_fake_imagenet(tmp_path)
  ds = data.open_dataset("imagenet2012", tmp_path)
  assert isinstance(ds, data.StreamedDataset) and ds.streamed
  assert (ds.name, ds.num_train, ds.num_classes, ds.image_shape) == (
    "imagenet2012",
    10,
    5,
    (224, 224, 3),
  )
  assert (ds.crop_padding, ds.flip, ds.test_split) == (0, False, "validation")
  assert ds.mean == data.get("imagenet2012").mean and len(ds.std) == 3
  batches = list(ds.batches(ds.test_split, 4, train=False))
  assert len(batches) == 2 and batches[0]["image"].shape == (4, 224, 224, 3)
  np.testing.assert_array_equal(np.concatenate([b["mask"] for b in batches]), [1] * 5 + [0] * 3)
  first = next(iter(ds.batches("train", 4, train=True, seed=1)))
  again = next(iter(data.imagenet_loader(tmp_path, "train", 4, train=True, seed=1)))
  np.testing.assert_array_equal(first["image"], again["image"])


def test_pad_to_batches():
  arrays = {
    "image": np.arange(5 * 6, dtype=np.uint8).reshape(5, 2, 3) + 1,
    "label": np.arange(1, 6, dtype=np.int32),
  }
  out = data.pad_to_batches(arrays, 4)
  assert list(out) == ["image", "label", "mask"]
  assert out["image"].shape == (8, 2, 3) and out["image"].dtype == np.uint8
  assert out["label"].dtype == np.int32 and out["mask"].dtype == np.float32
  np.testing.assert_array_equal(out["image"][:5], arrays["image"])
  assert not out["image"][5:].any() and not out["label"][5:].any()
  np.testing.assert_array_equal(out["mask"], [1, 1, 1, 1, 1, 0, 0, 0])
  assert list(arrays) == ["image", "label"]  # the input is left alone

  exact = data.pad_to_batches(arrays, 5)
  assert exact["image"] is arrays["image"] and exact["mask"].tolist() == [1.0] * 5
  masked = data.pad_to_batches({"label": np.ones(3, np.int32), "mask": np.float32([1, 0, 1])}, 2)
  np.testing.assert_array_equal(masked["mask"], [1, 0, 1, 0])
  with pytest.raises(ValueError, match="one length"):
    data.pad_to_batches({"a": np.zeros(3), "b": np.zeros(4)}, 2)
  with pytest.raises(ValueError, match="batch_size"):
    data.pad_to_batches(arrays, 0)


def test_importing_the_package_imports_no_data_library():
  libraries = ("tensorflow_datasets", "grain", "PIL", "sklearn", "tensorflow", "mlxtend")
  code = (
    "import sys, cnn_depth.data as d; assert len(d.names()) == 6; "
    f"print(sorted(m for m in {libraries!r} if m in sys.modules))"
  )
  out = run_script("-c", code)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip() == "[]"


def test_unknown_dataset():
  with pytest.raises(DataError, match="Unknown dataset 'mnist'") as e:
    data.load_dataset("mnist")
  assert all(k in str(e.value) for k in ("'digits'", "'cifar10'", "'cifar100'", "'synthetic'"))
