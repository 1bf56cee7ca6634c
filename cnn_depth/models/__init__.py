"""The model families of the depth studies: `build_model(config.model, num_classes=...)`.

registry.py   Family entries and build_model (checks the config fields a family reads)
gating.py     the per-block gate and gradient route, stochastic depth, the 'drop' rng stream
layout.py     block names and order, shape-changing blocks, scanned/unrolled variable layouts
counting.py   parameters and multiply-adds, without running the net
table.py      the parameter/multiply-add table of published nets (scripts/models_table.py)
blocks.py     the ResNets' blocks (post-/pre-activation, basic/bottleneck)
resnet.py     the ResNet, its CIFAR and ImageNet presets and plain twins, their families
lenet.py alexnet.py vgg.py nin.py googlenet.py densenet.py   the classic families, one file each

Importing this package registers every family. A new family is one file that calls
`registry.register(Family(...))`, imported below.
"""

# Importing a family's file registers it; this order is the registry's (and the messages') order.
# isort: off
from cnn_depth.models import registry, resnet  # noqa: F401
from cnn_depth.models import lenet, alexnet, vgg, nin, googlenet, densenet  # noqa: F401

# isort: on
from cnn_depth.models.counting import count_params, init_shapes, multiply_adds
from cnn_depth.models.gating import (
  DROP_RNG,
  ROUTE_BOTH,
  ROUTE_BRANCH,
  ROUTE_SKIP,
  stochastic_depth_gates,
  survival_probabilities,
)
from cnn_depth.models.layout import (
  block_names,
  block_variables,
  convert_variables,
  downsampling_blocks,
  stack_stages,
  unstack_stages,
)
from cnn_depth.models.registry import FAMILIES, Family, build_model, register
from cnn_depth.models.resnet import (
  ResNet,
  cifar_preact,
  cifar_resnet,
  imagenet_resnet,
  resolve_unroll,
)

__all__ = [
  "DROP_RNG",
  "FAMILIES",
  "ROUTE_BOTH",
  "ROUTE_BRANCH",
  "ROUTE_SKIP",
  "Family",
  "ResNet",
  "block_names",
  "block_variables",
  "build_model",
  "cifar_preact",
  "cifar_resnet",
  "convert_variables",
  "count_params",
  "downsampling_blocks",
  "imagenet_resnet",
  "init_shapes",
  "multiply_adds",
  "register",
  "registry",
  "resolve_unroll",
  "stack_stages",
  "stochastic_depth_gates",
  "survival_probabilities",
  "unstack_stages",
]
