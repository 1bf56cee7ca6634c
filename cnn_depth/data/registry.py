"""The dataset registry: what a dataset is (`DatasetSpec`), and how the training loop gets one.

A `DatasetSpec` carries everything outside this package needs to know about a dataset: image shape,
number of classes, per-channel statistics, the standard augmentation, and whether it is read whole
into memory (`read`, giving an `InMemoryDataset`) or streamed from disk batch by batch (`stream`,
giving a `StreamedDataset`). Each source module of the package registers its specs at import;
`open_dataset` is what the training loop calls, so no code outside the package has to name a
dataset.

Only numpy is imported here: the readers import their data libraries when they read.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from typing import Any, Callable

import numpy as np


class DataError(ValueError):
  """The data is missing, incomplete, corrupt or of the wrong kind; the message says what to do."""


def packaged_file(package: str, path: str, dataset: str, pip_name: str) -> str:
  """The file `path` inside installed `package` (an embedded dataset's csv), found without importing
  the package (scikit-learn's import takes a second; the data needs none of its code). DataError
  naming `dataset` and what to install where it is missing."""
  spec = importlib.util.find_spec(package)
  found = spec and os.path.join(spec.submodule_search_locations[0], path)
  if not found or not os.path.exists(found):
    raise DataError(
      f"The {dataset!r} dataset ships with {pip_name}: `pip install {pip_name}` (or the package's "
      "`data` extra)."
    )
  return found


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """One dataset, as `config.dataset.name` names it; a source module hands it to `register`.

  Exactly one of `read` (in-memory) and `stream` (streamed) is given:
    read(data_dir, seed) -> (train_x, train_y, test_x, test_y): uint8 (N, H, W, C) images and int32
      labels, read whole. The device augments them: pad by `crop_padding`, random crop, flip if
      `flip`.
    stream(data_dir, split, global_batch_size, *, train, seed, shard_index, shard_count) -> an
      iterable of host-local batches {'image', 'label'(, 'mask')}, augmented on the host; with
      `info(data_dir)` -> an object with `num_examples` (a dict per split) and `num_classes`. The
      device does not augment again, so a streamed spec has crop_padding=0 and flip=False, and fixed
      `mean`/`std`.
  `mean`/`std` are per-channel statistics on the 0..255 scale; None computes them from the training
  images (`channel_stats`). `test_split` is the split evaluated as the test set.
  """

  name: str
  summary: str
  image_shape: tuple[int, int, int]
  num_classes: int
  read: Callable | None = None
  crop_padding: int = 4
  flip: bool = True
  mean: tuple[float, ...] | None = None
  std: tuple[float, ...] | None = None
  stream: Callable | None = None
  info: Callable | None = None
  test_split: str = "test"

  def __post_init__(self):
    if (self.read is None) == (self.stream is None):
      raise ValueError(
        f"DatasetSpec {self.name!r} needs exactly one of read (in memory) and stream (streamed)"
      )
    if (self.mean is None) != (self.std is None):
      raise ValueError(f"DatasetSpec {self.name!r}: give both mean and std, or neither")
    if self.streamed:
      if self.info is None or self.mean is None:
        raise ValueError(f"Streamed DatasetSpec {self.name!r} needs info and fixed mean and std")
      if self.crop_padding or self.flip:
        raise ValueError(
          f"Streamed DatasetSpec {self.name!r} is augmented by its stream on the "
          "host: set crop_padding=0 and flip=False so the device does not augment "
          "again"
        )

  @property
  def streamed(self) -> bool:
    return self.stream is not None


DATASETS: dict[str, DatasetSpec] = {}


def register(spec: DatasetSpec, replace: bool = False) -> DatasetSpec:
  """Adds `spec` under `spec.name`, refusing a name already taken unless `replace`; returns it."""
  if spec.name in DATASETS and not replace:
    raise ValueError(
      f"a dataset named {spec.name!r} is already registered ({DATASETS[spec.name].summary})"
    )
  DATASETS[spec.name] = spec
  return spec


def unregister(name: str) -> None:
  """Removes dataset `name` from the registry (for tests that register a toy one)."""
  del DATASETS[name]


def names() -> tuple[str, ...]:
  """The registered dataset names, in the order they were registered."""
  return tuple(DATASETS)


def get(name: str) -> DatasetSpec:
  """The spec of dataset `name`; DataError listing the known datasets if there is none."""
  try:
    return DATASETS[name]
  except KeyError:
    known = ", ".join(f"{n!r} ({spec.summary})" for n, spec in DATASETS.items())
    raise DataError(f"Unknown dataset {name!r}. Known: {known}.") from None


# --------------------------------------------------------------------------------------------------
# What a dataset gives the training loop.


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

  streamed = False  # a class attribute, not a field

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])

  @property
  def num_train(self) -> int:
    return len(self.train_labels)

  @property
  def num_test(self) -> int:
    return len(self.test_labels)


@dataclasses.dataclass(frozen=True, eq=False)
class StreamedDataset:
  """A dataset too large for memory, read from `data_dir` batch by batch through `spec.stream`.

  Has the attributes the training loop reads from an `InMemoryDataset` (`num_classes` and
  `num_train` come from the files on disk); `crop_padding` is 0 and `flip` False because the stream
  augments on the host and the device must not augment again.
  """

  name: str
  spec: DatasetSpec
  data_dir: str | os.PathLike | None
  num_classes: int
  num_train: int
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  crop_padding: int = 0
  flip: bool = False

  streamed = True  # a class attribute, not a field

  @property
  def test_split(self) -> str:
    return self.spec.test_split

  def batches(
    self,
    split: str,
    global_batch_size: int,
    *,
    train: bool,
    seed: int = 0,
    shard_index: int = 0,
    shard_count: int = 1,
    **options: Any,
  ):
    """This host's batches of `split`; `options` go to the stream (e.g. `imagenet_loader`)."""
    return self.spec.stream(
      self.data_dir,
      split,
      global_batch_size,
      train=train,
      seed=seed,
      shard_index=shard_index,
      shard_count=shard_count,
      **options,
    )


def load_dataset(
  name: str, data_dir: str | os.PathLike | None = None, validation_size: int = 0, seed: int = 0
) -> InMemoryDataset:
  """Reads the in-memory dataset `name` (e.g. 'digits', 'cifar10', 'cifar100', 'synthetic') whole.

  Args:
    name: a registered dataset read into memory ('digits' needs no files; the CIFARs are read from
      `data_dir`; 'synthetic' is random uint8 pixels and labels in CIFAR-10's shapes, for timing
      only).
    data_dir: where the spec's reader looks; for the CIFARs, a folder holding `cifar-10-batches-py`
      / `cifar-100-python` (or that folder itself), or a TFDS data_dir with a prepared `cifar10` /
      `cifar100` (array_record format).
    validation_size: if > 0, the last `validation_size` examples of a seeded permutation of the
      training set become the test arrays (He et al. 2016 §4.2 used 45k/5k) and `name` gets
      ':val<size>'.
    seed: fixes the digits train/test split and the validation permutation.
  """
  spec = get(name)
  if spec.streamed:
    raise DataError(
      f"Dataset {name!r} is streamed from disk, not read into memory: use "
      f"open_dataset({name!r}, data_dir)"
    )
  train_x, train_y, test_x, test_y = spec.read(data_dir, seed)
  if tuple(train_x.shape[1:]) != tuple(spec.image_shape):
    raise DataError(
      f"Dataset {name!r} read images of shape {tuple(train_x.shape[1:])}, but its "
      f"spec says {tuple(spec.image_shape)}"
    )
  if validation_size:
    n = len(train_y)
    if not 0 < validation_size < n:
      raise DataError(
        f"validation_size={validation_size} must be between 1 and {n - 1}: the "
        f"{name} training set has {n} examples"
      )
    perm = np.random.default_rng(seed).permutation(n)
    keep, held_out = np.sort(perm[:-validation_size]), np.sort(perm[-validation_size:])
    test_x, test_y = train_x[held_out], train_y[held_out]
    train_x, train_y = train_x[keep], train_y[keep]
    name = f"{name}:val{validation_size}"
  mean, std = (spec.mean, spec.std) if spec.mean is not None else channel_stats(train_x)
  return InMemoryDataset(
    name=name,
    train_images=train_x,
    train_labels=train_y,
    test_images=test_x,
    test_labels=test_y,
    num_classes=spec.num_classes,
    mean=mean,
    std=std,
    crop_padding=spec.crop_padding,
    flip=spec.flip,
  )


def open_dataset(
  name: str, data_dir: str | os.PathLike | None = None, validation_size: int = 0, seed: int = 0
) -> InMemoryDataset | StreamedDataset:
  """Dataset `name` as the training loop takes it: read whole (`load_dataset`), or opened to stream.

  A streamed dataset is only opened here (split sizes and classes from the files); `batches` reads
  it. It has no held-out validation split: `validation_size` must be 0.
  """
  spec = get(name)
  if not spec.streamed:
    return load_dataset(name, data_dir, validation_size=validation_size, seed=seed)
  if validation_size:
    raise DataError(
      f"validation_size={validation_size}: {name!r} is streamed and cannot hold out "
      f"part of its training set; it is evaluated on its {spec.test_split!r} split "
      "(set validation_size=0)"
    )
  info = spec.info(data_dir)
  return StreamedDataset(
    name=name,
    spec=spec,
    data_dir=data_dir,
    num_classes=int(info.num_classes),
    num_train=int(info.num_examples.get("train", 0)),
    image_shape=tuple(spec.image_shape),
    mean=tuple(spec.mean),
    std=tuple(spec.std),
  )


# --------------------------------------------------------------------------------------------------
# numpy helpers shared by the sources and the evaluation code.


def channel_stats(
  images: np.ndarray, chunk: int = 1024
) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-channel mean and (population) std of uint8 images (N, H, W, C), on the 0..255 scale.

  Exact integer sums of x and x^2 over chunks of images: no 1.2 GB float64 copy of 50k CIFAR images.
  """
  c = images.shape[-1]
  total, total_sq, count = np.zeros(c, np.int64), np.zeros(c, np.int64), 0
  for start in range(0, len(images), chunk):
    x = images[start : start + chunk].reshape(-1, c)
    total += x.sum(0, dtype=np.int64)
    wide = x.astype(np.uint16)
    total_sq += (wide * wide).sum(0, dtype=np.int64)
    count += len(x)
  if not count:
    raise DataError("cannot compute channel statistics of an empty training set")
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
  return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def pad_to_batches(arrays: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  """`arrays` (equal lengths along axis 0) padded with zero rows to a multiple of `batch_size`.

  Adds a float32 'mask', 1 for the real rows and 0 for the padding, so padded rows count for nothing
  in summed metrics (an existing 'mask' is kept for the real rows and padded with zeros). Arrays
  already a multiple of `batch_size` long come back as they are.
  """
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  lengths = {k: len(v) for k, v in arrays.items()}
  if len(set(lengths.values())) > 1:
    raise ValueError(f"pad_to_batches needs arrays of one length, got {lengths}")
  n = next(iter(lengths.values()), 0)
  if "mask" not in arrays:
    arrays = {**arrays, "mask": np.ones((n,), np.float32)}
  pad = -n % batch_size
  if not pad:
    return dict(arrays)
  return {
    k: np.concatenate([v, np.zeros((pad, *np.shape(v)[1:]), np.asarray(v).dtype)])
    for k, v in arrays.items()
  }
