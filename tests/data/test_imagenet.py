"""'imagenet2012' (cnn_depth/data/imagenet.py) on a tiny fake TFDS dataset of solid-colour JPEGs:
the crops, the streamed loader (batches, padding, shards over hosts, epochs), one sentence per
problem; and the training loop's ImageNet path through it (grain over TFDS imagenet2012: train.py's
streamed dataset, here with the fake dataset it needs)."""

import io
import os

import jax
import numpy as np
import pytest
from helpers.data_files import label_of_colour, write_fake_imagenet
from helpers.runner import ROOT
from PIL import Image

from cnn_depth import config as config_lib
from cnn_depth import data, train
from cnn_depth import workdir as workdir_lib
from cnn_depth.data import DataError

# ---- the loader ----------------------------------------------------------------------------------


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


# ---- the training loop on it ---------------------------------------------------------------------


def imagenet_config(arg):
  return config_lib.load_config_file(os.path.join(ROOT, "configs", f"imagenet_resnet.py:{arg}"))


@pytest.mark.slow
def test_imagenet_config_trains_two_steps_on_fake_data(tmp_path):
  write_fake_imagenet(tmp_path / "tfds")
  config = imagenet_config("depth=18")
  config.dataset.data_dir = str(tmp_path / "tfds")
  config.model.width = 4
  config.model.dtype = "float32"
  config.batch_size = 8
  config.num_epochs = -1.0
  config.num_train_steps = 2
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
  final = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert final["steps"] == 2 and 0.0 <= final["test_error"] <= 1.0
  assert workdir_lib.read_status(str(tmp_path / "run"))["status"] == "done"
  [record] = [r for r in workdir_lib.read_metrics(str(tmp_path / "run")) if "test_error" in r]
  assert record["step"] == 2 and len(record["block_grad_norms"]) == 8


def test_imagenet_without_data_is_one_clear_error(tmp_path):
  config = imagenet_config("depth=18")
  config.dataset.data_dir = str(tmp_path / "nothing")
  with pytest.raises(ValueError, match="imagenet2012"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert jax.device_count() == 8
