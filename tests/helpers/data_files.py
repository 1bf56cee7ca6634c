"""Tiny datasets in the real on-disk formats (no network, no TF): CIFAR's python pickles, datasets
prepared by TFDS in the array_record format, and a fake imagenet2012."""

import pickle

import numpy as np
from PIL import Image


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
