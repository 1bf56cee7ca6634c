"""The configs in configs/ carry the papers' numbers, and every one of them builds a model.

He et al. 2016 §4.2 (CIFAR), §3.4 (ImageNet); He et al. 2016b (pre-activation); Huang et al. 2016
(stochastic depth). Configs are loaded from their files, as scripts/train.py loads them.
"""

import glob
import os

import pytest

from cnn_depth import config as config_lib
from cnn_depth import models, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(ROOT, "configs")
CONFIGS = sorted(
  os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(CONFIG_DIR, "*.py"))
)
CIFAR_STEPS_PER_EPOCH = 50_000 // 128  # 390
IMAGENET_STEPS_PER_EPOCH = 1_281_167 // 256  # 5004


def get_config(name, arg=None):
  path = os.path.join(CONFIG_DIR, f"{name}.py")
  return config_lib.load_config_file(f"{path}:{arg}" if arg else path)


def lr(config, step, steps_per_epoch=CIFAR_STEPS_PER_EPOCH):
  _, schedule = train.make_optimizer(config, steps_per_epoch=steps_per_epoch)
  return float(schedule(step))


def build(config):
  return models.build_model({**config.model.to_dict(), "num_classes": 10})


def test_all_configs_found():
  assert {
    "cifar_resnet",
    "cifar_preact",
    "stochastic_depth",
    "imagenet_resnet",
    "quickstart",
  } <= set(CONFIGS)


def test_load_config_file_reads_a_path_and_its_arguments(tmp_path):
  """'path.py[:args]', as scripts/train.py's --config spells it; a missing file, a file without
  get_config or an argument it refuses is one ValueError naming the file."""
  path = os.path.join(CONFIG_DIR, "cifar_resnet.py")
  assert config_lib.load_config_file(path).model.depth == 20
  plain = config_lib.load_config_file(f"{path}:depth=56,residual=false")
  assert (plain.model.family, plain.model.depth) == ("cifar_plain", 56)
  assert config_lib.load_config_module(path).get_config("depth=32").model.depth == 32
  with pytest.raises(ValueError, match=r"config file \S*cifar_resnet.py:dept=3: .*'dept'"):
    config_lib.load_config_file(f"{path}:dept=3")
  with pytest.raises(ValueError, match=r"config file \S*nope.py does not exist"):
    config_lib.load_config_file(f"{tmp_path / 'nope.py'}:depth=20")
  (tmp_path / "empty.py").write_text("X = 1\n")
  with pytest.raises(ValueError, match="empty.py defines no get_config"):
    config_lib.load_config_file(tmp_path / "empty.py")


# --- He et al. 2016 §4.2: CIFAR-10 ---------------------------------------------------------------


def test_cifar_resnet_recipe():
  c = get_config("cifar_resnet")
  assert c.batch_size == 128
  assert c.learning_rate == pytest.approx(0.1)
  assert c.momentum == pytest.approx(0.9) and not c.nesterov
  assert c.weight_decay == pytest.approx(1e-4)
  assert tuple(c.lr_boundaries) == (0.5, 0.75) and c.lr_unit == "fraction"  # 32k, 48k of 64k
  assert c.lr_decay == pytest.approx(0.1)
  assert c.num_train_steps == 64_000 and not c.num_epochs > 0
  assert train.num_steps(c, CIFAR_STEPS_PER_EPOCH) == 64_000
  assert (c.model.family, c.model.depth, c.model.width, c.model.shortcut) == (
    "cifar_resnet",
    20,
    16,
    "A",
  )
  assert c.dataset.name == "cifar10"


def test_cifar_resnet_no_warmup_at_56():
  c = get_config("cifar_resnet", "depth=56")
  assert c.model.depth == 56 and c.warmup == 0
  assert lr(c, 0) == pytest.approx(0.1)


