"""cnn_depth/models/registry.py: one entry per family, and the fields build_model lets through; and
what every classic family (LeNet-5, AlexNet, VGG, NiN, GoogLeNet, DenseNet) does alike: its tiny
variant's output shapes and one training step through the project's own train step, its refusals
of configs and inputs (each family's own tests: tests/models/test_<family>.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.nets import CIFAR, KEY, MEAN, STD, TINY

from cnn_depth import config as config_lib
from cnn_depth import models, optim, steps, train
from cnn_depth import state as state_lib
from cnn_depth.models import alexnet, densenet, lenet, registry


def test_the_registry_knows_every_field_of_the_config_and_no_other():
  model_fields = set(config_lib.base().model.to_dict()) - {"family", "depth"}
  assert model_fields == set(registry.FIELDS) | set(registry.COMMON_FIELDS) - {"num_classes"}


def test_every_family_reads_only_known_fields_and_names_its_nets():
  assert list(registry.FAMILIES)[:5] == [
    "cifar_resnet",
    "cifar_plain",
    "cifar_preact",
    "imagenet_resnet",
    "imagenet_plain",
  ]
  for family in registry.FAMILIES.values():
    assert set(family.fields) <= set(registry.FIELDS)
  get = lambda name, depth, **o: registry.get(name).net_label(depth, o)
  assert get("cifar_resnet", 56) == "ResNet-56" and get("cifar_plain", 20) == "plain-20"
  assert get("cifar_preact", 110, block="basic") == "PreAct ResNet-110 (basic)"
  assert get("cifar_densenet_bc", 190) == "DenseNet-BC (L=190, k=40)"


def test_the_resume_fields_are_the_shape_fields():
  assert set(train.resume_fields()) == {
    "model.family",
    "model.depth",
    "model.width",
    "model.shortcut",
    "model.block",
    "model.growth_rate",
    "model.aux_heads",
    "model.reduce",
    "model.bottleneck_stride",  # not a shape, but the same weights make another net
    "model.norm",  # the fixes for depth that add parameters or make another net of them
    "model.branch",
    "model.activation",
    "model.negative_slope",
    "model.transform",
    "model.dks_zeta",
    "model.tat_eta",
    "model.tat_tau",
    "model.nf_alpha",
    "model.shortcut_weight",
    "dataset.name",
    "dataset.validation_size",
    "batch_size",
    "seed",
  }


def test_default_and_family_choice_values_ask_nothing():
  """config.base()'s values, and 0 / '' / a negative dropout ("the family's own choice"), are
  accepted by a family that does not read the field, and not passed to one that does."""
  base = {**config_lib.base().model.to_dict(), "num_classes": 10}
  net = models.build_model({**base, "family": "lenet5", "depth": 5})
  assert type(net).__name__ == "LeNet5"
  vgg = models.build_model({**base, "family": "cifar_vgg_bn", "depth": 11, "width": 0})
  assert vgg.width == 64  # the family's own default
  resnet = models.build_model({**base, "width": 0, "block": ""})
  assert resnet.stage_widths == (16, 32, 64) and resnet.block == "basic"


def test_a_family_is_registered_once():
  with pytest.raises(ValueError, match="already registered"):
    models.register(registry.get("cifar_resnet"))
  with pytest.raises(ValueError, match="reads fields \\['depth_multiplier'\\]"):
    registry.Family("wide", models.cifar_resnet, ("depth_multiplier",), "W-{depth}", "wide nets")


# --- every classic family -------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TINY))
def test_output_shapes_in_both_modes(name):
  """Shapes only (jax.eval_shape: nothing compiles): logits, and the BN statistics a training
  forward updates; the training forward draws its dropout from the 'drop' stream."""
  make, shape = TINY[name]
  model = make()
  x = jnp.zeros((3,) + shape)
  variables = jax.eval_shape(lambda: model.init(KEY, x, train=False))
  logits = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
  assert logits.shape == (3, 10) and logits.dtype == jnp.float32
  logits, updates = jax.eval_shape(
    lambda v: model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"drop": KEY}), variables
  )
  assert logits.shape == (3, 10)
  assert jax.tree_util.tree_structure(
    updates.get("batch_stats", {})
  ) == jax.tree_util.tree_structure(variables.get("batch_stats", {}))


# NiN and the ImageNet-head VGG train like the others (plain convolutions, pools, dropout: nothing
# these five do not have); leaving their steps out keeps this file near a minute on a cold 2-core
# CPU.
TRAINED = ("lenet5", "alexnet", "cifar_vgg_bn", "googlenet", "cifar_densenet_bc")


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAINED)
def test_one_training_step(name):
  make, shape = TINY[name]
  model = make()
  tx = optim.sgd(0.01, weight_decay=0.0)  # so a parameter moves only by its gradient
  rng = np.random.default_rng(0)
  batch = {
    "image": rng.integers(0, 256, (4,) + shape, dtype=np.uint8),
    "label": rng.integers(0, 10, (4,), dtype=np.int32),
  }
  mean, std = MEAN[: shape[-1]], STD[: shape[-1]]
  state = state_lib.create_train_state(model, tx, KEY, shape)
  before = jax.tree_util.tree_map(np.asarray, state.params)  # host copies from before the step
  step = steps.compile_train_step(model, tx, mean, std, augment=False, log_block_norms=True)
  new, metrics = step(state, batch)
  assert int(new.step) == 1 and np.isfinite(float(metrics["loss_sum"]))
  assert int(metrics["count"]) == 4 and int(metrics["nonfinite"]) == 0
  assert metrics["block_grad_norms"].shape == (model.num_blocks,)
  # Parameters move only by their gradients: the head's and the auxiliary heads' (their own loss)
  # all do, and nearly every other array (a tiny branch behind a dead ReLU may not, on 4 images).
  moved = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), before, new.params)
  outputs = {k: moved[k] for k in ("head", "aux1", "aux2") if k in moved}
  assert "head" in outputs and all(jax.tree_util.tree_leaves(outputs)), outputs
  assert ("aux1" in outputs and "aux2" in outputs) == (name == "googlenet")
  flags = jax.tree_util.tree_leaves(moved)
  assert sum(flags) >= 0.9 * len(flags), moved
  # The eval step on the new state: shapes only (no second compilation).
  ev = jax.eval_shape(
    lambda s, b: steps.eval_step(s, b, model=model, mean=mean, std=std), new, batch
  )
  assert ev["correct"].shape == ()


@pytest.mark.parametrize(
  "cfg,match",
  [
    (
      {"family": "vgg", "depth": 12},
      r"VGG depth must be one of \[11, 13, 16, 19\]; got 12 \(nearest: 11\)",
    ),
    ({"family": "cifar_vgg_bn", "depth": 20}, r"one of \[11, 13, 16, 19\]; got 20 \(nearest: 19\)"),
    ({"family": "cifar_densenet", "depth": 41}, r"3n\+4 .*nearest valid depths: 40 and 43"),
    ({"family": "cifar_densenet_bc", "depth": 99}, r"6n\+4 .*nearest valid depths: 94 and 100"),
    (
      {"family": "imagenet_densenet", "depth": 120},
      r"\[121, 161, 169, 201, 264\] .*8n\+5 .*got 120",
    ),
    ({"family": "lenet5", "depth": 7}, r"LeNet-5 depth must be one of \[5\]"),
    ({"family": "alexnet", "depth": 5}, r"AlexNet depth must be one of \[8\]"),
    ({"family": "nin", "depth": 10}, r"NiN depth must be one of \[9, 12\]"),
    ({"family": "googlenet", "depth": 21}, r"GoogLeNet depth must be one of \[22\]"),
    (
      {"family": "vgg", "depth": 16, "growth_rate": 12},
      r"growth_rate=12 does not apply to family 'vgg'; it applies to cifar_densenet",
    ),
    (
      {"family": "cifar_densenet", "depth": 40, "width": 32},
      r"width=32 does not apply .* reset it \(to 16\)",
    ),
    (
      {"family": "cifar_vgg", "depth": 11, "survival_last": 0.5},
      r"survival_last=0.5 does not apply to family 'cifar_vgg'; it applies to cifar_resnet",
    ),
    (
      {"family": "alexnet", "depth": 8, "bn_groups": 8},
      r"bn_groups=8 does not apply to family 'alexnet'",
    ),
    (
      {"family": "cifar_resnet", "depth": 20, "aux_heads": True},
      r"aux_heads=True does not apply to family 'cifar_resnet'; it applies to googlenet",
    ),
    ({"family": "vggg", "depth": 16}, r"unknown model family 'vggg'"),
  ],
)
def test_invalid_configs_are_refused_with_one_sentence(cfg, match):
  with pytest.raises(ValueError, match=match):
    models.build_model(cfg)


def test_a_config_built_on_the_base_fields_builds_a_classic_net():
  """config.base()'s ResNet fields at their defaults are accepted (and ignored) by the classic
  nets."""
  from cnn_depth import config as config_lib

  cfg = {
    **config_lib.base().model.to_dict(),
    "family": "cifar_densenet_bc",
    "depth": 100,
    "width": 0,
    "num_classes": 10,
  }
  model = models.build_model(cfg)
  assert isinstance(model, densenet.DenseNet) and model.growth_rate == 12
  net = models.build_model(
    {**cfg, "family": "cifar_vgg_bn", "depth": 19, "width": 16, "dropout": 0.3}
  )
  assert (net.width, net.bn, net.dropout, net.stage_sizes) == (16, True, 0.3, (2, 2, 4, 4, 4))
  # config.base()'s own width (16) asks nothing of a family that does not read it.
  assert models.build_model({**cfg, "width": 16}).growth_rate == 12


def test_inputs_the_nets_cannot_take_are_refused():
  with pytest.raises(ValueError, match="at most 32x32"):
    models.init_shapes(lenet.lenet5(), (64, 64, 1))
  with pytest.raises(ValueError, match="at least 63x63"):
    models.init_shapes(alexnet.alexnet(), (32, 32, 3))
  with pytest.raises(ValueError, match="no blocks to gate"):
    lenet.lenet5().init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)), train=False, gates=np.ones(3))
  with pytest.raises(ValueError, match="compression theta"):
    models.init_shapes(densenet.cifar_densenet(40, compression=1.5), CIFAR)
