"""'imagenet2012' (ILSVRC 2012, Russakovsky et al. 2015): 1.28M images, streamed with grain.

Read from a TFDS-prepared `imagenet2012` (array_record, no TensorFlow) and sharded across hosts:
training takes the Inception random-resized crop + horizontal flip on the host, evaluation
resize-256 / center-crop-224, so the device does not augment (crop_padding 0, flip False). grain and
PIL are imported only by the functions that read through them.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from cnn_depth.data.registry import DataError, DatasetSpec, pad_to_batches, register
from cnn_depth.data.tfds import prepared_builder, split_source

# Per-channel statistics of the ImageNet training set on the 0..255 scale (the usual torchvision /
# flax example values).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
IMAGENET_NAME = "imagenet2012"


def _imagenet_how_to_get(data_dir) -> str:
  return (
    "ImageNet must be prepared once with TFDS on a machine with TensorFlow: register at "
    "https://image-net.org/download-images, download ILSVRC2012_img_train.tar and "
    f"ILSVRC2012_img_val.tar into {data_dir}/downloads/manual/, run "
    f"`tfds build {IMAGENET_NAME} --data_dir={data_dir} --file_format=array_record` (needs "
    "`pip install tensorflow "
    "tensorflow-datasets`; hours and ~300 GB of disk), then copy "
    f"{data_dir}/{IMAGENET_NAME} to this machine's data_dir"
  )


def _imagenet_builder(data_dir):
  """The prepared `imagenet2012` builder under `data_dir`, and the how-to-get text for messages."""
  if data_dir is None:
    raise DataError(f"ImageNet needs data_dir. {_imagenet_how_to_get('<data_dir>')}")
  root = Path(data_dir).expanduser()
  if not root.is_dir():
    raise DataError(f"No ImageNet data: {root} is not a folder. {_imagenet_how_to_get(root)}")
  how_to_get = _imagenet_how_to_get(root)
  return prepared_builder(IMAGENET_NAME, root, how_to_get), how_to_get


@dataclasses.dataclass(frozen=True)
class ImageNetInfo:
  """What `imagenet_info` reads off a prepared ImageNet, and its fixed channel statistics."""

  num_examples: dict[str, int]  # per prepared split: 'train', 'validation' (, 'test': labels -1)
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
    num_classes=int(builder.info.features["label"].num_classes),
  )


def _decode_image(image):
  """JPEG/PNG bytes (or an already decoded array) -> an RGB PIL image."""
  from PIL import Image

  if isinstance(image, np.ndarray):
    return Image.fromarray(image)
  pil = Image.open(io.BytesIO(image))
  return pil if pil.mode == "RGB" else pil.convert("RGB")


def inception_crop_box(
  height: int,
  width: int,
  rng: np.random.Generator,
  scale: tuple[float, float] = (0.08, 1.0),
  ratio: tuple[float, float] = (3 / 4, 4 / 3),
  attempts: int = 10,
) -> tuple[int, int, int, int]:
  """(top, left, crop_height, crop_width) of an Inception-style random crop (Szegedy et al. 2015).

  Area uniform in `scale` of the image, aspect ratio log-uniform in `ratio`; after `attempts`
  misses, the largest center crop within `ratio` (torchvision's RandomResizedCrop).
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


def random_resized_crop(
  image, rng: np.random.Generator, size: int = 224, flip: bool = True
) -> np.ndarray:
  """Training view: an Inception crop resized to size x size (bilinear), flipped half the time."""
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
  return {
    "image": random_resized_crop(example["image"], rng, image_size),
    "label": np.int32(example["label"]),
  }


def _eval_example(example, image_size):
  image = center_crop(example["image"], image_size, resize_size=round(image_size * 256 / 224))
  return {"image": image, "label": np.int32(example["label"]), "mask": np.float32(1.0)}


def _shard_bounds(num_records: int, shard) -> tuple[int, int]:
  """[start, stop) of `shard` (a grain ShardOptions) over `num_records`, as grain's even split does.

  With drop_remainder every shard gets num_records // count; without, the first shards take one
  more.
  """
  size, rest = divmod(num_records, shard.shard_count)
  if shard.drop_remainder:
    return shard.shard_index * size, (shard.shard_index + 1) * size
  start = shard.shard_index * size + min(shard.shard_index, rest)
  return start, start + size + (shard.shard_index < rest)


@dataclasses.dataclass(frozen=True)
class _ShardSource:
  """Records [start, stop) of a random-access source as a source of its own.

  Indices are taken modulo its length (grain's repeat relies on that). Plain and picklable, for
  grain's worker processes.
  """

  source: object
  start: int
  stop: int

  def __len__(self) -> int:
    return self.stop - self.start

  def __getitem__(self, index: int):
    return self.source[self.start + index % (self.stop - self.start)]


class PaddedBatches:
  """Evaluation batches of a fixed size and count, each with a 'mask' (1 real example, 0 padding).

  Every host yields the same number of batches (`len`), enough for the largest shard, so a
  multi-host eval loop never waits on a host that ran out; the last real batch is completed with
  zero images.
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
        batch = pad_to_batches(batch, self.batch_size)
      count += 1
      yield batch
    for _ in range(count, self._num_batches):
      size = self._image_size
      yield {
        "image": np.zeros((self.batch_size, size, size, 3), np.uint8),
        "label": np.zeros((self.batch_size,), np.int32),
        "mask": np.zeros((self.batch_size,), np.float32),
      }


def _open_shard(data_dir, split: str, shard) -> tuple[object, int, int]:
  """(the split's random-access source, [start, stop) of this host's records in it)."""
  builder, how_to_get = _imagenet_builder(data_dir)
  source = split_source(builder, split, how_to_get)
  start, stop = _shard_bounds(len(source), shard)
  if stop == start:
    raise DataError(
      f"split {split!r} ({len(source)} examples) leaves shard {shard.shard_index} of "
      f"{shard.shard_count} empty"
    )
  return source, start, stop


def _in_worker_processes(ds, worker_count: int):
  """`ds` prefetched by `worker_count` grain worker processes."""
  import grain
  from absl import flags

  if not flags.FLAGS.is_parsed():  # grain's workers read its absl flags; defaults outside app.run
    flags.FLAGS.mark_as_parsed()
  return ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))


def imagenet_loader(
  data_dir: str | os.PathLike,
  split: str,
  global_batch_size: int,
  *,
  train: bool,
  seed: int = 0,
  shard_index: int = 0,
  shard_count: int = 1,
  num_epochs: int | None = None,
  image_size: int = 224,
  worker_count: int = 0,
  num_threads: int = 16,
) -> Iterable[dict[str, np.ndarray]]:
  """Batches of a TFDS-prepared `imagenet2012` split, built with grain, for one host.

  Each host reads its own contiguous shard (`shard_index` of `shard_count`, grain's ShardOptions;
  usually jax.process_index() / jax.process_count()) and yields host-local batches of
  global_batch_size // shard_count:
    {'image': uint8 (B, image_size, image_size, 3), 'label': int32 (B,)}.

  train=True: shuffled (a new order each epoch), Inception random-resized crop (scale 0.08-1, aspect
  3/4-4/3) + random horizontal flip; repeats `num_epochs` times (None: forever); every host drops
  the remainder of its shard and of its last batch so all hosts take the same number of steps.
  Returns a grain IterDataset: `iter()` gives a checkpointable iterator (`get_state` / `set_state`).
  train=False: one pass in order, shorter side to 256 * image_size / 224, central crop; batches
  carry a 'mask' (float32) and are padded to full size, and every host yields `len(loader)` batches.

  Decoding runs in `num_threads` threads (PIL releases the GIL), or in `worker_count` grain worker
  processes (those need the program's main module guarded by `if __name__ == '__main__'`).
  Over 60 lines only for its arguments and this docstring: the pipeline itself is one screen.
  """
  import grain

  if global_batch_size % shard_count:
    raise DataError(
      f"global_batch_size={global_batch_size} is not divisible by shard_count={shard_count}"
    )
  batch_size = global_batch_size // shard_count
  shard = grain.sharding.ShardOptions(shard_index, shard_count, drop_remainder=train)
  source, start, stop = _open_shard(data_dir, split, shard)
  ds = grain.MapDataset.source(_ShardSource(source, start, stop))
  read_options = grain.ReadOptions(
    num_threads=num_threads, prefetch_buffer_size=max(2 * batch_size, 64)
  )
  if train:
    if stop - start < batch_size:
      raise DataError(
        f"split {split!r} has {stop - start} examples per host, fewer than one "
        f"batch of {batch_size}"
      )
    # Distinct augmentation streams per host; the shuffle is per shard already.
    aug_seed = int(np.random.SeedSequence([seed, shard_index]).generate_state(1)[0])
    ds = (
      ds.shuffle(seed=seed)
      .repeat(num_epochs)
      .random_map(functools.partial(_train_example, image_size=image_size), seed=aug_seed)
    )
    ds = ds.to_iter_dataset(read_options).batch(batch_size, drop_remainder=True)
  else:
    ds = ds.map(functools.partial(_eval_example, image_size=image_size))
    ds = ds.to_iter_dataset(read_options).batch(batch_size, drop_remainder=False)
  if worker_count:
    ds = _in_worker_processes(ds, worker_count)
  if train:
    return ds
  largest_shard = -(-len(source) // shard_count)
  return PaddedBatches(ds, batch_size, -(-largest_shard // batch_size), image_size)


IMAGENET = register(
  DatasetSpec(
    name=IMAGENET_NAME,
    summary="ImageNet, streamed from a TFDS build in data_dir",
    image_shape=(224, 224, 3),
    num_classes=1000,
    stream=imagenet_loader,
    info=imagenet_info,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    crop_padding=0,
    flip=False,
    test_split="validation",
  )
)