@pytest.mark.parametrize("depth", [110, 1202])
def test_cifar_resnet_warmup_for_deep_nets(depth):
  c = get_config("cifar_resnet", f"depth={depth}")
  assert c.warmup == 0.00625 and c.lr_unit == "fraction"  # 400 of 64k
  assert c.warmup_lr == pytest.approx(0.01)


def test_cifar_resnet_110_schedule():
  c = get_config("cifar_resnet", "depth=110")
  assert lr(c, 0) == pytest.approx(0.01)
  assert lr(c, 399) == pytest.approx(0.01)
  assert lr(c, 400) == pytest.approx(0.1)
  assert lr(c, 31_999) == pytest.approx(0.1)
  assert lr(c, 32_000) == pytest.approx(0.01)  # the boundaries stay at 32k/48k despite the warm-up
  assert lr(c, 47_999) == pytest.approx(0.01)
  assert lr(c, 48_000) == pytest.approx(0.001)
  assert lr(c, 63_999) == pytest.approx(0.001)


def test_cifar_plain_twin():
  c = get_config("cifar_resnet", "depth=56,residual=False")
  assert c.model.family == "cifar_plain" and c.model.depth == 56
  model = build(c)
  assert not model.residual and model.stage_sizes == (9, 9, 9)
  assert build(get_config("cifar_resnet", "depth=56")).residual


# --- Huang et al. 2016: stochastic depth ---------------------------------------------------------


def test_stochastic_depth_recipe():
  c = get_config("stochastic_depth")
  assert (c.model.family, c.model.depth) == ("cifar_resnet", 110)
  assert c.model.survival_last == pytest.approx(0.5)
  assert c.nesterov and c.momentum == pytest.approx(0.9)
  assert c.batch_size == 128 and c.weight_decay == pytest.approx(1e-4)
  assert c.num_epochs == 500 and c.lr_unit == "fraction" and tuple(c.lr_boundaries) == (0.5, 0.75)
  assert train.num_steps(c, CIFAR_STEPS_PER_EPOCH) == 195_000
  assert lr(c, 0) == pytest.approx(0.1)
  assert lr(c, 97_499) == pytest.approx(0.1)
  assert lr(c, 97_500) == pytest.approx(0.01)
  assert lr(c, 146_249) == pytest.approx(0.01)
  assert lr(c, 146_250) == pytest.approx(0.001)
  model = build(c)
  assert model.survival_last == pytest.approx(0.5) and model.num_blocks == 54


def test_stochastic_depth_baseline_argument():
  assert get_config("stochastic_depth", "survival_last=1.0").model.survival_last == 1.0


# --- He et al. 2016b: pre-activation ResNets -----------------------------------------------------


@pytest.mark.parametrize("depth,n,params_m", [(164, 18, 1.7), (1001, 111, 10.2)])
def test_cifar_preact_bottleneck(depth, n, params_m):
  c = get_config("cifar_preact", f"depth={depth}")
  assert c.model.family == "cifar_preact" and c.model.block == "bottleneck"
  assert c.warmup == 0.00625 and c.batch_size == 128 and tuple(c.lr_boundaries) == (0.5, 0.75)
  model = build(c)
  assert model.preact and model.block == "bottleneck" and model.residual
  assert model.stage_sizes == (n, n, n) and model.stage_widths == (64, 128, 256)
  params = models.count_params(models.init_shapes(model, (32, 32, 3))["params"])
  # He et al. 2016b, Table 2: 1.7M and 10.2M (ours: 1.70M and 10.33M).
  assert params / 1e6 == pytest.approx(params_m, rel=0.02)


def test_cifar_preact_basic_110():
  model = build(get_config("cifar_preact", "depth=110,block=basic"))
  assert model.preact and model.block == "basic" and model.stage_sizes == (18, 18, 18)


# --- He et al. 2016 §3.4: ImageNet ---------------------------------------------------------------


