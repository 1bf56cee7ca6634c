"""CIFAR-10 DenseNet and DenseNet-BC (Huang et al. 2017, Table 2) with the CIFAR ResNets' recipe.

  python scripts/train.py --config=configs/cifar_densenet.py:depth=100,bc=True \
      --workdir=runs/dbc100 --config.dataset.data_dir=/data/cifar

Arguments: depth (40; 3n+4, or 6n+4 with bc), bc (False: BN-ReLU-conv3x3 layers; True: bottleneck
layers and compression 0.5), growth_rate (0: the paper's k for the depth, 12 except BC-190 (40) and
BC-250 (24)), seed (0). The paper trains 300 epochs at batch 64 with lr /10 at 50% and 75% and
dropout 0.2 without augmentation; this config keeps He et al.'s 64k-iteration recipe so that the net
is the only difference from a configs/cifar_resnet.py run (override --config.num_epochs etc. for the
paper's).
"""

from cnn_depth import config as config_lib


def get_config(arg=None):
  a = config_lib.parse_args(arg, depth=40, bc=False, growth_rate=0, seed=0)
  c = config_lib.base()
  c.seed = a["seed"]
  c.model.family = "cifar_densenet_bc" if a["bc"] else "cifar_densenet"
  c.model.depth = a["depth"]
  c.model.width = 0  # DenseNets are sized by the growth rate
  c.model.growth_rate = a["growth_rate"]
  return c
