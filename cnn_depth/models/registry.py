"""The model families, one registry entry each, and `build_model`, which makes the model a config
names.

A family is a `Family`: how to build it from a depth and config fields, which optional
`config.model` fields it reads, what tables and figures call it, and the input it was designed for.
Each family's file registers its entries (`register(Family(...))`) when `cnn_depth.models` is
imported; adding a family is one new file and one import in `models/__init__.py`.

`build_model(config.model, num_classes=...)` passes a family the fields it reads and refuses, in one
sentence, any optional field the family does not read that is set to something other than
`config.base()`'s value: a setting is never silently ignored.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax.numpy as jnp

from cnn_depth import layers

# Fields every family reads besides family and depth.
COMMON_FIELDS = ("num_classes", "dtype", "conv_impl")
# A net may sow {'logits', 'weight'} entries here at training time (GoogLeNet's auxiliary heads):
# the train step adds their weighted losses to the objective.
AUX_COLLECTION = "aux_logits"


@dataclasses.dataclass(frozen=True)
class Field:
  """How `build_model` treats an optional `config.model` field (its default is config.base()'s)."""

  # Changes the variables' shapes: a workdir cannot resume with another value.
  shapes: bool = False
  # The values that leave the choice to the family: not passed to its builder.
  auto: Callable[[Any], bool] | None = None
  # Values besides the default that change nothing in a family that does not read the field.
  harmless: tuple = ()


FIELDS = {
  "width": Field(shapes=True, auto=lambda v: v == 0, harmless=(0,)),
  "shortcut": Field(shapes=True),
  "block": Field(shapes=True, auto=lambda v: v in ("", None), harmless=(None,)),
  "survival_last": Field(),
  "drop_mode": Field(),
  "stages": Field(harmless=("unroll",)),
  "unroll": Field(harmless=(1,)),
  "remat": Field(),
  "zero_init_last": Field(),
  "bn_groups": Field(),
  "bn_impl": Field(),
  "growth_rate": Field(shapes=True, auto=lambda v: v == 0),
  "dropout": Field(auto=lambda v: v is None or v < 0, harmless=(None,)),
  "aux_heads": Field(shapes=True),
  "reduce": Field(shapes=True),
  # Not a shape, but the same weights make another net with the other value: no resuming across it.
  "bottleneck_stride": Field(shapes=True),
  # The fixes for depth: norm and branch add or remove parameters; the activation, its transform
  # and the branch's constants make another net of the same weights; the initialisation only
  # draws the first weights.
  "norm": Field(shapes=True),
  "init": Field(),
  "sigma_w2": Field(),
  "sigma_b2": Field(),
  "activation": Field(shapes=True),
  "negative_slope": Field(shapes=True),
  "transform": Field(shapes=True),
  "dks_zeta": Field(shapes=True),
  "tat_eta": Field(shapes=True),
  "tat_tau": Field(shapes=True),
  "branch": Field(shapes=True),
  "nf_alpha": Field(shapes=True),
  "shortcut_weight": Field(shapes=True),
}


@dataclasses.dataclass(frozen=True)
class Published:
  """A net of the family as its paper gives it: `scripts/models_table.py` lists it with our counts
  beside the paper's. `params` and `macs` are (figure, where it comes from) where the paper gives
  one; `options` are config.model fields; the input is the family's unless given."""

  depth: int
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  params: tuple[float, str] | None = None
  macs: tuple[float, str] | None = None
  input_shape: tuple[int, int, int] | None = None
  num_classes: int | None = None


@dataclasses.dataclass(frozen=True)
class Family:
  """One model family.

  `build(depth, **options)` makes the net; options are the common fields and those of `fields` that
  the config sets. `label` names one net: a format string of `depth` ("ResNet-{depth}") or a
  function (depth, options) -> str. `title` names the family (a figure panel). `input_shape` and
  `num_classes` are the input it was designed for (the models table counts it there), and
  `published` the nets the models table lists.
  """

  name: str
  build: Callable[..., nn.Module]
  fields: tuple[str, ...]
  label: str | Callable[[int, Mapping[str, Any]], str]
  title: str
  input_shape: tuple[int, int, int] = (32, 32, 3)
  num_classes: int = 10
  published: tuple[Published, ...] = ()

  def __post_init__(self):
    unknown = sorted(set(self.fields) - set(FIELDS))
    if unknown:
      raise ValueError(
        f"family {self.name!r} reads fields {unknown} that config.model does not have;"
        f" known: {', '.join(FIELDS)}"
      )

  def net_label(self, depth: int, options: Mapping[str, Any] | None = None) -> str:
    """The name of the family's net of `depth` with `options`, e.g. 'ResNet-56'."""
    if callable(self.label):
      return self.label(depth, dict(options or {}))
    return self.label.format(depth=depth)


# Where a published figure comes from, when it is not from the family's own paper.
TORCHVISION = "Widely used reference count (torchvision); the paper does not list parameters."

FAMILIES: dict[str, Family] = {}


def register(family: Family, *, replace: bool = False) -> Family:
  """Adds `family` to the registry (a second family of the same name needs `replace=True`)."""
  if family.name in FAMILIES and not replace:
    raise ValueError(f"model family {family.name!r} is already registered")
  FAMILIES[family.name] = family
  return family


def unregister(name: str) -> None:
  FAMILIES.pop(name, None)


def get(name: str) -> Family:
  if name not in FAMILIES:
    raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
  return FAMILIES[name]


@functools.cache
def defaults() -> dict[str, Any]:
  """config.base()'s value of each optional model field: the value that asks for nothing."""
  from cnn_depth import config as config_lib

  model = config_lib.base().model.to_dict()
  return {name: model[name] for name in FIELDS}


def _asks_nothing(field: str, value) -> bool:
  spec = FIELDS[field]
  return (
    value == defaults()[field]
    or value in spec.harmless
    or (spec.auto is not None and spec.auto(value))
  )


def family_options(family: Family, config: Mapping[str, Any]) -> dict:
  """The builder's keyword arguments out of model config fields (without family and depth), or a
  ValueError naming a field that does not apply."""
  unknown = sorted(set(config) - set(FIELDS) - set(COMMON_FIELDS))
  if unknown:
    raise ValueError(
      f"unknown model config fields {unknown}; known: {sorted([*COMMON_FIELDS, *FIELDS])}"
    )
  options = {}
  for field, value in config.items():
    if field in COMMON_FIELDS or field in family.fields:
      spec = FIELDS.get(field)
      if spec is None or spec.auto is None or not spec.auto(value):
        options[field] = value
    elif not _asks_nothing(field, value):
      readers = [f.name for f in FAMILIES.values() if field in f.fields]
      raise ValueError(
        f"model field {field}={value!r} does not apply to family {family.name!r}; it applies to "
        f"{', '.join(readers) or 'no registered family'}: leave it out or reset it "
        f"(to {defaults()[field]!r})"
      )
  if "dtype" in options:
    options["dtype"] = jnp.dtype(options["dtype"])
  if "bn_impl" in options:
    layers.check_bn_impl(options["bn_impl"])  # here too: BatchNorm checks it only when it runs
  return options


def build_model(config: Mapping[str, Any], **overrides) -> nn.Module:
  """The model `config` describes: an ml_collections `config.model` or a dict with `family`, `depth`
  and optional fields (config.base() lists them), with `overrides` (e.g. num_classes=10) on top."""
  cfg = {**dict(config), **overrides}
  family = get(cfg.pop("family"))
  depth = int(cfg.pop("depth"))
  return family.build(depth, **family_options(family, cfg))


def shape_fields() -> tuple[str, ...]:
  """The model fields that change the variables' shapes (with family and depth): a workdir
  trained with other values cannot resume."""
  return ("family", "depth", *(name for name, spec in FIELDS.items() if spec.shapes))


def only(depth: int, valid, net: str) -> None:
  """A ValueError naming the valid depths and the nearest one, unless `depth` is in `valid`."""
  if depth not in valid:
    near = min(valid, key=lambda d: (abs(d - depth), d))
    raise ValueError(f"{net} depth must be one of {sorted(valid)}; got {depth} (nearest: {near})")