def test_imagenet_recipe():
  c = get_config("imagenet_resnet")
  assert c.batch_size == 256 and c.num_epochs == 90
  assert c.lr_unit == "fraction" and tuple(c.lr_boundaries) == (30 / 90, 60 / 90)
  assert c.learning_rate == pytest.approx(0.1) and c.momentum == pytest.approx(0.9)
  assert c.weight_decay == pytest.approx(1e-4)
  assert (c.model.family, c.model.depth, c.model.width) == ("imagenet_resnet", 18, 64)
  assert train.num_steps(c, IMAGENET_STEPS_PER_EPOCH) == 90 * IMAGENET_STEPS_PER_EPOCH
  assert lr(c, 30 * IMAGENET_STEPS_PER_EPOCH - 1, IMAGENET_STEPS_PER_EPOCH) == pytest.approx(0.1)
  assert lr(c, 30 * IMAGENET_STEPS_PER_EPOCH, IMAGENET_STEPS_PER_EPOCH) == pytest.approx(0.01)
  assert lr(c, 60 * IMAGENET_STEPS_PER_EPOCH, IMAGENET_STEPS_PER_EPOCH) == pytest.approx(0.001)


@pytest.mark.parametrize(
  "depth,block", [(18, "basic"), (34, "basic"), (50, "bottleneck"), (152, "bottleneck")]
)
def test_imagenet_families(depth, block):
  resnet = get_config("imagenet_resnet", f"depth={depth}")
  plain = get_config("imagenet_resnet", f"depth={depth},residual=False")
  assert resnet.model.family == "imagenet_resnet" and plain.model.family == "imagenet_plain"
  assert plain.model.width == 64
  model = build(resnet)
  assert model.block == block and model.stem == "imagenet" and model.stage_widths[0] % 64 == 0
  assert not build(plain).residual


# --- the digits quickstart -----------------------------------------------------------------------


def test_quickstart():
  c = get_config("quickstart", "depth=32,residual=False,steps=400")
  assert c.dataset.name == "digits"
  assert (c.model.family, c.model.depth) == ("cifar_plain", 32)
  assert c.num_train_steps == 400 and tuple(c.lr_boundaries) == (0.5, 0.75)
  assert get_config("quickstart").model.family == "cifar_resnet"


# --- every config --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_has_the_loop_fields(name):
  c = get_config(name)
  for field in (
    "seed",
    "num_train_steps",
    "num_epochs",
    "log_every_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
  ):
    assert field in c, f"{name} lacks {field}"
  assert c.log_every_steps > 0 and c.eval_every_steps > 0 and c.checkpoint_every_steps >= 0
  assert train.num_steps(c, CIFAR_STEPS_PER_EPOCH) > 0
  assert get_config(name, "seed=3").seed == 3
  train.make_optimizer(c, steps_per_epoch=CIFAR_STEPS_PER_EPOCH)  # boundaries after the warm-up


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_builds(name):
  model = build(get_config(name))
  assert model.num_classes == 10
  variables = models.init_shapes(model, (32, 32, 3))  # abstract: no FLOPs, scan keeps it cheap
  assert variables["params"]["head"]["kernel"].shape[-1] == 10


@pytest.mark.parametrize("name", CONFIGS)
def test_bad_argument_names_it(name):
  with pytest.raises(ValueError, match="'dept'"):
    get_config(name, "dept=3")


def test_config_arguments_are_typed_strictly():
  with pytest.raises(ValueError, match="residual='Flase' must be true or false"):
    config_lib.parse_args("residual=Flase", residual=True)
  with pytest.raises(ValueError, match="depth='abc' must be a int"):
    config_lib.parse_args("depth=abc", depth=20)
  assert config_lib.parse_args("residual=false,depth=56", residual=True, depth=20) == {
    "residual": False,
    "depth": 56,
  }


# --- the classic families: VGG-style plain nets of increasing depth -------------------------------


