"""Nets for tests that need no training: numpy-drawn variables, the variables of a net with one
block taken out, and the classic families' tiny variants (tests/models/test_lenet.py ...
test_densenet.py, test_registry.py)."""

import jax
import numpy as np

from cnn_depth import models
from cnn_depth.models import alexnet, densenet, googlenet, lenet, nin, vgg


def random_variables(model, image_shape, seed=0):
  """The model's variables with random values: He-normal (fan-in) kernels, BN parameters and running
  statistics near the identity."""
  rng = np.random.default_rng(seed)
  shapes = models.init_shapes(model, image_shape)

  def leaf(path, a):
    name, shape = path[-1].key, a.shape
    if name == "kernel":
      fan_in = int(np.prod(shape[-4:-1])) if len(shape) >= 4 else shape[-2]
      return rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
    if name in ("scale", "var"):
      return (1.0 + 0.3 * rng.random(shape)).astype(np.float32)
    return (0.1 * rng.normal(size=shape)).astype(np.float32)  # bias, mean

  return jax.tree_util.tree_map_with_path(leaf, shapes)


def without_block(variables, stage, block):
  """Unrolled-layout variables with block (stage, block) removed: the stage's later blocks move up
  by one, giving the variables of the same net with one block fewer in that stage."""
  out = {}
  for col, tree in variables.items():
    new = {}
    for k, val in tree.items():
      if k.startswith(f"stage{stage}_block"):
        j = int(k.rsplit("block", 1)[1])
        if j == block:
          continue
        k = f"stage{stage}_block{j - (j > block)}"
      new[k] = val
    out[col] = new
  return out


# --- the classic families -------------------------------------------------------------------------

IMAGENET, CIFAR = (224, 224, 3), (32, 32, 3)
MEAN, STD = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)
KEY = jax.random.key(0, impl="rbg")  # initialising with threefry compiles twice as long on the CPU


def init(model, x):
  return jax.jit(lambda x: model.init(KEY, x, train=False))(x)


def forward(model):
  """model.apply in inference mode, compiled once for any variables, images and gates."""
  return jax.jit(lambda v, x, gates=None: model.apply(v, x, train=False, gates=gates))


def n_params(model, shape):
  return models.count_params(models.init_shapes(model, shape)["params"])


def build(family, depth, **kw):
  return models.build_model({"family": family, "depth": depth, **kw})


# One small module per stage, the last two each followed by an auxiliary head: the full net's 57
# convolutions compile for half a minute on a 2-core CPU (its counts: models/test_googlenet.py).
TINY_INCEPTION = {"inception_stages": (((8, 8, 8, 8, 8, 8),),) * 3, "aux_after": ((1, 0), (2, 0))}
TINY = {
  "lenet5": (lambda: lenet.lenet5(), (28, 28, 1)),  # MNIST-sized: padded to 32x32
  "alexnet": (
    lambda: alexnet.alexnet(num_classes=10, widths=(4, 8, 8, 8, 8), hidden=16),
    (63, 63, 3),
  ),
  "vgg": (lambda: vgg.vgg(11, width=4, hidden=16, num_classes=10), (32, 32, 3)),
  "cifar_vgg_bn": (lambda: vgg.cifar_vgg(11, bn=True, width=4), (16, 16, 3)),
  "nin": (lambda: nin.nin(9), (32, 32, 3)),
  "googlenet": (
    lambda: googlenet.googlenet(num_classes=10, aux_heads=True, **TINY_INCEPTION),
    (32, 32, 3),
  ),
  "cifar_densenet_bc": (lambda: densenet.cifar_densenet(16, bc=True, growth_rate=4), (16, 16, 3)),
}
