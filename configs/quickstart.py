"""The main job's runs: CIFAR-style plain nets and ResNets on the embedded digits dataset.

scikit-learn's 1,797 8x8 digits ship inside its wheel (no download). With He et al.'s recipe shrunk
to fit a 2-core CPU in minutes (batch 128, lr 0.1 /10 at 50% and 75% of the steps, 1-pixel pad/crop
augmentation, no flips), the deeper plain net trains worse than the shallower one while its ResNet
twin does not: the degradation problem. `make quickstart` runs depth 8 and 32 of both families.
  python scripts/train.py --config=configs/quickstart.py:depth=32,residual=False --workdir=runs/p32
"""

from cnn_depth import config as config_lib


def get_config(arg=None):
  a = config_lib.parse_args(arg, depth=8, residual=True, seed=0, steps=800)
  c = config_lib.digits(a["steps"], a["seed"])
  c.model.family = "cifar_resnet" if a["residual"] else "cifar_plain"
  c.model.depth = a["depth"]
  c.model.width = 16
  return c