@pytest.mark.parametrize("depth,stages", [(11, (1, 1, 2, 2, 2)), (19, (2, 2, 4, 4, 4))])
def test_cifar_vgg_depths(depth, stages):
  c = get_config("cifar_vgg", f"depth={depth}")
  assert (c.model.family, c.model.width, c.dataset.name) == ("cifar_vgg_bn", 64, "cifar10")
  assert c.learning_rate == pytest.approx(0.1) and tuple(c.lr_boundaries) == (0.5, 0.75)
  model = build(c)
  assert model.bn and model.stage_sizes == stages and model.stage_widths == (64, 128, 256, 512, 512)
  plain = get_config("cifar_vgg", f"depth={depth},bn=False")
  assert plain.model.family == "cifar_vgg" and plain.learning_rate == pytest.approx(0.01)
  assert not build(plain).bn


def test_vgg_digits_builds_on_8x8_images():
  c = get_config("vgg_digits", "depth=16,steps=400")
  assert c.dataset.name == "digits" and tuple(c.lr_boundaries) == (0.5, 0.75)
  model = build(c)
  assert model.width == 16 and model.num_blocks == 13
  variables = models.init_shapes(model, (8, 8, 1))
  assert variables["params"]["head"]["kernel"].shape == (128, 10)


@pytest.mark.parametrize(
  "arg,family,params_k",
  [("", "cifar_densenet", 1_020), ("depth=100,bc=True", "cifar_densenet_bc", 769)],
)
def test_cifar_densenet(arg, family, params_k):
  c = get_config("cifar_densenet", arg)
  assert c.model.family == family and tuple(c.lr_boundaries) == (0.5, 0.75)
  params = models.count_params(models.init_shapes(build(c), (32, 32, 3))["params"])
  assert round(params / 1000) == params_k  # Huang et al. 2017 Table 2: 1.0M and 0.8M


def test_a_classic_family_from_the_command_line_overrides():
  """base() carries the classic fields, so --config.model.family=... works on any config."""
  c = get_config("cifar_resnet")
  c.model.family, c.model.depth, c.model.width, c.model.growth_rate = "cifar_densenet", 40, 0, 24
  assert build(c).growth_rate == 24
  c.model.family, c.model.growth_rate = "cifar_resnet", 24
  with pytest.raises(ValueError, match="growth_rate"):
    build(c)


# --- config.check: every field's rule; the fuzz of the command line's checks ---------------------

# (override, the start of the one-sentence error): a case of each kind of rule.
REFUSED = [
  ("--config.learning_rate=-0.1", "learning_rate=-0.1 cannot be used: it must be a finite number"),
  ("--config.learning_rate=inf", "learning_rate=inf cannot be used"),
  ("--config.batch_size=0", "batch_size=0 cannot be used: it must be a whole number of images"),
  ("--config.num_train_steps=0", "num_train_steps=0 cannot be used"),
  ("--config.keep_checkpoints=0", "keep_checkpoints=0 cannot be used"),
  ("--config.momentum=1.0", "momentum=1.0 cannot be used: it must be a number in [0, 1)"),
  ("--config.weight_decay=-1e-4", "weight_decay=-0.0001 cannot be used"),
  ("--config.warmup=-1", "warmup=-1.0 cannot be used"),
  ("--config.warmup_lr=nan", "warmup_lr=nan cannot be used"),
  ("--config.lr_decay=0", "lr_decay=0.0 cannot be used"),
  ("--config.lr_boundaries=(0.75,0.5)", "lr_boundaries=(0.75, 0.5) cannot be used"),
  ("--config.lr_boundaries=(-1,)", "lr_boundaries=(-1,) cannot be used"),
  ("--config.lr_boundaries=(0.5,'a')", "lr_boundaries=(0.5, 'a') cannot be used"),
  ("--config.lr_unit=iterations", "lr_unit='iterations' cannot be used"),
  ("--config.num_epochs=nan", "num_epochs=nan cannot be used"),
  ("--config.seed=-1", "seed=-1 cannot be used"),
  ("--config.dataset.validation_size=-5", "dataset.validation_size=-5 cannot be used"),
  ("--config.model.width=-4", "model.width=-4 cannot be used"),
  ("--config.model.shortcut=C", "model.shortcut='C' cannot be used: it must be 'A' or 'B'"),
  ("--config.model.dtype=int8", "model.dtype='int8' cannot be used"),
  ("--config.model.survival_last=1.5", "model.survival_last=1.5 cannot be used"),
  ("--config.model.bn_groups=0", "model.bn_groups=0 cannot be used"),
  ("--config.model.dropout=1.0", "model.dropout=1.0 cannot be used"),
  ("--config.optimizer=adam", "optimizer='adam' cannot be used: it must be 'sgd'"),
  ("--config.on_nonfinite=ignore", "on_nonfinite='ignore' cannot be used"),
  ("--config.log_every_steps=0", "log_every_steps=0 cannot be used"),
  ("--config.batch_size=1.5", "--config.batch_size=1.5 is not a value of the field's type"),
  ("--config.dept=3", "--config.dept names no field of the config"),
]


