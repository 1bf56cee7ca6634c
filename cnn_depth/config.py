"""The fields every training config has, with the He et al. CIFAR recipe as defaults, and the one
loader of a config file.

Config files in `configs/` start from `base()` and change what their paper changes; the package
itself never imports `configs/` (configs are passed to `train.train_and_evaluate` as values, or
read from a path a caller gives with `load_config_file('configs/cifar_resnet.py:depth=56')`, the
spelling of scripts/train.py's --config).
"""

from __future__ import annotations

import importlib.util
import os
import types

import ml_collections


def base() -> ml_collections.ConfigDict:
  """Every field a training config has, with its default: one flat list, longer than 60 lines on
  purpose (a field per line, where a reader looks for it)."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = "cifar10"  # cifar10 | cifar100 | digits (embedded, no download)
  c.dataset.data_dir = ""  # a cifar-10-batches-py folder (or its parent) or a TFDS data_dir
  c.dataset.validation_size = 0  # > 0: hold out this many training images as the test set (45k/5k)

  # models.build_model reads these. A family is refused a field it does not read that is set to
  # anything but the value given here (or, where it has one, the "family's own choice" value).
  c.model = ml_collections.ConfigDict()
  # cifar_resnet | cifar_plain | cifar_preact | imagenet_resnet | ...
  c.model.family = "cifar_resnet"
  c.model.depth = 20
  c.model.width = 16  # ResNets, VGGs (0: the family's default)
  c.model.shortcut = "A"
  # CIFAR ResNets, plain nets, pre-activation ResNets: 'basic' (6n+2) or 'bottleneck' (9n+2);
  # '' = the family's default (basic; bottleneck for cifar_preact).
  c.model.block = ""
  # Bottleneck blocks: the stride on the first 1x1 convolution ('1x1', the paper's and Caffe's) or
  # on the 3x3 ('3x3', torchvision's and timm's "ResNet v1.5", for their trained weights).
  c.model.bottleneck_stride = "1x1"
  c.model.dtype = "float32"
  c.model.stages = "scan"
  # scan unroll factor; 0: full up to ResNet-110 and 4 beyond on GPU/TPU, 1 on CPU
  c.model.unroll = 0
  c.model.remat = False
  c.model.survival_last = 1.0  # stochastic depth p_L; 1 = off
  c.model.drop_mode = "batch"
  c.model.zero_init_last = False
  c.model.conv_impl = "auto"
  # > 1: BN statistics per group of batch/bn_groups examples ("ghost", per device)
  c.model.bn_groups = 1
  c.model.bn_impl = "fused"  # 'fused': BN with a hand-written backward (fewer GPU kernels) | 'flax'
  # The classic families only (cnn_depth/models/): these values mean "the family's default".
  c.model.growth_rate = 0  # DenseNets: k (0: the paper's k for the depth)
  # AlexNet, VGG, NiN, GoogLeNet, DenseNet: a rate (< 0: the family's default).
  c.model.dropout = -1.0
  c.model.aux_heads = False  # GoogLeNet: the two auxiliary classifiers (training only)
  c.model.reduce = True  # GoogLeNet: the 1x1 reductions before the 3x3 and 5x5 convolutions

  # He et al. 2016 §4.2: batch 128, SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at
  # 32k and 48k iterations, stop at 64k.
  c.batch_size = 128
  c.num_train_steps = 64_000  # or set num_epochs (> 0), which then wins
  c.num_epochs = -1.0
  c.learning_rate = 0.1
  c.lr_boundaries = (32_000, 48_000)
  c.lr_unit = "steps"  # unit of lr_boundaries and warmup: 'steps' or 'epochs'
  c.lr_decay = 0.1
  c.warmup = 0.0  # He et al.: 400 iterations at 0.01 for ResNet-110/1202
  c.warmup_lr = 0.01
  c.optimizer = "sgd"  # the papers' momentum SGD with coupled weight decay (the only one)
  c.momentum = 0.9
  c.nesterov = False
  c.weight_decay = 1e-4
  c.augment = True

  c.log_every_steps = 100
  c.eval_every_steps = 1_000
  c.checkpoint_every_steps = 5_000
  c.keep_checkpoints = 3
  c.log_block_norms = True  # per-block gradient and parameter norms in metrics.jsonl
  c.eval_train_set = False  # also evaluate (BN in inference mode) on the whole training set
  c.on_nonfinite = "stop"  # 'stop': status diverged, exit non-zero; 'skip': drop the step, go on
  return c


def digits(steps: int, seed: int = 0) -> ml_collections.ConfigDict:
  """base() with He et al.'s recipe shrunk to the embedded digits and a 2-core CPU: batch 128,
  `steps` steps, lr /10 at 50% and 75% of them, logs every 25 steps, evaluation (test and training
  set) every 50, one checkpoint at the end. The configs on digits (quickstart, vgg_digits) set only
  the model."""
  c = base()
  c.seed = seed
  c.dataset.name = "digits"
  c.batch_size = 128
  c.num_train_steps = steps
  c.lr_boundaries = (steps // 2, steps * 3 // 4)
  c.log_every_steps = 25
  c.eval_every_steps = 50
  c.checkpoint_every_steps = steps
  c.keep_checkpoints = 1
  c.eval_train_set = True
  return c


def parse_args(arg: str | None, **defaults):
  """'depth=110,residual=False' -> {'depth': 110, 'residual': False}, typed like `defaults`."""
  values = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, _, raw = item.partition("=")
    if key not in defaults:
      raise ValueError(f"unknown config argument {key!r}; known: {', '.join(sorted(defaults))}")
    kind = type(defaults[key])
    if kind is bool:
      if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
        raise ValueError(f"config argument {key}={raw!r} must be true or false")
      values[key] = raw.lower() in ("1", "true", "yes")
    else:
      try:
        values[key] = kind(raw)
      except ValueError:
        raise ValueError(f"config argument {key}={raw!r} must be a {kind.__name__}") from None
  return values


def load_config_module(path: str | os.PathLike) -> types.ModuleType:
  """The module of config file `path`, whose `get_config(arg=None)` builds the config; ValueError
  in one sentence naming the file if it is missing or defines no get_config."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ValueError(f"config file {path} does not exist")
  name = "config_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, "get_config", None)):
    raise ValueError(f"config file {path} defines no get_config(arg=None)")
  return module


def load_config_file(spec: str | os.PathLike) -> ml_collections.ConfigDict:
  """The config of 'path.py[:args]' (as scripts/train.py's --config reads it): `get_config(args)`
  of that file, `get_config(None)` without args. ValueError in one sentence naming the file for a
  missing file or arguments its get_config refuses."""
  path, _, args = os.fspath(spec).partition(":")
  module = load_config_module(path)
  try:
    return module.get_config(args or None)
  except ValueError as e:
    raise ValueError(f"config file {path}{':' + args if args else ''}: {e}") from None
