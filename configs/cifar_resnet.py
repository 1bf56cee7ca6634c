"""He et al. 2016 §4.2: CIFAR-10 ResNets and plain nets of depth 6n+2.

  python scripts/train.py --config=configs/cifar_resnet.py:depth=110 --workdir=runs/r110 \
      --config.dataset.data_dir=/data/cifar

Arguments: depth (20), residual (True), shortcut (A), seed (0). ResNet-110 and deeper warm up at
lr 0.01 for 400 iterations, as the paper does (it waits until training error < 80%, ~400
iterations).
"""

from cnn_depth import config as config_lib


def get_config(arg=None):
  a = config_lib.parse_args(arg, depth=20, residual=True, shortcut="A", seed=0)
  c = config_lib.base()
  c.seed = a["seed"]
  c.model.family = "cifar_resnet" if a["residual"] else "cifar_plain"
  c.model.depth = a["depth"]
  c.model.shortcut = a["shortcut"]
  c.warmup = 0.00625 if a["depth"] >= 110 else 0.0  # 400 of the 64k iterations
  return c
