"""VGG-style plain nets of increasing depth on the embedded digits (8x8x1, no download).

The plain side of the quickstart's depth comparison (configs/quickstart.py trains the ResNets with
the same recipe: batch 128, lr 0.1 /10 at 50% and 75% of the steps, 1-pixel pad/crop, no flips). The
CIFAR VGG stacks run on 8x8 images by pooling only after the last three of their five stages
(8 -> 4 -> 2 -> 1; models/vgg.py), so stages 0-1 see the full 8x8 map. Width 16 gives
16-32-64-128-128 maps.

  python scripts/train.py --config=configs/vgg_digits.py:depth=19 --workdir=runs/vgg19_digits
  # Veit et al.: deleting a VGG layer (where shapes allow) vs a block
  python scripts/lesion.py --workdir=runs/vgg19_digits,runs/quickstart/resnet32 \
      --labels=VGG-19,ResNet-32

Arguments: depth (11; 11, 13, 16 or 19), bn (True), seed (0), steps (800), width (16). Without BN
the learning rate is 0.01, as in configs/cifar_vgg.py.
"""

from cnn_depth import config as config_lib


def get_config(arg=None):
  a = config_lib.parse_args(arg, depth=11, bn=True, seed=0, steps=800, width=16)
  c = config_lib.digits(a["steps"], a["seed"])  # the quickstart's recipe
  c.model.family = "cifar_vgg_bn" if a["bn"] else "cifar_vgg"
  c.model.depth = a["depth"]
  c.model.width = a["width"]
  if not a["bn"]:
    c.learning_rate = 0.01
  return c
