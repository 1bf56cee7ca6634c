"""Counting without running (cnn_depth/models/counting.py): torchvision's exact parameter counts of
the classic ImageNet nets, and the multiply-adds a 1x1 reduction saves (the ResNets' counts:
tests/models/test_resnet.py; each classic family's own: its test file).

Counts come from `jax.eval_shape` (nothing is initialised), so even VGG-19's 144M parameters cost
well under a second.
"""

import flax.linen as nn
import pytest
from helpers.nets import IMAGENET, build, n_params

from cnn_depth import layers, models


@pytest.mark.parametrize(
  "family,depth,count",
  [
    ("alexnet", 8, 61_100_840),
    ("vgg", 11, 132_863_336),
    ("vgg", 13, 133_047_848),
    ("vgg", 16, 138_357_544),
    ("vgg", 19, 143_667_240),
    (
      "vgg_bn",
      16,
      138_365_992,
    ),  # torchvision's vgg16_bn: BN after convolutions that keep their bias
    ("imagenet_densenet", 121, 7_978_856),
  ],
)
def test_exact_imagenet_counts(family, depth, count):
  """torchvision's counts at 1000 classes (the papers give them only to 2-3 digits)."""
  assert n_params(build(family, depth), IMAGENET) == count


class _FiveByFive(nn.Module):
  """A 5x5 conv to 32 maps, optionally after a 1x1 reduction to 16 maps (the lecture example)."""

  reduce: bool

  @nn.compact
  def __call__(self, x, *, train):
    if self.reduce:
      x = layers.Conv(16, 1)(x)
    return layers.Conv(32, 5)(x)


def test_one_by_one_reduction_saves_multiply_adds():
  shape = (28, 28, 192)
  assert (
    models.multiply_adds(_FiveByFive(False), shape) == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
  )
  assert (
    models.multiply_adds(_FiveByFive(True), shape)
    == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16
    == 12_443_648
  )
