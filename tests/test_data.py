"""Tests for cnn_depth/data/ on tiny data in the real on-disk formats (no network, no TF)."""

import io
import json
import pickle

import numpy as np
import pytest
from PIL import Image

from cnn_depth import data
from cnn_depth.data import DataError

# ---- writers for the real formats ----------------------------------------------------------------


def chw_row(image):
  """The CIFAR python release's row layout, written out by hand: the R plane, then G, then B."""
  return np.concatenate([image[:, :, 0].ravel(), image[:, :, 1].ravel(), image[:, :, 2].ravel()])


def write_cifar_pickles(root, name="cifar10", per_batch=4, num_test=6, seed=0):
  """A tiny `cifar-10-batches-py` / `cifar-100-python` folder; returns the HWC images and labels."""
  rng = np.random.default_rng(seed)
  num_classes = 10 if name == "cifar10" else 100
  if name == "cifar10":
    folder, files = (
      root / "cifar-10-batches-py",
      {f"data_batch_{i}": per_batch for i in range(1, 6)},
    )
    files["test_batch"] = num_test
    meta = (
      "batches.meta",
      {b"label_names": [b"c%d" % i for i in range(10)], b"num_cases_per_batch": 10000},
    )
  else:
    folder, files = root / "cifar-100-python", {"train": 5 * per_batch, "test": num_test}
    meta = (
      "meta",
      {
        b"fine_label_names": [b"f%d" % i for i in range(100)],
        b"coarse_label_names": [b"k%d" % i for i in range(20)],
      },
    )
  folder.mkdir(parents=True)
  written = {}
  for fname, n in files.items():
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, num_classes, n)]
    batch = {
      b"batch_label": fname.encode(),
      b"data": np.stack([chw_row(im) for im in images]),
      b"filenames": [b"img%d.png" % i for i in range(n)],
    }
    if name == "cifar10":
      batch[b"labels"] = labels
    else:
      batch[b"fine_labels"], batch[b"coarse_labels"] = labels, [v // 5 for v in labels]
    with open(folder / fname, "wb") as f:
      pickle.dump(batch, f, protocol=2)
    written[fname] = images, np.array(labels, np.int32)
  with open(folder / meta[0], "wb") as f:
    pickle.dump(meta[1], f, protocol=2)
  return folder, written


def write_tfds(data_dir, dataset_name, features, splits, version="1.0.0"):
  """Prepares a TFDS dataset `name` in the array_record format, without TensorFlow.

  Images go in as PIL images (numpy arrays would need TF to encode). The builder is not registered,
  so it never shadows TFDS's own `cifar10`/`imagenet2012`; it only decides the folder the files land
  in, <data_dir>/<name>/<version>, which is where the loader looks.
  """
  import tensorflow_datasets as tfds

  class FakeBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    name = dataset_name
    VERSION = tfds.core.Version(version)

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def _split_generators(self, dl_manager):
      return {split: self._generate_examples(examples) for split, examples in splits.items()}

    def _generate_examples(self, examples):
      yield from enumerate(examples)

  builder = FakeBuilder(data_dir=str(data_dir), file_format="array_record")
  builder.download_and_prepare()
  return builder.data_path


def cifar_tfds_features(num_classes=10):
  import tensorflow_datasets as tfds

  return {
    "id": tfds.features.Text(),
    "image": tfds.features.Image(shape=(32, 32, 3)),
    "label": tfds.features.ClassLabel(num_classes=num_classes),
  }


def cifar_examples(n, seed, num_classes=10):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, num_classes, n)
  examples = [
    {"id": f"x{i}", "image": Image.fromarray(im), "label": int(y)}
    for i, (im, y) in enumerate(zip(images, labels))
  ]
  return examples, {im.tobytes(): int(y) for im, y in zip(images, labels)}


PALETTE = np.array(
  [[200, 30, 30], [30, 200, 30], [30, 30, 200], [220, 220, 40], [40, 200, 220]], np.uint8
)


def write_fake_imagenet(data_dir):
  """imagenet2012 with solid-colour JPEGs of assorted sizes; the colour encodes the label."""
  import tensorflow_datasets as tfds

  sizes = [(260, 300), (80, 64), (224, 224), (300, 120), (90, 400)]  # (height, width)

  def examples(offset):
    return [
      {
        "image": Image.fromarray(np.broadcast_to(PALETTE[k], (h, w, 3)).copy()),
        "label": k,
        "file_name": f"n{k}_{offset}.JPEG",
      }
      for k, (h, w) in enumerate(sizes)
    ]

  features = {
    "image": tfds.features.Image(encoding_format="jpeg"),
    "label": tfds.features.ClassLabel(num_classes=5),
    "file_name": tfds.features.Text(),
  }
  return write_tfds(
    data_dir,
    "imagenet2012",
    features,
    {"train": examples(0) + examples(1), "validation": examples(2)},
    version="5.1.0",
  )


def label_of_colour(images):
  """The label whose palette colour is nearest to each image's mean colour (JPEG is lossy)."""
  colours = images.reshape(len(images), -1, 3).mean(1)
  return np.argmin(((colours[:, None] - PALETTE[None].astype(float)) ** 2).sum(-1), axis=1)


# ---- digits --------------------------------------------------------------------------------------


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


# ---- CIFAR: python pickles -----------------------------------------------------------------------


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


# ---- CIFAR: TFDS array_record --------------------------------------------------------------------


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


# ---- CIFAR: errors -------------------------------------------------------------------------------


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


