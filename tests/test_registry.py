"""cnn_depth/models/registry.py: one entry per family, and the fields build_model lets through."""

import pytest

from cnn_depth import config as config_lib
from cnn_depth import models, train
from cnn_depth.models import registry


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