@pytest.mark.parametrize("override,message", REFUSED)
def test_check_refuses_each_kind_of_bad_value_naming_the_field(override, message):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.parse_overrides(config_lib.base(), [override])
  text = str(e.value)
  assert text.startswith(message) and "\n" not in text, text
  if "cannot be used" in text:  # what to do: the override to set, with base()'s value
    field = override.split("=")[0]
    assert f"set {field} to such a value (default: " in text, text


def test_check_passes_every_config_and_what_num_epochs_and_warmup_allow():
  for name in CONFIGS:
    config_lib.check(get_config(name))
  c = config_lib.base()
  c.num_train_steps, c.num_epochs = 0, 10.0  # num_epochs > 0 sets the length
  config_lib.check(c)
  c.lr_boundaries, c.lr_unit, c.warmup = (), "steps", 400.0  # no lr drop: any warm-up
  config_lib.check(c)
  c.lr_boundaries = (400, 800)
  with pytest.raises(config_lib.ConfigError, match="the lr drops must come after the warm-up"):
    config_lib.check(c)


FUZZ_MESH = None


def refused_or_passed(config, overrides: list[str]) -> str | None:
  """None if `overrides` on `config` pass the command line's checks (the parser, config.check, the
  registries, the model's build, the batch against the 8 fake devices); else the one-line error,
  which must be a ValueError naming one of the fields (or its override)."""
  global FUZZ_MESH
  from cnn_depth import sharding

  FUZZ_MESH = FUZZ_MESH or sharding.data_mesh()
  try:
    parsed = config_lib.parse_overrides(config, overrides)
    train.check_config(parsed, FUZZ_MESH)
  except ValueError as e:
    text = str(e)
    assert text and "\n" not in text, (overrides, text)
    fields = [o.partition("=")[0].removeprefix("--config.") for o in overrides]
    named = [n for f in fields for n in (f, f.rsplit(".", 1)[-1], f.replace(".", " "))]
    named += [f.split(".")[0] for f in fields]
    assert any(n in text for n in named), (overrides, text)
    return text
  return None


def test_fuzzed_overrides_pass_or_raise_one_sentence_naming_the_field():
  """A few hundred generated sets of 1-3 overrides of random base() fields (wrong type, sign,
  range, shape, empty and huge strings, NaN, inf) through the command line's parser and checks:
  each passes or raises the one-line ValueError naming a field, never another exception.
  Derandomized, so the first tier is stable (3,000 random examples passed when it was written)."""
  from helpers.overrides import override
  from hypothesis import HealthCheck, given, settings
  from hypothesis import strategies as st

  seen = {"refused": 0, "passed": 0}

  @settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
  )
  @given(st.lists(override(), min_size=1, max_size=3))
  def run(overrides):
    refused = refused_or_passed(config_lib.base(), overrides) is not None
    seen["refused" if refused else "passed"] += 1

  run()
  assert seen["refused"] > 100 and seen["passed"] > 5, seen
