"""He et al. 2016 §3.4: ImageNet ResNets (18/34/50/101/152) and plain-18/34.

Batch 256, SGD momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at epochs 30 and 60, 90 epochs
(the paper divides "when the error plateaus", 60e4 iterations; 30/60/90 is the common fixed
version). Needs the TFDS imagenet2012 dataset prepared under --config.dataset.data_dir.
  python scripts/train.py --config=configs/imagenet_resnet.py:depth=50 --workdir=runs/in50 \
      --config.dataset.data_dir=/data/tfds
"""

from cnn_depth import config as config_lib


def get_config(arg=None):
  a = config_lib.parse_args(arg, depth=18, residual=True, seed=0)
  c = config_lib.base()
  c.seed = a["seed"]
  c.dataset.name = "imagenet2012"
  c.model.family = "imagenet_resnet" if a["residual"] else "imagenet_plain"
  c.model.depth = a["depth"]
  c.model.width = 64
  c.model.shortcut = "B"
  c.model.dtype = "bfloat16"
  c.batch_size = 256
  c.num_epochs = 90.0
  c.lr_boundaries = (30 / 90, 60 / 90)  # of the run: epochs 30 and 60 of 90
  c.log_every_steps = 500
  c.eval_every_steps = 5_004  # once an epoch: 1,281,167 // 256 steps
  c.checkpoint_every_steps = 5_004
  return c
