"""Huang et al. 2016: ResNet-110 with stochastic depth on CIFAR-10.

500 epochs, batch 128, SGD with Nesterov momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at
epochs 250 and 375; survival probability decays linearly from 1 to p_L = 0.5 over the 54 blocks.
`survival_last=1.0` gives the constant-depth baseline trained with the same recipe.
  python scripts/train.py --config=configs/stochastic_depth.py --workdir=runs/sd110
"""

from cnn_depth import config as config_lib


def get_config(arg=None):
  a = config_lib.parse_args(arg, depth=110, survival_last=0.5, seed=0)
  c = config_lib.base()
  c.seed = a["seed"]
  c.model.family = "cifar_resnet"
  c.model.depth = a["depth"]
  c.model.survival_last = a["survival_last"]
  c.num_epochs = 500.0
  c.lr_boundaries = (0.5, 0.75)  # of the run: epochs 250 and 375 of 500
  c.nesterov = True
  c.eval_every_steps = 390  # once an epoch: 50,000 // 128 steps
  return c