def test_unknown_dataset():
  with pytest.raises(DataError, match="Unknown dataset 'mnist'") as e:
    data.load_dataset("mnist")
  assert all(k in str(e.value) for k in ("'digits'", "'cifar10'", "'cifar100'", "'synthetic'"))


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


# ---- ImageNet ------------------------------------------------------------------------------------


def test_crops_on_png_and_jpeg():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
  png = io.BytesIO()
  Image.fromarray(image).save(png, format="PNG")
  out = data.center_crop(png.getvalue(), 16, resize_size=16)  # crop 37x37 centre, resize to 16
  assert out.shape == (16, 16, 3) and out.dtype == np.uint8
  np.testing.assert_array_equal(data.center_crop(image, 37, resize_size=37), image[:, 8:45])
  for _ in range(50):
    top, left, h, w = data.inception_crop_box(37, 53, rng)
    assert 0 <= top and top + h <= 37 and 0 <= left and left + w <= 53
    assert 3 / 4 - 0.1 <= w / h <= 4 / 3 + 0.1 or (h, w) == (37, 49)
  gray = io.BytesIO()
  Image.fromarray(image[..., 0]).save(gray, format="JPEG")
  assert data.random_resized_crop(gray.getvalue(), rng, 24).shape == (24, 24, 3)


def test_imagenet_loader(tmp_path):
  path = write_fake_imagenet(tmp_path)
  info = data.imagenet_info(tmp_path)
  assert info.num_examples == {"train": 10, "validation": 5} and info.num_classes == 5
  assert info.num_train == 10 and len(info.mean) == 3

  import tensorflow_datasets as tfds

  order = [
    int(e["label"]) for e in tfds.builder_from_directory(str(path)).as_data_source("validation")
  ]
  loader = data.imagenet_loader(tmp_path, "validation", 4, train=False)
  batches = list(loader)
  assert len(loader) == len(batches) == 2
  for b in batches:
    assert b["image"].shape == (4, 224, 224, 3) and b["image"].dtype == np.uint8
    assert b["label"].dtype == np.int32 and b["mask"].dtype == np.float32
  images, labels, mask = (
    np.concatenate([b[k] for b in batches]) for k in ("image", "label", "mask")
  )
  np.testing.assert_array_equal(mask, [1, 1, 1, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(labels[:5], order)
  np.testing.assert_array_equal(label_of_colour(images[:5]), order)
  assert not images[5:].any()

  # Two hosts: shards of 3 and 2 examples, the same number of batches each, every example once.
  hosts = [
    list(data.imagenet_loader(tmp_path, "validation", 4, train=False, shard_index=i, shard_count=2))
    for i in range(2)
  ]
  assert [len(h) for h in hosts] == [2, 2]
  assert [sum(b["mask"].sum() for b in h) for h in hosts] == [3, 2]
  seen = sorted(int(l) for h in hosts for b in h for l, m in zip(b["label"], b["mask"]) if m)
  assert seen == sorted(order)

  train = data.imagenet_loader(tmp_path, "train", 4, train=True, seed=1)
  it = iter(train)
  first = [next(it) for _ in range(5)]  # 2 epochs of 10 examples = 5 batches; the stream goes on
  for b in first:
    assert b["image"].shape == (4, 224, 224, 3) and b["image"].dtype == np.uint8
    assert b["label"].dtype == np.int32 and set(b) == {"image", "label"}
    np.testing.assert_array_equal(label_of_colour(b["image"]), b["label"])
  epoch = np.sort(np.concatenate([b["label"] for b in first[:2]] + [first[2]["label"][:2]]))
  np.testing.assert_array_equal(epoch, np.repeat(np.arange(5), 2))
  again = next(iter(data.imagenet_loader(tmp_path, "train", 4, train=True, seed=1)))
  np.testing.assert_array_equal(again["image"], first[0]["image"])
  # Host 1 of 2 reads records 5..9 of the split, epoch after epoch (3 epochs = 15 examples).
  train_order = [
    int(e["label"]) for e in tfds.builder_from_directory(str(path)).as_data_source("train")
  ]
  assert sorted(train_order[:5]) != sorted(train_order[5:])  # else the check below proves nothing
  host1 = iter(data.imagenet_loader(tmp_path, "train", 4, train=True, shard_index=1, shard_count=2))
  batches = [next(host1) for _ in range(8)]
  assert batches[0]["image"].shape == (2, 224, 224, 3)
  labels = np.concatenate([b["label"] for b in batches])[:15]
  for epoch in labels.reshape(3, 5):
    assert sorted(epoch) == sorted(train_order[5:])


def test_imagenet_errors(tmp_path):
  with pytest.raises(DataError, match="No prepared TFDS dataset 'imagenet2012'") as e:
    data.imagenet_loader(tmp_path, "train", 8, train=True)
  msg = str(e.value)
  assert (
    "ILSVRC2012_img_train.tar" in msg
    and "downloads/manual" in msg
    and "tfds build imagenet2012" in msg
  )
  with pytest.raises(DataError, match="is not a folder"):
    data.imagenet_info(tmp_path / "nope")
  write_fake_imagenet(tmp_path)
  with pytest.raises(DataError, match="no split 'test'"):
    data.imagenet_loader(tmp_path, "test", 8, train=False)
  next((tmp_path / "imagenet2012" / "5.1.0").glob("*-validation.array_record*")).unlink()
  with pytest.raises(DataError, match="incomplete: split 'validation' lacks 1 file"):
    data.imagenet_loader(tmp_path, "validation", 8, train=False)
  with pytest.raises(DataError, match="not divisible"):
    data.imagenet_loader(tmp_path, "train", 9, train=True, shard_count=2)
