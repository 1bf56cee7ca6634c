"""The fields every training config has, with the He et al. CIFAR recipe as defaults, and the one
loader of a config file.

Config files in `configs/` start from `base()` and change what their paper changes; the package
itself never imports `configs/` (configs are passed to `train.train_and_evaluate` as values, or
read from a path a caller gives with `load_config_file('configs/cifar_resnet.py:depth=56')`, the
spelling of scripts/train.py's --config).

`check(config)` refuses, in one sentence naming the field as its `--config.` override spells it, any
value outside its field's rule (`CHECKS`, right after `base()`: sign, range, finiteness, allowed
strings, tuple contents); `parse_overrides(config, ['--config.x=v', ...])` applies overrides with
the parser scripts/train.py's --config uses, then checks (what the tests fuzz).
"""

from __future__ import annotations

import importlib.util
import math
import os
import types

import ml_collections

from cnn_depth.workdir import MISSING, lookup


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
  # The fixes for depth (#24), read by the CIFAR families (cifar_resnet, cifar_plain, cifar_preact);
  # the defaults are He et al.'s nets. Which combine (and why others do not): models/resnet.py.
  c.model.norm = "bn"  # 'bn' | 'none' (vanilla: convolutions get biases) | 'ws' (NF-ResNets)
  # kernels, a name of models/inits.py: 'he' N(0, sigma_w2/fan_out) | 'gaussian' (fan_in) |
  # 'orthogonal' | 'delta_orthogonal' | 'suo' (DKS's scaled uniform orthogonal)
  c.model.init = "he"
  c.model.sigma_w2 = 2.0  # the kernels' variance scale sigma_w^2 (He: 2)
  c.model.sigma_b2 = 0.0  # the convolutions' biases ~ N(0, sigma_b2) (norm 'none' or 'ws')
  c.model.activation = "relu"  # a name of models/activations.py
  c.model.negative_slope = 0.01  # activation 'leaky_relu' only
  c.model.transform = "none"  # 'dks' (Martens et al. 2021) | 'tat' (Zhang et al. 2022)
  c.model.dks_zeta = 1.5  # transform 'dks': the maximal C map's slope C'(1)
  c.model.tat_eta = 0.9  # transform 'tat', leaky ReLU: the maximal C map's C(0)
  c.model.tat_tau = 0.3  # transform 'tat', smooth activations: the maximal C map's C''(1)
  # How a block's branch meets its skip, a name of models/branches.py: 'identity' | 'fixup' |
  # 'skipinit' | 'rezero' | 'depth_mup' | 'nf' | 'normalized'
  c.model.branch = "identity"
  c.model.nf_alpha = 0.2  # branch 'nf': h + alpha * f(h / beta)
  c.model.shortcut_weight = 0.0  # branch 'normalized': w of w * skip + sqrt(1 - w^2) * branch
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
  # He et al.'s 32k and 48k of 64k. lr_unit of lr_boundaries and warmup: 'fraction' of the run
  # (floor(f * steps); so --config.num_train_steps=200 drops the lr at 100 and 150), 'steps' or
  # 'epochs'. Fractions are of the run's first length: extending it on a relaunch moves no drop.
  c.lr_boundaries = (0.5, 0.75)
  c.lr_unit = "fraction"
  c.lr_decay = 0.1
  c.warmup = 0.0  # in lr_unit; He et al.: 400 of 64k iterations (0.00625) at 0.01 for ResNet-110
  c.warmup_lr = 0.01
  c.optimizer = "sgd"  # the papers' momentum SGD with coupled weight decay (the only one)
  c.momentum = 0.9
  c.nesterov = False
  c.weight_decay = 1e-4
  # The optimiser's fixes for depth (cnn_depth/optim.py): 'agc' clips each output unit's gradient
  # to clip_lambda * its weights' norm (NFNets' adaptive gradient clipping; not the classifier's
  # kernel); the scalar parameters (Fixup's biases and multipliers, SkipInit's alpha) and the
  # classifier's bias train at learning_rate * scalar_lr_scale (Fixup's reference: 0.1).
  c.grad_clip = "none"  # 'none' | 'agc'
  c.clip_lambda = 0.01
  c.scalar_lr_scale = 1.0
  c.augment = True

  c.log_every_steps = 100
  c.eval_every_steps = 1_000
  c.checkpoint_every_steps = 5_000  # and at the last step; 0: at the last step only
  c.keep_checkpoints = 3
  c.log_block_norms = True  # per-block gradient and parameter norms in metrics.jsonl
  c.eval_train_set = False  # also evaluate (BN in inference mode) on the whole training set
  c.on_nonfinite = "stop"  # 'stop': status diverged, exit non-zero; 'skip': drop the step, go on
  return c


