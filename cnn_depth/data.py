"""Datasets of the depth studies: numpy in, numpy out, no device code.

* CIFAR-sized data (`load_dataset`) is read whole into RAM as uint8 arrays, an `InMemoryDataset`; the
  training loop puts it on the accelerator and augments there (He et al. 2016, §4.2: pad 4, random 32x32
  crop, horizontal flip). At 50k images a host-side pipeline would be the bottleneck (1-3k img/s through
  grain + PIL against 10-70k img/s for a ResNet step on a GPU).
  - 'digits': scikit-learn's 1,797 8x8 digits, shipped inside its wheel: the default, no download.
  - 'cifar10' / 'cifar100': from `data_dir`, either the original python pickles (`cifar-10-batches-py`,
    `cifar-100-python`; preferred when both are present) or a dataset prepared by TFDS in the
    array_record format (read without TensorFlow through `tfds.builder_from_directory`).
* ImageNet (`imagenet_loader`) is streamed with grain from a TFDS-prepared `imagenet2012`: the Inception
  random-resized crop + flip for training, resize-256 / center-crop-224 for evaluation, sharded across
  hosts.

Every problem with the data on disk raises one `DataError` whose message says what is missing and how to
get it. tensorflow_datasets, grain, PIL and scikit-learn are imported only by the code paths that read
through them, so a synthetic benchmark needs none of them.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import os
import pickle
import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

KNOWN_DATASETS = ("digits", "cifar10", "cifar100", "synthetic")

# 'synthetic': random CIFAR-10-shaped pixels and labels, for timing the training loop where no dataset
# is at hand (benchmarks, a GPU without CIFAR-10). Nothing can be learnt from it: errors stay at chance.
SYNTHETIC_SIZES = (50_000, 10_000)

# Per-channel statistics of the ImageNet training set on the 0..255 scale (the usual torchvision /
# flax example values).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class DataError(ValueError):
  """The data is missing, incomplete, corrupt or of the wrong kind; the message says what to do."""


# ----------------------------------------------------------------------------------------------------
# In-memory datasets.


@dataclasses.dataclass(frozen=True, eq=False)
class InMemoryDataset:
  """A whole small dataset as uint8 images (N, H, W, C) and int32 labels, plus what training needs.

  `test_*` holds the validation split when one was requested (`name` then ends in ':val<size>').
  `mean`/`std` are per-channel statistics of `train_images` on the 0..255 scale. `crop_padding` and
  `flip` describe the standard augmentation: pad by `crop_padding` pixels, take a random crop of the
  original size, and flip horizontally if `flip`.
  """

  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  crop_padding: int
  flip: bool

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])

  @property
  def num_train(self) -> int:
    return len(self.train_labels)

  @property
  def num_test(self) -> int:
    return len(self.test_labels)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, validation_size: int = 0,
                 seed: int = 0) -> InMemoryDataset:
  """Reads dataset `name` ('digits', 'cifar10', 'cifar100' or 'synthetic') into memory.

  Args:
    name: which dataset. 'digits' needs no files; the CIFARs are read from `data_dir`; 'synthetic' is
      random uint8 pixels and labels in CIFAR-10's shapes (50k/10k, 32x32x3), for timing only.
    data_dir: for the CIFARs, a folder holding `cifar-10-batches-py` / `cifar-100-python` (or that
      folder itself), or a TFDS data_dir with a prepared `cifar10` / `cifar100` (array_record format).
    validation_size: if > 0, the last `validation_size` examples of a seeded permutation of the training
      set become the test arrays (He et al. 2016 §4.2 used 45k/5k) and `name` gets ':val<size>'.
    seed: fixes the digits train/test split and the validation permutation.
  """
  match name:
    case "digits":
      train_x, train_y, test_x, test_y = _read_digits(seed)
      num_classes, crop_padding, flip = 10, 1, False
    case "cifar10" | "cifar100":
      spec = _CIFAR_SPECS[name]
      train_x, train_y, test_x, test_y = _read_cifar(spec, data_dir)
      num_classes, crop_padding, flip = spec.num_classes, 4, True
    case "synthetic":
      rng = np.random.default_rng(seed)
      train_x, test_x = (rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8) for n in SYNTHETIC_SIZES)
      train_y, test_y = (rng.integers(0, 10, n, dtype=np.int32) for n in SYNTHETIC_SIZES)
      num_classes, crop_padding, flip = 10, 4, True
    case _:
      raise DataError(
          f"Unknown dataset {name!r}. Known: 'digits' (embedded in scikit-learn, no download), "
          "'cifar10' and 'cifar100' (read from data_dir), 'synthetic' (random CIFAR-shaped data, for "
          "timing). ImageNet is streamed: use imagenet_loader().")
  if validation_size:
    n = len(train_y)
    if not 0 < validation_size < n:
      raise DataError(f"validation_size={validation_size} must be between 1 and {n - 1}: the "
                      f"{name} training set has {n} examples")
    perm = np.random.default_rng(seed).permutation(n)
    keep, held_out = np.sort(perm[:-validation_size]), np.sort(perm[-validation_size:])
    test_x, test_y = train_x[held_out], train_y[held_out]
    train_x, train_y = train_x[keep], train_y[keep]
    name = f"{name}:val{validation_size}"
  mean, std = channel_stats(train_x)
  return InMemoryDataset(
      name=name, train_images=train_x, train_labels=train_y, test_images=test_x, test_labels=test_y,
      num_classes=num_classes, mean=mean, std=std, crop_padding=crop_padding, flip=flip)


def channel_stats(images: np.ndarray, chunk: int = 1024) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel mean and (population) std of uint8 images (N, H, W, C), on the 0..255 scale.

  Exact integer sums of x and x^2 over chunks of images: no 1.2 GB float64 copy of 50k CIFAR images.
  """
  c = images.shape[-1]
  total, total_sq, count = np.zeros(c, np.int64), np.zeros(c, np.int64), 0
  for start in range(0, len(images), chunk):
    x = images[start:start + chunk].reshape(-1, c)
    total += x.sum(0, dtype=np.int64)
    wide = x.astype(np.uint16)
    total_sq += (wide * wide).sum(0, dtype=np.int64)
    count += len(x)
  if not count:
    raise DataError("cannot compute channel statistics of an empty training set")
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
  return tuple(float(m) for m in mean), tuple(float(s) for s in std)


