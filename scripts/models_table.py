"""Print the parameter and multiply-add counts of every model family and depth, beside the papers'
figures.

    python scripts/models_table.py                      # Markdown table, all families
    python scripts/models_table.py --families=cifar_resnet,imagenet_resnet
    python scripts/models_table.py --json               # the same rows as a JSON list
    python scripts/models_table.py --fixes              # the fixes for depth: every option

Counts come from `cnn_depth.models` (`init_shapes`, `count_params`, `multiply_adds`), all through
`jax.eval_shape`: nothing is computed, so even ResNet-1202 and ResNet-152 take seconds on a CPU.
`params` is every trainable parameter (convolutions, dense head, BN scales and offsets; BN running
statistics are not parameters); `macs` is forward multiply-adds per image of the convolutions and
the dense head, which is what He et al. call "FLOPs".

The rows are the registry's: every family's `published` nets, each with the figures its paper gives
and where they come from (the family's file holds them), counted on the input the family (or the
net) was designed for: LeNet-5 on 32x32x1 (10 classes), the CIFAR families on CIFAR-10, the
ImageNet ones and NiN-12 on ImageNet. The GoogLeNet rows without 1x1 reductions and with the
auxiliary heads show what those options cost. A new family's `published` nets appear here unasked.
The table is made by `cnn_depth/models/table.py`.

`--fixes` lists instead the fixes for depth that the CIFAR families take: each value of
config.model.norm, init, activation, transform and branch, and of the optimiser's grad_clip and
scalar_lr_scale, with what it does, its paper and the numeric fields it reads (with their defaults),
from the registries that hold them.
"""

from __future__ import annotations

from typing import Sequence

from absl import app, flags

from cnn_depth import models
from cnn_depth.models import table

_JSON = flags.DEFINE_bool(
  "json", False, "Print the rows as a JSON list instead of a Markdown table."
)
_FIXES = flags.DEFINE_bool(
  "fixes", False, "List the fixes for depth (every option of the CIFAR families) instead."
)
_FAMILIES = flags.DEFINE_list(
  "families",
  None,
  f"Comma-separated families to list (default: all of {', '.join(models.FAMILIES)}).",
)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if _FIXES.value and _FAMILIES.value is not None:
    raise app.UsageError("--fixes lists the fixes for depth of the CIFAR families: drop --families")
  if _FIXES.value:
    print(table.render_fixes(as_json=_JSON.value))
    return
  try:
    print(table.render(_FAMILIES.value, as_json=_JSON.value))
  except ValueError as e:
    raise app.UsageError(str(e)) from e


if __name__ == "__main__":
  app.run(main)