class ConfigError(ValueError):
  """A config field whose value cannot run: one sentence naming the field as its `--config.`
  override spells it, the value, and what to do."""


def _whole(low: int, high: int | None = None):
  """A test: an int (not a bool) in [low, high)."""
  return lambda v: (
    isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v < high)
  )


def _real(low=-math.inf, high=math.inf, *, open_low=False, open_high=False):
  """A test: a finite int or float (not a bool) between low and high, each end closed unless
  open_*."""

  def test(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      return False
    return (v > low if open_low else v >= low) and (v < high if open_high else v <= high)

  return test


def _one_of(*values):
  return lambda v: isinstance(v, str) and v in values


def _name(v) -> bool:  # a registry's name: the registry checks it when the model is built
  return isinstance(v, str) and v.isidentifier()


def _increasing(v) -> bool:
  return (
    isinstance(v, (tuple, list))
    and all(_real(0.0)(b) for b in v)
    and all(a <= b for a, b in zip(v, v[1:]))
  )


_BOOL = ("true or false", lambda v: isinstance(v, bool))
_FLOATS = ("float32", "bfloat16", "float16")
# What each field of base() must hold, in base()'s order: field -> (what it must be, the test).
# dataset.name and model.family are checked against their registries (train.check_config), the
# model's depth against its family (models.build_model) and lr_unit against cnn_depth.optim.
CHECKS = {
  "seed": ("a whole number in [0, 2**32)", _whole(0, 2**32)),
  "dataset.data_dir": ("a path ('' for the dataset's default)", lambda v: isinstance(v, str)),
  "dataset.validation_size": ("a whole number >= 0 (0: no validation split)", _whole(0)),
  "model.depth": ("a whole number >= 1", _whole(1)),
  "model.width": ("a whole number >= 0 (0: the family's default)", _whole(0)),
  "model.shortcut": ("'A' or 'B'", _one_of("A", "B")),
  "model.block": ("'', 'basic' or 'bottleneck'", _one_of("", "basic", "bottleneck")),
  "model.bottleneck_stride": ("'1x1' or '3x3'", _one_of("1x1", "3x3")),
  "model.dtype": (", ".join(map(repr, _FLOATS)), _one_of(*_FLOATS)),
  "model.stages": ("'scan' or 'unroll'", _one_of("scan", "unroll")),
  "model.unroll": ("a whole number >= 0 (0: chosen per backend)", _whole(0)),
  "model.remat": _BOOL,
  "model.survival_last": (
    "a number in [0, 1] (the stochastic-depth survival probability p_L of the last block; "
    "1: no stochastic depth)",
    _real(0.0, 1.0),
  ),
  "model.drop_mode": ("'batch' or 'sample'", _one_of("batch", "sample")),
  "model.zero_init_last": _BOOL,
  "model.conv_impl": ("'auto', 'xla' or 'cpu_vjp'", _one_of("auto", "xla", "cpu_vjp")),
  "model.bn_groups": ("a whole number >= 1", _whole(1)),
  "model.bn_impl": ("'fused' or 'flax'", _one_of("fused", "flax")),
  "model.norm": ("'bn', 'none' or 'ws'", _one_of("bn", "none", "ws")),
  "model.init": ("the name of an initialiser (models/inits.py)", _name),
  "model.sigma_w2": ("a finite number > 0", _real(0.0, open_low=True)),
  "model.sigma_b2": ("a finite number >= 0", _real(0.0)),
  "model.activation": ("the name of an activation (models/activations.py)", _name),
  "model.negative_slope": ("a number in [0, 1)", _real(0.0, 1.0, open_high=True)),
  "model.transform": ("'none', 'dks' or 'tat'", _one_of("none", "dks", "tat")),
  "model.dks_zeta": ("a finite number > 1", _real(1.0, open_low=True)),
  "model.tat_eta": ("a number in (0, 1)", _real(0.0, 1.0, open_low=True, open_high=True)),
  "model.tat_tau": ("a finite number > 0", _real(0.0, open_low=True)),
  "model.branch": ("the name of a branch rule (models/branches.py)", _name),
  "model.nf_alpha": ("a finite number > 0", _real(0.0, open_low=True)),
  "model.shortcut_weight": (
    "a number in [0, 1) (branch 'normalized': in (0, 1))",
    _real(0.0, 1.0, open_high=True),
  ),
  "model.growth_rate": ("a whole number >= 0 (0: the paper's k)", _whole(0)),
  "model.dropout": (
    "a rate in [0, 1), or < 0 for the family's default",
    _real(high=1.0, open_high=True),
  ),
  "model.aux_heads": _BOOL,
  "model.reduce": _BOOL,
  "batch_size": ("a whole number of images >= 1 (over all devices)", _whole(1)),
  "num_train_steps": ("a whole number >= 1 (or set num_epochs > 0, which then wins)", _whole(1)),
  "num_epochs": ("a finite number (> 0: the run's length; <= 0: num_train_steps is)", _real()),
  "learning_rate": (
    "a finite number >= 0 (0: the parameters never move, the BN statistics still do)",
    _real(0.0),
  ),
  "lr_boundaries": (
    "a tuple of non-decreasing numbers >= 0 in lr_unit, e.g. (0.5, 0.75) of the run",
    _increasing,
  ),
  "lr_decay": (
    "a number in (0, 1], the lr's factor at each boundary",
    _real(0.0, 1.0, open_low=True),
  ),
  "warmup": ("a finite number >= 0 in lr_unit (0: no warm-up)", _real(0.0)),
  "warmup_lr": ("a finite number >= 0", _real(0.0)),
  "optimizer": (
    "'sgd' (momentum SGD with coupled weight decay, as in the papers; --config.nesterov=true for "
    "Nesterov momentum)",
    _one_of("sgd"),
  ),
  "momentum": ("a number in [0, 1)", _real(0.0, 1.0, open_high=True)),
  "nesterov": _BOOL,
  "weight_decay": ("a finite number >= 0", _real(0.0)),
  "grad_clip": (
    "'none' or 'agc' (NFNets' adaptive gradient clipping, at --config.clip_lambda)",
    _one_of("none", "agc"),
  ),
  "clip_lambda": (
    "a finite number > 0, AGC's largest gradient-to-weight norm ratio",
    _real(0.0, open_low=True),
  ),
  "scalar_lr_scale": (
    "a finite number >= 0, the lr factor of the scalars and the classifier's bias (Fixup: 0.1)",
    _real(0.0),
  ),
  "augment": _BOOL,
  "log_every_steps": ("a whole number of steps >= 1", _whole(1)),
  "eval_every_steps": ("a whole number of steps >= 1", _whole(1)),
  "checkpoint_every_steps": ("a whole number of steps >= 0 (0: at the end only)", _whole(0)),
  "keep_checkpoints": ("a whole number >= 1, the checkpoints kept", _whole(1)),
  "log_block_norms": _BOOL,
  "eval_train_set": _BOOL,
  "on_nonfinite": ("'stop' or 'skip'", _one_of("stop", "skip")),
}


def check(config) -> None:
  """Raises ConfigError, one sentence naming the field, its value and what to do, for the first
  field of `config` that cannot run (CHECKS: sign, range, finiteness, allowed strings, tuple
  contents), then for fields that disagree (warm-up after the first lr boundary). Fields a config
  lacks (written before they existed) are not checked; model and dataset names are checked by
  train.check_config against their registries."""
  epochs = lookup(config, "num_epochs")
  for field, (must, test) in CHECKS.items():
    value = lookup(config, field)
    if value is MISSING or (field == "num_train_steps" and _real(0.0, open_low=True)(epochs)):
      continue  # num_epochs > 0 sets the length
    if not test(value):
      raise ConfigError(refusal(field, value, must))
  unit = lookup(config, "lr_unit")
  if unit is not MISSING:
    from cnn_depth import optim

    if unit not in optim.UNITS:  # what optim.to_steps converts
      raise ConfigError(refusal("lr_unit", unit, " or ".join(map(repr, optim.UNITS))))
    for field in ("lr_boundaries", "warmup") if unit == "fraction" else ():
      value = lookup(config, field)
      values = value if isinstance(value, (tuple, list)) else (value,)
      if value is not MISSING and not all(_real(0.0, 1.0)(v) for v in values):
        must = "fractions of the run in [0, 1] (lr_unit 'fraction'), or add --config.lr_unit=steps"
        raise ConfigError(refusal(field, value, must))
  warmup, bounds = lookup(config, "warmup"), lookup(config, "lr_boundaries")
  if warmup not in (0, MISSING) and bounds not in ((), [], MISSING) and bounds[0] <= warmup:
    raise ConfigError(
      f"lr_boundaries={tuple(bounds)!r} cannot be used with warmup={warmup!r}: the lr drops must "
      f"come after the warm-up (both in lr_unit {unit!r}); lower --config.warmup or raise "
      "--config.lr_boundaries"
    )


def refusal(field: str, value, must: str) -> str:
  """'<field>=<value> cannot be used: it must be <must>; set --config.<field> to such a value
  (default: <base()'s>)', the value cut to 80 characters."""
  shown = repr(value)
  shown = shown if len(shown) <= 80 else shown[:77] + "..."
  default = lookup(base(), field)
  hint = "" if default is MISSING else f" (default: {default!r})"
  return (
    f"{field}={shown} cannot be used: it must be {must}; set --config.{field} to such a value{hint}"
  )


def get_field(config, dotted: str, default=None):
  """The value at `dotted` ('model.depth') in a ConfigDict or dict, or `default`."""
  value = lookup(config, dotted)
  return default if value is MISSING else value


def parse_overrides(config, overrides, program: str = "scripts/train.py"):
  """A copy of `config` with `overrides` (['--config.model.depth=56', ...]) applied by the parser
  scripts/train.py's --config uses (ml_collections' config flags over absl), then `check`ed; a bad
  override raises ConfigError with the line the script prints (console.flag_error)."""
  from absl import flags
  from ml_collections import config_flags

  from cnn_depth import console

  argv = [program, *overrides]
  values = flags.FlagValues()
  try:
    holder = config_flags.DEFINE_config_dict(
      "config",
      _ShortStr(config.copy_and_resolve_references()),
      flag_values=values,
      sys_argv=argv,
      lock_config=True,
    )
    values(argv)
    parsed = holder.value
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as e:
    raise ConfigError(console.flag_error(e, argv)) from None
  parsed = ml_collections.ConfigDict(parsed)  # a plain ConfigDict again, fields and locks as parsed
  check(parsed)
  return parsed


class _ShortStr(ml_collections.ConfigDict):
  """A ConfigDict whose str() is short. absl renders a flag's default as text for --help, twice
  per definition, and a ConfigDict's text is a YAML dump of every field: 60 ms a parse, 77% of
  planning a sweep's runs (a 126-run grid took 11 s)."""

  def __str__(self):
    return "<the run's config>"


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
  c.log_every_steps = 25
  c.eval_every_steps = 50
  c.checkpoint_every_steps = 0  # at the end only, however long the run
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
