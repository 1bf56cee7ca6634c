"""cnn_depth/models/fixes.py: the named presets of the fixes for depth are valid training configs,
their loop depths are the nets whose stages compile to loops, and a preset is one entry. The nets
they build, trained two steps each: tests/models/test_resnet.py; compiled for an H100:
benchmarks/gpu_compile_check.sh."""

import dataclasses

import pytest

from cnn_depth import config as config_lib
from cnn_depth import models
from cnn_depth.models import fixes


@pytest.mark.parametrize("name", sorted(fixes.PRESETS))
def test_each_preset_is_a_valid_training_config(name):
  """Its fields pass scripts/train.py's parser and checks as --config overrides and build the net
  its model fields alone build (the tests' and the benchmark's), but for the scan's unroll factor
  (the config's 0 is the backend's choice): so a preset sets every field where config.base()'s
  default and the family's differ (cifar_preact's projection shortcuts)."""
  preset = fixes.PRESETS[name]
  overrides = [f"--config.model.{k}={v}" for k, v in preset.model.items()]
  overrides += [f"--config.{k}={v}" for k, v in preset.train.items()]
  config = config_lib.parse_overrides(config_lib.base(), overrides)
  net, twin = models.build_model(config.model), models.build_model(preset.model)
  fields = lambda m: {f.name: getattr(m, f.name) for f in dataclasses.fields(m)}
  assert fields(net) == {**fields(twin), "unroll": 0}


def test_loop_depth_is_the_first_depth_with_three_blocks_a_stage():
  """A stage scans its blocks after the first: with two blocks that is a scan of one, which XLA
  compiles to no loop (ResNet-14 for an H100: no while loop; ResNet-20: 18 loop iterations)."""
  depths = {name: fixes.loop_depth(p) for name, p in fixes.PRESETS.items()}
  assert depths == {name: 29 if "bottleneck" in name else 20 for name in fixes.PRESETS}


def test_a_preset_is_one_entry_and_bad_ones_are_refused():
  toy = fixes.Preset("toy", "a toy", dict(family="cifar_resnet", depth=14), dict(grad_clip="agc"))
  fixes.register(toy)
  try:
    assert fixes.get("toy") is toy and fixes.loop_depth(toy) == 20
    assert toy.optimizer_fixes() == {"grad_clip": "agc"}
    with pytest.raises(ValueError, match="fix preset 'toy' is already registered"):
      fixes.register(toy)
  finally:
    del fixes.PRESETS["toy"]
  with pytest.raises(
    ValueError, match="'toy' is not a fix preset; choose from vanilla_tanh, fixup"
  ):
    fixes.get("toy")
  with pytest.raises(ValueError, match=r"preset 'x' sets train fields \['momentum'\]"):
    fixes.Preset("x", "", dict(family="cifar_resnet", depth=8), dict(momentum=0.5))
  with pytest.raises(ValueError, match="preset 'x' needs its model's family and depth"):
    fixes.Preset("x", "", dict(family="cifar_resnet"))


def test_distinct_fixes_leave_out_only_the_same_fix_on_another_block():
  """The GPU compile check compiles `distinct_fixes`: the bottleneck presets are left out, and every
  value of every field a preset sets (the net's family, depth and block aside) is still there."""
  kept = fixes.distinct_fixes()
  assert [p.name for p in kept] == [
    n for n in fixes.PRESETS if n not in ("fixup_bottleneck", "nf_bottleneck")
  ]

  def values(presets):
    return {
      (k, repr(v))
      for p in presets
      for k, v in [*p.model.items(), *p.train.items()]
      if k not in fixes.NET_FIELDS
    }

  assert values(kept) == values(fixes.PRESETS.values())
