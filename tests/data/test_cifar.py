"""'cifar10' and 'cifar100' (cnn_depth/data/cifar.py) from tiny python pickles in the real on-disk
format (no network): the images and labels written, the pixel layout, a validation split, and one
sentence for each way a data_dir can be wrong (CIFAR prepared by TFDS: tests/data/test_tfds.py)."""

import pickle

import numpy as np
import pytest
from helpers.data_files import chw_row, write_cifar_pickles

from cnn_depth import data
from cnn_depth.data import DataError

# ---- python pickles ------------------------------------------------------------------------------


@pytest.mark.parametrize("point_at_folder", [False, True])
def test_cifar10_pickles(tmp_path, point_at_folder):
  folder, written = write_cifar_pickles(tmp_path)
  ds = data.load_dataset("cifar10", data_dir=folder if point_at_folder else tmp_path)
  train_x = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
  train_y = np.concatenate([written[f"data_batch_{i}"][1] for i in range(1, 6)])
  np.testing.assert_array_equal(ds.train_images, train_x)  # HWC round trip of the CHW rows
  np.testing.assert_array_equal(ds.train_labels, train_y)
  np.testing.assert_array_equal(ds.test_images, written["test_batch"][0])
  np.testing.assert_array_equal(ds.test_labels, written["test_batch"][1])
  assert ds.train_images.shape == (20, 32, 32, 3) and ds.train_labels.dtype == np.int32
  assert (ds.num_classes, ds.crop_padding, ds.flip, ds.name) == (10, 4, True, "cifar10")
  expected = train_x.reshape(-1, 3).astype(np.float64)
  assert ds.mean == pytest.approx(tuple(expected.mean(0))) and ds.std == pytest.approx(
    tuple(expected.std(0))
  )


def test_cifar_pixel_layout(tmp_path):
  """A pixel with distinct R, G, B at a non-symmetric position comes back where it was written."""
  folder, _ = write_cifar_pickles(tmp_path)
  image = np.zeros((32, 32, 3), np.uint8)
  image[3, 7] = (11, 22, 33)
  with open(folder / "test_batch", "rb") as f:
    batch = pickle.load(f, encoding="bytes")
  batch[b"data"][0] = chw_row(image)
  assert batch[b"data"][0][3 * 32 + 7] == 11 and batch[b"data"][0][1024 + 3 * 32 + 7] == 22
  with open(folder / "test_batch", "wb") as f:
    pickle.dump(batch, f, protocol=2)
  ds = data.load_dataset("cifar10", data_dir=tmp_path)
  np.testing.assert_array_equal(ds.test_images[0], image)


def test_cifar100_pickles_and_validation(tmp_path):
  _, written = write_cifar_pickles(tmp_path, "cifar100")
  ds = data.load_dataset("cifar100", data_dir=tmp_path)
  np.testing.assert_array_equal(ds.train_images, written["train"][0])
  np.testing.assert_array_equal(ds.train_labels, written["train"][1])  # fine labels
  np.testing.assert_array_equal(ds.test_labels, written["test"][1])
  assert ds.num_classes == 100
  val = data.load_dataset("cifar100", data_dir=tmp_path, validation_size=5, seed=1)
  assert (
    val.name == "cifar100:val5"
    and val.train_images.shape[0] == 15
    and val.test_images.shape[0] == 5
  )


# ---- errors -------------------------------------------------------------------------------------


def test_missing_and_empty_dirs(tmp_path):
  with pytest.raises(DataError, match="does not exist") as e:
    data.load_dataset("cifar10", data_dir=tmp_path / "nope")
  assert "cifar-10-batches-py" in str(e.value) and "cifar-10-python.tar.gz" in str(e.value)
  with pytest.raises(DataError, match="folder is empty") as e:
    data.load_dataset("cifar10", data_dir=tmp_path)
  msg = str(e.value)
  assert str(tmp_path) in msg and "cifar-10-batches-py" in msg and "tfds build cifar10" in msg
  with pytest.raises(DataError, match="cifar-100-python"):
    data.load_dataset("cifar100", data_dir=tmp_path)
  with pytest.raises(DataError, match="needs data_dir"):
    data.load_dataset("cifar10")
  (tmp_path / "cifar-100-binary").mkdir()
  with pytest.raises(DataError, match="binary version 'cifar-100-binary'"):
    data.load_dataset("cifar100", data_dir=tmp_path)
  (tmp_path / "notes.txt").write_text("")
  with pytest.raises(DataError, match="it holds 'cifar-100-binary', 'notes.txt'"):
    data.load_dataset("cifar10", data_dir=tmp_path)
  (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
  with pytest.raises(DataError, match="tar xzf"):
    data.load_dataset("cifar10", data_dir=tmp_path)


def test_truncated_pickle(tmp_path):
  folder, _ = write_cifar_pickles(tmp_path)
  raw = (folder / "data_batch_3").read_bytes()
  (folder / "data_batch_3").write_bytes(raw[: len(raw) // 2])
  with pytest.raises(DataError, match="data_batch_3 is corrupt or truncated") as e:
    data.load_dataset("cifar10", data_dir=tmp_path)
  assert "cifar-10-python.tar.gz" in str(e.value)


def test_missing_batch_file(tmp_path):
  folder, _ = write_cifar_pickles(tmp_path)
  (folder / "data_batch_5").unlink()
  with pytest.raises(DataError, match="incomplete: missing data_batch_5"):
    data.load_dataset("cifar10", data_dir=tmp_path)


def test_wrong_cifar(tmp_path):
  folder, _ = write_cifar_pickles(tmp_path, "cifar100")
  for where in (tmp_path, folder):
    with pytest.raises(DataError, match="holds CIFAR-100 data, but 'cifar10' was asked") as e:
      data.load_dataset("cifar10", data_dir=where)
    assert "cifar-10-batches-py" in str(e.value)
  folder10, _ = write_cifar_pickles(tmp_path / "ten")
  with pytest.raises(DataError, match="holds CIFAR-10 data, but 'cifar100' was asked"):
    data.load_dataset("cifar100", data_dir=folder10)
