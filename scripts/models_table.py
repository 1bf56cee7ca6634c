"""Print the parameter and multiply-add counts of every model family and depth, beside the papers'
figures.

    python scripts/models_table.py                      # Markdown table, all families
    python scripts/models_table.py --families=cifar_resnet,imagenet_resnet
    python scripts/models_table.py --json               # the same rows as a JSON list

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
"""

from __future__ import annotations

from typing import Sequence

from absl import app, flags

from cnn_depth import models
from cnn_depth.models import table

_JSON = flags.DEFINE_bool(
  "json", False, "Print the rows as a JSON list instead of a Markdown table."
)
_FAMILIES = flags.DEFINE_list(
  "families",
  None,
  f"Comma-separated families to list (default: all of {', '.join(models.FAMILIES)}).",
)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    print(table.render(_FAMILIES.value, as_json=_JSON.value))
  except ValueError as e:
    raise app.UsageError(str(e)) from e


if __name__ == "__main__":
  app.run(main)
