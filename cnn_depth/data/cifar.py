"""'cifar10' and 'cifar100' (Krizhevsky 2009): 32x32 colour images, read whole from `data_dir`.

Either the original python pickles (`cifar-10-batches-py`, `cifar-100-python`; preferred when both
are present) or a dataset prepared by TFDS in the array_record format (read without TensorFlow, see
`cnn_depth.data.tfds`). The device augments as He et al. 2016 §4.2: pad 4, random 32x32 crop,
horizontal flip. At 50k images a host-side pipeline would be the bottleneck (1-3k img/s through
grain + PIL against 10-70k img/s for a ResNet step on a GPU), hence in memory.

Every problem found on disk is one `DataError` saying what is missing and how to get it.
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np

from cnn_depth.data.registry import DataError, DatasetSpec, register
from cnn_depth.data.tfds import read_images


@dataclasses.dataclass(frozen=True)
class _CifarSpec:
  """One CIFAR release: where its files are, what they are called, and how to get them."""

  name: str  # our name and the TFDS name
  title: str  # for messages
  folder: str  # what the python tarball extracts to
  tarball: str
  binary_folder: str  # the other release, which this loader does not read
  train_files: tuple[str, ...]
  test_file: str
  label_key: bytes
  num_classes: int

  def how_to_get(self, data_dir) -> str:
    return (
      f"expected a '{self.folder}' folder (download {self.tarball} from "
      f"https://www.cs.toronto.edu/~kriz/cifar.html and extract it there: "
      f"`tar xzf {self.tarball} -C {data_dir}`) or a TFDS-prepared '{self.name}' dataset "
      f"(run `tfds build {self.name} --data_dir={data_dir} --file_format=array_record` on a "
      "machine with internet and TensorFlow, then copy the folder)"
    )

  def read(self, data_dir, seed: int):
    """(train_x, train_y, test_x, test_y) from `data_dir`, as `DatasetSpec.read` (`seed` unused)."""
    del seed  # the official train/test split
    return _read_cifar(self, data_dir)


_CIFAR_SPECS = {
  "cifar10": _CifarSpec(
    "cifar10",
    "CIFAR-10",
    "cifar-10-batches-py",
    "cifar-10-python.tar.gz",
    "cifar-10-batches-bin",
    tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test_batch",
    b"labels",
    10,
  ),
  "cifar100": _CifarSpec(
    "cifar100",
    "CIFAR-100",
    "cifar-100-python",
    "cifar-100-python.tar.gz",
    "cifar-100-binary",
    ("train",),
    "test",
    b"fine_labels",
    100,
  ),
}
# Files by which a folder is recognised as the python release of each dataset.
_CIFAR_MARKERS = {
  "cifar10": ("data_batch_1", "batches.meta"),
  "cifar100": ("train", "test", "meta"),
}


def _read_cifar(spec: _CifarSpec, data_dir):
  """`spec`'s data in `data_dir`: the python folder under it, the folder itself, or a TFDS build."""
  if data_dir is None:
    raise DataError(f"{spec.title} needs data_dir: {spec.how_to_get('<data_dir>')}")
  root = Path(data_dir).expanduser()
  if not root.exists():
    raise DataError(f"No {spec.title} data: {root} does not exist; {spec.how_to_get(root)}")
  if not root.is_dir():
    raise DataError(f"No {spec.title} data: {root} is not a folder; {spec.how_to_get(root)}")

  if (root / spec.folder).is_dir():
    return _read_cifar_pickles(spec, root / spec.folder)
  if any((root / f).is_file() for f in (*spec.train_files, spec.test_file)):  # it is the folder
    return _read_cifar_pickles(spec, root)
  if (root / spec.name).is_dir():
    splits = read_images(
      spec.name, root, spec.how_to_get(root), title=spec.title, num_classes=spec.num_classes
    )
    return (*splits["train"], *splits["test"])
  raise DataError(_describe_missing_cifar(spec, root))


def _looks_like_other_cifar(spec: _CifarSpec, folder: Path) -> bool:
  other = "cifar100" if spec.name == "cifar10" else "cifar10"
  return all((folder / f).is_file() for f in _CIFAR_MARKERS[other])


def _describe_missing_cifar(spec: _CifarSpec, root: Path) -> str:
  """Why no data of `spec` was found under `root`, in one message."""
  other = _CIFAR_SPECS["cifar100" if spec.name == "cifar10" else "cifar10"]
  if (
    (root / other.folder).is_dir()
    or _looks_like_other_cifar(spec, root)
    or (root / other.name).is_dir()
  ):
    return (
      f"{root} holds {other.title} data, but {spec.name!r} was asked for: pass "
      f"load_dataset({other.name!r}, ...) or point data_dir at {spec.title} data; "
      f"{spec.how_to_get(root)}"
    )
  if (root / spec.tarball).is_file():
    return (
      f"No {spec.title} data under {root}: found {spec.tarball} but not its extracted "
      f"'{spec.folder}' folder; run `tar xzf {root / spec.tarball} -C {root}`"
    )
  if (root / spec.binary_folder).is_dir():
    return (
      f"No {spec.title} data under {root}: found the binary version "
      f"'{spec.binary_folder}', but this loader reads the python version; "
      f"{spec.how_to_get(root)}"
    )
  entries = sorted(p.name for p in root.iterdir())
  found = (
    "the folder is empty"
    if not entries
    else "it holds "
    + ", ".join(repr(e) for e in entries[:8])
    + (", ..." if len(entries) > 8 else "")
  )
  return f"No {spec.title} data under {root} ({found}): {spec.how_to_get(root)}"


def _read_cifar_pickles(spec: _CifarSpec, folder: Path):
  """The original python-pickle release: rows of 3072 bytes, channel-major (R, G, B planes)."""
  missing = [f for f in (*spec.train_files, spec.test_file) if not (folder / f).is_file()]
  if missing:
    raise DataError(
      f"{spec.title} folder {folder} is incomplete: missing {', '.join(missing)}. "
      f"Extract {spec.tarball} (https://www.cs.toronto.edu/~kriz/cifar.html) again."
    )
  train = [_read_cifar_batch(spec, folder / f) for f in spec.train_files]
  test_x, test_y = _read_cifar_batch(spec, folder / spec.test_file)
  train_x = np.concatenate([x for x, _ in train]) if len(train) > 1 else train[0][0]
  train_y = np.concatenate([y for _, y in train]) if len(train) > 1 else train[0][1]
  return train_x, train_y, test_x, test_y


def _read_cifar_batch(spec: _CifarSpec, path: Path) -> tuple[np.ndarray, np.ndarray]:
  def corrupt(why: str) -> DataError:
    return DataError(
      f"{spec.title} file {path} is corrupt or truncated ({why}). Download "
      f"{spec.tarball} from https://www.cs.toronto.edu/~kriz/cifar.html and extract "
      "it again."
    )

  try:
    with open(path, "rb") as f:
      # The release was pickled by Python 2: 'bytes' keeps its byte-string keys and numpy payloads
      # intact.
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
    raise DataError(
      f"{path} has no {spec.label_key!r} for {spec.title}{hint}; keys: "
      f"{sorted(batch)}. {spec.how_to_get(path.parent)}"
    )
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


for _spec in _CIFAR_SPECS.values():
  register(
    DatasetSpec(
      name=_spec.name,
      summary=f"{_spec.title}, read from data_dir: python pickles or a TFDS build",
      image_shape=(32, 32, 3),
      num_classes=_spec.num_classes,
      read=_spec.read,
      crop_padding=4,
      flip=True,
    )
  )
del _spec
