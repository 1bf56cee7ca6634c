"""LeNet-5 (cnn_depth/models/lenet.py): the paper's 60,000 parameters layer by layer, and
multiply-adds that count only the kernels of C3's connection table (its inputs refused, its forward
and training step: tests/models/test_registry.py, with every classic family's)."""

from helpers.nets import build

from cnn_depth import models
from cnn_depth.models import lenet


def test_lenet5_has_the_papers_60000_parameters():
  """LeCun et al. 1998: C1 156, S2 12, C3 1,516 (Table I connections), S4 32, C5 48,120,
  F6 10,164."""
  params = models.init_shapes(build("lenet5", 5), (32, 32, 1))["params"]
  per_layer = {name: models.count_params(p) for name, p in params.items()}
  assert per_layer == {
    "c1": 156,
    "s2": 12,
    "c3": 1_516,
    "s4": 32,
    "c5": 48_120,
    "f6": 10_164,
    "head": 850,
  }
  assert sum(per_layer.values()) - per_layer["head"] == 60_000
  full = models.init_shapes(lenet.LeNet5(connection_table=False), (32, 32, 1))["params"]
  assert models.count_params(full["c3"]) == 5 * 5 * 6 * 16 + 16


def test_lenet5_multiply_adds_count_only_the_connection_tables_kernels():
  macs = models.multiply_adds(build("lenet5", 5), (32, 32, 1))
  c3 = 10 * 10 * 25 * 60
  assert macs == 28 * 28 * 6 * 25 + c3 + 120 * 400 + 120 * 84 + 84 * 10
  dense = models.multiply_adds(lenet.LeNet5(connection_table=False), (32, 32, 1))
  assert dense - macs == 10 * 10 * 25 * (96 - 60)
