"""Named presets of the fixes for depth (#24): each a CIFAR net with one fix, or the combination its
paper trains, and the optimiser settings the paper uses with it, at the smallest depth it is defined
at (ResNet-8; bottlenecks 11; TAT's plain net 14).

One list serves three checks: tests/models/test_resnet.py builds, traces and trains every preset,
`scripts/benchmark.py --fixes=fixup,nf` benchmarks them by name, and
benchmarks/gpu_compile_check.sh compiles each one's train step for an H100. A preset's fields are
a training config's (`--config.model.<field>`, `--config.<field>`), set wherever config.base()'s
default and the family's own differ, so that the config and the fields alone build one net.
Adding a preset is one `register(Preset(...))` call.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

# optim.with_fixes's arguments, and the other top-level config field a preset may set.
OPTIMIZER_FIELDS = ("grad_clip", "clip_lambda", "scalar_lr_scale")
TRAIN_FIELDS = (*OPTIMIZER_FIELDS, "learning_rate")


@dataclasses.dataclass(frozen=True)
class Preset:
  """`model`: config.model fields, family and depth included; `train`: top-level config fields of
  TRAIN_FIELDS (the optimiser's fixes, and a learning rate where He et al.'s 0.1 diverges)."""

  name: str
  about: str
  model: Mapping[str, Any]
  train: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if not {"family", "depth"} <= set(self.model):
      raise ValueError(f"preset {self.name!r} needs its model's family and depth")
    unknown = sorted(set(self.train) - set(TRAIN_FIELDS))
    if unknown:
      raise ValueError(
        f"preset {self.name!r} sets train fields {unknown}; a preset's train takes "
        f"{', '.join(TRAIN_FIELDS)}"
      )

  def optimizer_fixes(self) -> dict[str, Any]:
    """The keyword arguments of `optim.with_fixes` this preset sets."""
    return {k: v for k, v in self.train.items() if k in OPTIMIZER_FIELDS}


PRESETS: dict[str, Preset] = {}


def register(preset: Preset, *, replace: bool = False) -> Preset:
  """Adds `preset` (a second one of the same name needs `replace=True`)."""
  if preset.name in PRESETS and not replace:
    raise ValueError(f"fix preset {preset.name!r} is already registered")
  PRESETS[preset.name] = preset
  return preset


def get(name: str) -> Preset:
  if name not in PRESETS:
    raise ValueError(f"{name!r} is not a fix preset; choose from {', '.join(PRESETS)}")
  return PRESETS[name]


# The fields that choose the net a fix is applied to, not the fix.
NET_FIELDS = ("family", "depth", "block")


def distinct_fixes() -> list[Preset]:
  """The presets in order, less those whose fix (every field but NET_FIELDS, and the optimiser's)
  an earlier preset already has: the bottleneck presets, the same fixes on the other block. What
  the GPU compile check compiles, each option value once (bottleneck blocks are compiled there by
  the cifar_preact family, and on the CPU with every fix by the tests)."""
  seen, out = [], []
  for preset in PRESETS.values():
    fix = ({k: v for k, v in preset.model.items() if k not in NET_FIELDS}, dict(preset.train))
    if fix not in seen:
      seen.append(fix)
      out.append(preset)
  return out


def loop_depth(preset: Preset) -> int:
  """The smallest depth >= the preset's whose every stage scans a loop: three blocks a stage (the
  first stands alone, and a scan of one block compiles to no loop); ResNet-20, bottlenecks 29."""
  from cnn_depth import models

  for depth in range(int(preset.model["depth"]), 1000):
    try:
      model = models.build_model({**preset.model, "depth": depth})
    except ValueError:  # not a depth of the net's form (6n+2, 9n+2)
      continue
    if min(model.stage_sizes) >= 3:
      return depth
  raise ValueError(f"preset {preset.name!r} has no depth below 1000 whose stages scan")


# --------------------------------------------------------------------------------------------------
# The entries: the combinations #24 names, and each branch rule.

register(
  Preset(
    "vanilla_tanh",
    "no BN, delta-orthogonal kernels, tanh near the critical line (Xiao et al. 2018)",
    dict(
      family="cifar_plain",
      depth=8,
      norm="none",
      init="delta_orthogonal",
      activation="tanh",
      sigma_w2=1.2,
      sigma_b2=0.05,
    ),
    dict(learning_rate=0.01),
  )
)
register(
  Preset(
    "fixup",
    "Fixup with its lr/10 for scalars and the classifier's bias (Zhang et al. 2019)",
    dict(family="cifar_resnet", depth=8, norm="none", branch="fixup"),
    dict(scalar_lr_scale=0.1),
  )
)
register(
  Preset(
    "nf",
    "NF-ResNet, scaled WS, with adaptive gradient clipping (Brock et al. 2021)",
    dict(family="cifar_preact", depth=8, block="basic", shortcut="B", norm="ws", branch="nf"),
    dict(grad_clip="agc"),
  )
)
register(  # Fixup's m = 3: L^(-1/4)
  Preset(
    "fixup_bottleneck",
    "Fixup on bottleneck blocks (Zhang et al. 2019)",
    dict(family="cifar_resnet", depth=11, block="bottleneck", norm="none", branch="fixup"),
    dict(scalar_lr_scale=0.1),
  )
)
register(  # NF-ResNet's own block (deepmind-research nfnets/nf_resnet.py)
  Preset(
    "nf_bottleneck",
    "NF-ResNet on its bottleneck blocks, with AGC (Brock et al. 2021)",
    dict(family="cifar_preact", depth=11, shortcut="B", norm="ws", branch="nf"),
    dict(grad_clip="agc"),
  )
)
register(
  Preset(
    "tat",
    "TAT's leaky ReLU on a plain net (Zhang, Botev & Martens 2022)",
    dict(
      family="cifar_plain",
      depth=14,  # eta = 0.9 is out of reach for plain-8: its C(0) stays below 0.9
      norm="none",
      activation="leaky_relu",
      transform="tat",
      init="suo",
      sigma_w2=1.0,
    ),
    dict(learning_rate=0.001),
  )
)
register(
  Preset(
    "dks_normalized",
    "DKS's softplus with normalised sums (Martens et al. 2021)",
    dict(
      family="cifar_resnet",
      depth=8,
      shortcut="B",
      norm="none",
      activation="softplus",
      transform="dks",
      init="suo",
      sigma_w2=1.0,
      branch="normalized",
      shortcut_weight=0.8,
    ),
    dict(learning_rate=0.01),
  )
)
register(
  Preset(
    "skipinit",
    "x + alpha f(x), alpha = 0, no BN (De & Smith 2020)",
    dict(family="cifar_resnet", depth=8, norm="none", branch="skipinit"),
  )
)
register(
  Preset(
    "rezero_bn",
    "ReZero's alpha on pre-activation blocks with BN (Bachlechner et al. 2020)",
    dict(family="cifar_preact", depth=8, block="basic", shortcut="B", branch="rezero"),
  )
)
register(
  Preset(
    "depth_mup",
    "each branch times 1/sqrt(L) (Yang et al. 2023; Bordelon et al. 2023)",
    dict(family="cifar_resnet", depth=8, branch="depth_mup"),
  )
)
