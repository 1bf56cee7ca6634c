"""He et al. 2016b ("Identity mappings"): pre-activation ResNets on CIFAR-10.

ResNet-164 and 1001 use bottleneck blocks (9n+2), ResNet-110 basic blocks (6n+2). Same schedule as
He et al. 2016 (lr 0.1, /10 at 32k and 48k, 64k iterations, batch 128), warm-up at 0.01 for 400
iterations for the deep nets.
  python scripts/train.py --config=configs/cifar_preact.py:depth=164 --workdir=runs/preact164
"""

from cnn_depth import config as config_lib


def get_config(arg=None):
  a = config_lib.parse_args(arg, depth=164, block="bottleneck", seed=0)
  c = config_lib.base()
  c.seed = a["seed"]
  c.model.family = "cifar_preact"
  c.model.depth = a["depth"]
  c.model.shortcut = "B"
  c.model.block = a["block"]
  c.warmup = 0.00625 if a["depth"] >= 110 else 0.0  # 400 of the 64k iterations
  return c