# ---- digits ----------------------------------------------------------------------------------------

DIGITS_TEST_SIZE = 297  # of 1,797: about 30 per class, leaving a round 1,500 for training


def _read_digits(seed: int):
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise DataError("The 'digits' dataset ships with scikit-learn: `pip install scikit-learn` "
                    "(or the package's `data` extra).") from e
  digits = load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # 0..16 -> 0..255
  labels = digits.target.astype(np.int32)
  test = stratified_holdout(labels, DIGITS_TEST_SIZE, seed)
  return images[~test], labels[~test], images[test], labels[test]


def stratified_holdout(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
  """A boolean mask selecting `size` examples, each class in proportion to its frequency.

  Per-class quotas by largest remainder (ties to the lower class); within each class, the first of a
  `np.random.default_rng(seed)` permutation (classes in increasing order, one generator).
  """
  classes, counts = np.unique(labels, return_counts=True)
  quota = counts * size / len(labels)
  take = np.floor(quota).astype(int)
  order = np.argsort(-(quota - take), kind="stable")
  take[order[:size - take.sum()]] += 1
  rng = np.random.default_rng(seed)
  mask = np.zeros(len(labels), bool)
  for c, k in zip(classes, take):
    mask[rng.permutation(np.flatnonzero(labels == c))[:k]] = True
  return mask


# ---- CIFAR -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _CifarSpec:
  name: str            # our name and the TFDS name
  title: str           # for messages
  folder: str          # what the python tarball extracts to
  tarball: str
  binary_folder: str   # the other release, which this loader does not read
  train_files: tuple[str, ...]
  test_file: str
  label_key: bytes
  num_classes: int

  def how_to_get(self, data_dir) -> str:
    return (f"expected a '{self.folder}' folder (download {self.tarball} from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html and extract it there: "
            f"`tar xzf {self.tarball} -C {data_dir}`) or a TFDS-prepared '{self.name}' dataset (run "
            f"`tfds build {self.name} --data_dir={data_dir} --file_format=array_record` on a machine with "
            "internet and TensorFlow, then copy the folder)")


_CIFAR_SPECS = {
    "cifar10": _CifarSpec("cifar10", "CIFAR-10", "cifar-10-batches-py", "cifar-10-python.tar.gz",
                          "cifar-10-batches-bin", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
                          b"labels", 10),
    "cifar100": _CifarSpec("cifar100", "CIFAR-100", "cifar-100-python", "cifar-100-python.tar.gz",
                           "cifar-100-binary", ("train",), "test", b"fine_labels", 100),
}
# Files by which a folder is recognised as the python release of each dataset.
_CIFAR_MARKERS = {"cifar10": ("data_batch_1", "batches.meta"), "cifar100": ("train", "test", "meta")}


def _read_cifar(spec: _CifarSpec, data_dir):
  if data_dir is None:
    raise DataError(f"{spec.title} needs data_dir: {spec.how_to_get('<data_dir>')}")
  root = Path(data_dir).expanduser()
  if not root.exists():
    raise DataError(f"No {spec.title} data: {root} does not exist; {spec.how_to_get(root)}")
  if not root.is_dir():
    raise DataError(f"No {spec.title} data: {root} is not a folder; {spec.how_to_get(root)}")

  if (root / spec.folder).is_dir():
    return _read_cifar_pickles(spec, root / spec.folder)
  if any((root / f).is_file() for f in (*spec.train_files, spec.test_file)):  # data_dir is the folder
    return _read_cifar_pickles(spec, root)
  if (root / spec.name).is_dir():
    splits = _read_tfds_images(spec, root)
    return (*splits["train"], *splits["test"])
  raise DataError(_describe_missing_cifar(spec, root))


def _looks_like_other_cifar(spec: _CifarSpec, folder: Path) -> bool:
  other = "cifar100" if spec.name == "cifar10" else "cifar10"
  return all((folder / f).is_file() for f in _CIFAR_MARKERS[other])


def _describe_missing_cifar(spec: _CifarSpec, root: Path) -> str:
  """Why no data of `spec` was found under `root`, in one message."""
  other = _CIFAR_SPECS["cifar100" if spec.name == "cifar10" else "cifar10"]
  if (root / other.folder).is_dir() or _looks_like_other_cifar(spec, root) or (root / other.name).is_dir():
    return (f"{root} holds {other.title} data, but {spec.name!r} was asked for: pass "
            f"load_dataset({other.name!r}, ...) or point data_dir at {spec.title} data; "
            f"{spec.how_to_get(root)}")
  if (root / spec.tarball).is_file():
    return (f"No {spec.title} data under {root}: found {spec.tarball} but not its extracted "
            f"'{spec.folder}' folder; run `tar xzf {root / spec.tarball} -C {root}`")
  if (root / spec.binary_folder).is_dir():
    return (f"No {spec.title} data under {root}: found the binary version '{spec.binary_folder}', but "
            f"this loader reads the python version; {spec.how_to_get(root)}")
  entries = sorted(p.name for p in root.iterdir())
  found = ("the folder is empty" if not entries else
           "it holds " + ", ".join(repr(e) for e in entries[:8]) + (", ..." if len(entries) > 8 else ""))
  return f"No {spec.title} data under {root} ({found}): {spec.how_to_get(root)}"


def _read_cifar_pickles(spec: _CifarSpec, folder: Path):
  """Reads the original python-pickle release: rows of 3072 bytes, channel-major (R, G, B planes)."""
  missing = [f for f in (*spec.train_files, spec.test_file) if not (folder / f).is_file()]
  if missing:
    raise DataError(f"{spec.title} folder {folder} is incomplete: missing {', '.join(missing)}. "
                    f"Extract {spec.tarball} (https://www.cs.toronto.edu/~kriz/cifar.html) again.")
  train = [_read_cifar_batch(spec, folder / f) for f in spec.train_files]
  test_x, test_y = _read_cifar_batch(spec, folder / spec.test_file)
  train_x = np.concatenate([x for x, _ in train]) if len(train) > 1 else train[0][0]
  train_y = np.concatenate([y for _, y in train]) if len(train) > 1 else train[0][1]
  return train_x, train_y, test_x, test_y


def _read_cifar_batch(spec: _CifarSpec, path: Path) -> tuple[np.ndarray, np.ndarray]:
  def corrupt(why: str) -> DataError:
    return DataError(f"{spec.title} file {path} is corrupt or truncated ({why}). Download {spec.tarball} "
                     "from https://www.cs.toronto.edu/~kriz/cifar.html and extract it again.")

  try:
    with open(path, "rb") as f:
      # The release was pickled by Python 2: 'bytes' keeps its byte-string keys and numpy payloads intact.
      # Pickles can run code: read only files from the official release.
      batch = pickle.load(f, encoding="bytes")
  except Exception as e:  # EOFError, UnpicklingError, ValueError, ... depending on where it breaks
    raise corrupt(f"{type(e).__name__}: {e}") from e
  if not isinstance(batch, dict):
    raise corrupt(f"expected a dict, got {type(batch).__name__}")
  batch = {k.encode() if isinstance(k, str) else k: v for k, v in batch.items()}
  if spec.label_key not in batch:
    hint = ""
    if b"fine_labels" in batch:
      hint = " (this is CIFAR-100 data: its labels are b'fine_labels')"
    elif b"labels" in batch:
      hint = " (this is CIFAR-10 data: its labels are b'labels')"
    raise DataError(f"{path} has no {spec.label_key!r} for {spec.title}{hint}; keys: "
                    f"{sorted(batch)}. {spec.how_to_get(path.parent)}")
  if b"data" not in batch:
    raise corrupt("no b'data' entry")
  data = np.asarray(batch[b"data"])
  labels = np.asarray(batch[spec.label_key])
  if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
    raise corrupt(f"b'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
  if labels.shape != (len(data),):
    raise corrupt(f"{len(labels)} labels for {len(data)} images")
  if len(labels) and not (0 <= labels.min() and labels.max() < spec.num_classes):
    raise corrupt(f"labels outside 0..{spec.num_classes - 1}")
  images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
  return images, labels.astype(np.int32)


# ---- TFDS (array_record, no TensorFlow) ------------------------------------------------------------

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def _import_tfds():
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise DataError("Reading TFDS-prepared data needs tensorflow-datasets (not TensorFlow): "
                    "`pip install tensorflow-datasets importlib_resources` or the package's `data` "
                    "extra") from e
  return tfds


def _tfds_builder(name: str, data_dir: Path, how_to_get: str):
  """A read-only TFDS builder for the newest prepared version of `name` under `data_dir`.

  Goes straight to the files (`<data_dir>/<name>[/<config>]/<version>/dataset_info.json`), so any
  prepared version reads, nothing is downloaded, and no builder code (nor TensorFlow) is involved.
  """
  root = data_dir / name
  versions = [p.parent for p in (*root.glob("*/dataset_info.json"), *root.glob("*/*/dataset_info.json"))
              if _VERSION_RE.match(p.parent.name)]
  if not versions:
    raise DataError(f"No prepared TFDS dataset '{name}' under {data_dir} (no {root}/<version>/"
                    "dataset_info.json; an interrupted build leaves only 'incomplete.*' folders): "
                    f"{how_to_get}")
  path = max(versions, key=lambda p: tuple(int(v) for v in _VERSION_RE.match(p.name).groups()))
  tfds = _import_tfds()
  try:
    builder = tfds.builder_from_directory(str(path))
  except Exception as e:
    raise DataError(f"Cannot read the TFDS dataset at {path} ({type(e).__name__}: {e}); prepare it "
                    f"again: {how_to_get}") from e
  file_format = getattr(builder.info, "file_format", None)
  file_format = str(getattr(file_format, "value", file_format) or "").lower()
  if "array_record" not in file_format and "parquet" not in file_format:
    raise DataError(f"The TFDS dataset at {path} is stored as {file_format or 'tfrecord'}, which only "
                    f"TensorFlow reads. Prepare it again with `--file_format=array_record`: {how_to_get}")
  return builder


def _tfds_source(builder, split: str, how_to_get: str, skip_image_decoding: bool = True):
  tfds = _import_tfds()
  available = sorted(builder.info.splits.keys())
  if split not in available:
    raise DataError(f"The TFDS dataset at {builder.data_dir} has no split {split!r} (it has "
                    f"{', '.join(available) or 'none'}); {how_to_get}")
  decoders = {"image": tfds.decode.SkipDecoding()} if skip_image_decoding else None
  try:
    missing = [os.fspath(p) for p in builder.info.splits[split].filepaths if not os.path.exists(p)]
  except Exception:  # an older TFDS without `filepaths`: reading will tell
    missing = []
  if missing:
    raise DataError(f"The TFDS dataset at {builder.data_dir} is incomplete: split {split!r} lacks "
                    f"{len(missing)} file(s), e.g. {missing[0]}; copy or prepare it again: {how_to_get}")
  try:
    return builder.as_data_source(split=split, decoders=decoders)
  except Exception as e:
    raise DataError(f"Cannot open split {split!r} of the TFDS dataset at {builder.data_dir} "
                    f"({type(e).__name__}: {e}); copy or prepare it again: {how_to_get}") from e


def _read_tfds_images(spec: _CifarSpec, data_dir: Path, chunk: int = 8192):
  """Decodes the 'train' and 'test' splits of a prepared TFDS CIFAR into uint8 arrays.

  Images come as PNG bytes (`SkipDecoding`) and are decoded by PIL straight into one preallocated array,
  ~30% faster than letting TFDS decode; about 4-6 s for CIFAR's 50k training images on one core.
  """
  from PIL import Image

  how_to_get = spec.how_to_get(data_dir)
  builder = _tfds_builder(spec.name, data_dir, how_to_get)
  features = builder.info.features
  if "image" not in features or "label" not in features:
    raise DataError(f"The TFDS dataset at {builder.data_dir} has features {sorted(features.keys())}, "
                    f"not 'image' and 'label'; {how_to_get}")
  num_classes = features["label"].num_classes
  if num_classes != spec.num_classes:
    raise DataError(f"The TFDS dataset at {builder.data_dir} has {num_classes} classes, not "
                    f"{spec.num_classes} as {spec.title} has; {how_to_get}")
  out = {}
  for split in ("train", "test"):
    source = _tfds_source(builder, split, how_to_get)
    n = len(source)
    images = np.empty((n, 32, 32, 3), np.uint8)
    labels = np.empty((n,), np.int32)
    try:
      for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        examples = (source.__getitems__(range(start, stop)) if hasattr(source, "__getitems__")
                    else [source[i] for i in range(start, stop)])
        for i, example in enumerate(examples, start):
          image = example["image"]
          if not isinstance(image, np.ndarray):
            pil = Image.open(io.BytesIO(image))
            image = np.asarray(pil if pil.mode == "RGB" else pil.convert("RGB"))
          images[i] = image
          labels[i] = example["label"]
    except Exception as e:
      raise DataError(f"Cannot read split {split!r} of the TFDS dataset at {builder.data_dir} "
                      f"({type(e).__name__}: {e}); copy or prepare it again: {how_to_get}") from e
    out[split] = images, labels
  return out


# ----------------------------------------------------------------------------------------------------
# ImageNet, streamed with grain.

IMAGENET_NAME = "imagenet2012"


def _imagenet_how_to_get(data_dir) -> str:
  return ("ImageNet must be prepared once with TFDS on a machine with TensorFlow: register at "
          "https://image-net.org/download-images, download ILSVRC2012_img_train.tar and "
          f"ILSVRC2012_img_val.tar into {data_dir}/downloads/manual/, run `tfds build {IMAGENET_NAME} "
          f"--data_dir={data_dir} --file_format=array_record` (needs `pip install tensorflow "
          "tensorflow-datasets`; hours and ~300 GB of disk), then copy "
          f"{data_dir}/{IMAGENET_NAME} to this machine's data_dir")


def _imagenet_builder(data_dir):
  if data_dir is None:
    raise DataError(f"ImageNet needs data_dir. {_imagenet_how_to_get('<data_dir>')}")
  root = Path(data_dir).expanduser()
  if not root.is_dir():
    raise DataError(f"No ImageNet data: {root} is not a folder. {_imagenet_how_to_get(root)}")
  return _tfds_builder(IMAGENET_NAME, root, _imagenet_how_to_get(root)), _imagenet_how_to_get(root)


@dataclasses.dataclass(frozen=True)
class ImageNetInfo:
  num_examples: dict[str, int]   # per prepared split: 'train', 'validation' (, 'test': labels -1)
  num_classes: int
  mean: tuple[float, ...] = IMAGENET_MEAN
  std: tuple[float, ...] = IMAGENET_STD

  @property
  def num_train(self) -> int:
    return self.num_examples.get("train", 0)


def imagenet_info(data_dir: str | os.PathLike) -> ImageNetInfo:
  """Split sizes and number of classes of the prepared `imagenet2012` under `data_dir`."""
  builder, _ = _imagenet_builder(data_dir)
  return ImageNetInfo(
      num_examples={k: int(v.num_examples) for k, v in builder.info.splits.items()},
      num_classes=int(builder.info.features["label"].num_classes))


def _decode_image(image):
  """JPEG/PNG bytes (or an already decoded array) -> an RGB PIL image."""
  from PIL import Image

  if isinstance(image, np.ndarray):
    return Image.fromarray(image)
  pil = Image.open(io.BytesIO(image))
  return pil if pil.mode == "RGB" else pil.convert("RGB")


def inception_crop_box(height: int, width: int, rng: np.random.Generator,
                       scale: tuple[float, float] = (0.08, 1.0),
                       ratio: tuple[float, float] = (3 / 4, 4 / 3),
                       attempts: int = 10) -> tuple[int, int, int, int]:
  """(top, left, crop_height, crop_width) of an Inception-style random crop (Szegedy et al. 2015).

  Area uniform in `scale` of the image, aspect ratio log-uniform in `ratio`; after `attempts` misses,
  the largest center crop within `ratio` (torchvision's RandomResizedCrop).
  """
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(attempts):
    target = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
  aspect = width / height
  if aspect < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif aspect > ratio[1]:
    h, w = height, int(round(height * ratio[1]))
  else:
    h, w = height, width
  return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(image, rng: np.random.Generator, size: int = 224, flip: bool = True) -> np.ndarray:
  """Training view: Inception crop resized to size x size (bilinear), flipped with probability 1/2."""
  from PIL import Image

  pil = _decode_image(image)
  top, left, h, w = inception_crop_box(pil.height, pil.width, rng)
  pil = pil.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
  if flip and rng.random() < 0.5:
    pil = pil.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  return np.asarray(pil, np.uint8)


def center_crop(image, size: int = 224, resize_size: int = 256) -> np.ndarray:
  """Evaluation view: the shorter side resized to `resize_size`, then the central size x size.

  Done as one resize of the matching central box of the original image (the same pixels up to
  resampling, and much cheaper than resizing the whole image first).
  """
  from PIL import Image

  pil = _decode_image(image)
  side = min(pil.width, pil.height) * size / resize_size
  left, top = (pil.width - side) / 2, (pil.height - side) / 2
  pil = pil.resize((size, size), Image.BILINEAR, box=(left, top, left + side, top + side))
  return np.asarray(pil, np.uint8)


def _train_example(example, rng, image_size):
  return {"image": random_resized_crop(example["image"], rng, image_size),
          "label": np.int32(example["label"])}


def _eval_example(example, image_size):
  return {"image": center_crop(example["image"], image_size, resize_size=round(image_size * 256 / 224)),
          "label": np.int32(example["label"]), "mask": np.float32(1.0)}


def _shard_bounds(num_records: int, shard) -> tuple[int, int]:
  """[start, stop) of `shard` (a grain ShardOptions) over `num_records`, as grain's even split does:
  with drop_remainder every shard gets num_records // count; without, the first shards take one more."""
  size, rest = divmod(num_records, shard.shard_count)
  if shard.drop_remainder:
    return shard.shard_index * size, (shard.shard_index + 1) * size
  start = shard.shard_index * size + min(shard.shard_index, rest)
  return start, start + size + (shard.shard_index < rest)


@dataclasses.dataclass(frozen=True)
class _ShardSource:
  """Records [start, stop) of a random-access source as a source of its own, indices taken modulo its
  length (grain's repeat relies on that). Plain and picklable, for grain's worker processes."""
  source: object
  start: int
  stop: int

  def __len__(self) -> int:
    return self.stop - self.start

  def __getitem__(self, index: int):
    return self.source[self.start + index % (self.stop - self.start)]


class PaddedBatches:
  """Evaluation batches of a fixed size and count, each with a 'mask' (1 real example, 0 padding).

  Every host yields the same number of batches (`len`), enough for the largest shard, so a multi-host
  eval loop never waits on a host that ran out; the last real batch is completed with zero images.
  """

  def __init__(self, batches: Iterable[dict], batch_size: int, num_batches: int, image_size: int):
    self._batches, self.batch_size, self._num_batches = batches, batch_size, num_batches
    self._image_size = image_size

  def __len__(self) -> int:
    return self._num_batches

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    count = 0
    for batch in self._batches:
      n = len(batch["label"])
      if n < self.batch_size:
        batch = {k: np.concatenate([v, np.zeros((self.batch_size - n, *v.shape[1:]), v.dtype)])
                 for k, v in batch.items()}
      count += 1
      yield batch
    for _ in range(count, self._num_batches):
      size = self._image_size
      yield {"image": np.zeros((self.batch_size, size, size, 3), np.uint8),
             "label": np.zeros((self.batch_size,), np.int32),
             "mask": np.zeros((self.batch_size,), np.float32)}


def imagenet_loader(data_dir: str | os.PathLike, split: str, global_batch_size: int, *, train: bool,
                    seed: int = 0, shard_index: int = 0, shard_count: int = 1,
                    num_epochs: int | None = None, image_size: int = 224, worker_count: int = 0,
                    num_threads: int = 16) -> Iterable[dict[str, np.ndarray]]:
  """Batches of a TFDS-prepared `imagenet2012` split, built with grain, for one host.

  Each host reads its own contiguous shard (`shard_index` of `shard_count`, grain's ShardOptions;
  usually jax.process_index() / jax.process_count()) and yields host-local batches of
  global_batch_size // shard_count:
    {'image': uint8 (B, image_size, image_size, 3), 'label': int32 (B,)}.

  train=True: shuffled (a new order each epoch), Inception random-resized crop (scale 0.08-1, aspect
  3/4-4/3) + random horizontal flip; repeats `num_epochs` times (None: forever); every host drops the
  remainder of its shard and of its last batch so all hosts take the same number of steps. Returns a
  grain IterDataset: `iter()` gives a checkpointable iterator (`get_state` / `set_state`).
  train=False: one pass in order, shorter side to 256 * image_size / 224, central crop; batches carry a
  'mask' (float32) and are padded to full size, and every host yields `len(loader)` batches.

  Decoding runs in `num_threads` threads (PIL releases the GIL), or in `worker_count` grain worker
  processes (those need the program's main module guarded by `if __name__ == '__main__'`).
  """
  import grain

  if global_batch_size % shard_count:
    raise DataError(f"global_batch_size={global_batch_size} is not divisible by shard_count={shard_count}")
  batch_size = global_batch_size // shard_count
  shard = grain.sharding.ShardOptions(shard_index, shard_count, drop_remainder=train)
  builder, how_to_get = _imagenet_builder(data_dir)
  source = _tfds_source(builder, split, how_to_get)
  start, stop = _shard_bounds(len(source), shard)
  if stop == start:
    raise DataError(f"split {split!r} ({len(source)} examples) leaves shard {shard_index} of {shard_count} "
                    "empty")
  ds = grain.MapDataset.source(_ShardSource(source, start, stop))
  read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(2 * batch_size, 64))
  if train:
    if stop - start < batch_size:
      raise DataError(f"split {split!r} has {stop - start} examples per host, fewer than one batch of "
                      f"{batch_size}")
    # Distinct augmentation streams per host; the shuffle is per shard already.
    aug_seed = int(np.random.SeedSequence([seed, shard_index]).generate_state(1)[0])
    ds = (ds.shuffle(seed=seed).repeat(num_epochs)
          .random_map(functools.partial(_train_example, image_size=image_size), seed=aug_seed))
    ds = ds.to_iter_dataset(read_options).batch(batch_size, drop_remainder=True)
  else:
    ds = ds.map(functools.partial(_eval_example, image_size=image_size))
    ds = ds.to_iter_dataset(read_options).batch(batch_size, drop_remainder=False)
  if worker_count:
    from absl import flags
    if not flags.FLAGS.is_parsed():  # grain's workers read its absl flags; outside absl.app.run: defaults
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  if train:
    return ds
  largest_shard = -(-len(source) // shard_count)
  return PaddedBatches(ds, batch_size, -(-largest_shard // batch_size), image_size)
