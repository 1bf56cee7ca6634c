"""CIFAR-10 VGG-11/13/16/19: the plain-net side of a depth comparison with configs/cifar_resnet.py.

Simonyan & Zisserman's stacks (configurations A/B/D/E) on 32x32 images, then a global average (1x1
after five pools) and one dense layer (cnn_depth/models/vgg.py, family cifar_vgg_bn / cifar_vgg).
Trained with He et al.'s CIFAR recipe (batch 128, lr 0.1 /10 at 32k and 48k iterations, 64k in all,
weight decay 1e-4, pad/crop + flip), so the net is the only difference from a cifar_resnet run.

  python scripts/train.py --config=configs/cifar_vgg.py:depth=19 --workdir=runs/vgg19 \
      --config.dataset.data_dir=/data/cifar
  python scripts/lesion.py --workdir=runs/vgg19,runs/r110 --labels=VGG-19,ResNet-110   # Veit et al.

Arguments: depth (16; 11, 13, 16 or 19), bn (True: BN after every convolution), seed (0). Without BN
the learning rate is 0.01, Simonyan & Zisserman's initial rate for their BN-free nets.
"""

from cnn_depth import config as config_lib


def get_config(arg=None):
  a = config_lib.parse_args(arg, depth=16, bn=True, seed=0)
  c = config_lib.base()
  c.seed = a["seed"]
  c.model.family = "cifar_vgg_bn" if a["bn"] else "cifar_vgg"
  c.model.depth = a["depth"]
  c.model.width = 64  # 64-128-256-512-512 maps
  if not a["bn"]:
    c.learning_rate = 0.01
  return c
