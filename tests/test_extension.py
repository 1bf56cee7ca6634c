"""Adding a model family and a dataset touches no package file: a toy of each, defined and
registered in this file, trains through `train_and_evaluate` and goes through the lesion study."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_depth import config as config_lib
from cnn_depth import data, layers, models, train
from cnn_depth import workdir as workdir_lib
from cnn_depth.models import gating
from cnn_depth.studies import veit2016


class ToyBlock(nn.Module):
  """conv-ReLU residual branch, merged through the shared gate."""

  features: int
  conv_impl: str = "auto"

  @nn.compact
  def __call__(self, x, gate=None, route=None):
    y = nn.relu(layers.Conv(self.features, 3, conv_impl=self.conv_impl, name="conv")(x))
    return gating.merge(x, y, gate, route)


class ToyNet(nn.Module):
  """A stem, one stage of `depth` residual blocks, global average pool, dense head."""

  depth: int
  width: int = 8
  num_classes: int = 10
  dtype: Any = jnp.float32
  conv_impl: str = "auto"

  residual = True

  @property
  def stage_sizes(self):
    return (self.depth,)

  @property
  def num_blocks(self):
    return self.depth

  def shape_changing_blocks(self):
    return np.zeros(self.depth, bool)

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    del train
    controls = gating.block_controls(gates, grad_route, self.num_blocks, "ToyNet")
    x = layers.Conv(self.width, 3, conv_impl=self.conv_impl, name="stem")(x.astype(self.dtype))
    for b in range(self.depth):
      x = ToyBlock(self.width, self.conv_impl, name=f"stage0_block{b}")(x, *gating.at(controls, b))
    return nn.Dense(self.num_classes, name="head")(jnp.mean(x, axis=(1, 2))).astype(jnp.float32)


def read_stripes(data_dir, seed):
  """8x8x3 images: class 1 has a bright left half, class 0 a bright right half, plus noise."""
  del data_dir
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 2, 96).astype(np.int32)
  images = rng.integers(0, 96, (96, 8, 8, 3))
  images[labels == 1, :, :4] += 128
  images[labels == 0, :, 4:] += 128
  images = images.astype(np.uint8)
  return images[:64], labels[:64], images[64:], labels[64:]


TOY_FAMILY = models.Family(
  "toy_resnet",
  ToyNet,
  ("width",),
  "Toy-{depth}",
  "toy ResNets",
  input_shape=(8, 8, 3),
  num_classes=2,
)
TOY_DATA = data.DatasetSpec(
  "toy_stripes",
  "left or right half bright, made in a test",
  image_shape=(8, 8, 3),
  num_classes=2,
  read=read_stripes,
  crop_padding=1,
  flip=False,
)


@pytest.fixture
def registered():
  models.register(TOY_FAMILY)
  data.register(TOY_DATA)
  yield
  models.registry.unregister(TOY_FAMILY.name)
  data.unregister(TOY_DATA.name)


@pytest.mark.slow
def test_a_family_and_a_dataset_defined_in_a_test_train_and_take_a_lesion(tmp_path, registered):
  config = config_lib.base()
  config.dataset.name = "toy_stripes"
  config.model.family, config.model.depth, config.model.width = "toy_resnet", 3, 8
  config.batch_size, config.num_train_steps = 16, 2
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
  workdir = str(tmp_path / "toy")

  final = train.train_and_evaluate(config, workdir)
  assert final["steps"] == 2 and 0.0 <= final["test_error"] <= 1.0
  [record] = workdir_lib.read_metrics(workdir)
  assert len(record["block_grad_norms"]) == 3

  single = veit2016.lesion_study([workdir], str(tmp_path / "lesion"), samples=2, max_swaps=1)
  assert list(single) == ["Toy-3"] and len(single["Toy-3"]["errors"]) == 3
  assert (tmp_path / "lesion" / "lesion_reorder.csv").exists()


def test_a_field_the_toy_family_does_not_read_is_refused(registered):
  with pytest.raises(ValueError, match="growth_rate=12 does not apply to family 'toy_resnet'"):
    models.build_model({"family": "toy_resnet", "depth": 3, "growth_rate": 12})
