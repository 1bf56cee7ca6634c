"""DenseNet (cnn_depth/models/densenet.py): Table 2's parameter counts, the maps layer l sees, and a
gate of 0 deleting a layer's new maps (ImageNet's DenseNet-121 count: tests/models/test_counting.py;
the tiny variant's forward and training step, its refused inputs: tests/models/test_registry.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.nets import CIFAR, build, forward, init, n_params

from cnn_depth import models
from cnn_depth.analysis import lesion
from cnn_depth.models import densenet


@pytest.mark.slow
@pytest.mark.parametrize(
  "family,depth,paper",
  [
    ("cifar_densenet", 40, 1.0e6),
    ("cifar_densenet", 100, 7.0e6),
    ("cifar_densenet_bc", 190, 25.6e6),
  ],
)
def test_cifar_densenet_counts_within_three_percent(family, depth, paper):
  """Huang et al. 2017, Table 2."""
  params = n_params(build(family, depth, num_classes=10), CIFAR)
  assert abs(params - paper) / paper < 0.03, params


def test_cifar_densenet_bc_100_rounds_to_the_papers_figure():
  """Table 2 gives 0.8M, one significant digit; the net has 769,162 (3.9% below 0.8M), which rounds
  to it. The same code gives the table's 15.3M for BC L=250 (k=24) and 25.6M for L=190 (k=40)."""
  params = n_params(build("cifar_densenet_bc", 100, num_classes=10), CIFAR)
  assert params == 769_162 and round(params, -5) == 800_000


def test_densenet_layer_l_sees_k0_plus_k_times_l_minus_1_maps():
  k, theta = 12, 0.5
  model = densenet.cifar_densenet(100, bc=True)
  params = models.init_shapes(model, CIFAR)["params"]
  assert model.stage_sizes == (16, 16, 16) and model.growth_rate == k
  k0 = 2 * k  # BC: the stem has 2k maps
  for s in range(3):
    for b in range(16):  # layer l = b + 1 sees k0 + k (l - 1) maps, BC-reduces them to 4k, adds k
      layer = params[f"stage{s}_block{b}"]
      assert layer["bn1"]["scale"].shape == (k0 + k * b,)
      assert layer["conv1"]["kernel"].shape == (1, 1, k0 + k * b, 4 * k)
      assert layer["conv2"]["kernel"].shape == (3, 3, 4 * k, k)
    m = k0 + 16 * k
    if s < 2:  # the transition compresses to floor(theta m) maps: the next block's k0
      assert params[f"transition{s + 1}_conv"]["kernel"].shape == (1, 1, m, int(theta * m))
      k0 = int(theta * m)
  assert params["head"]["kernel"].shape == (k0 + 16 * k, 10)
  plain = models.init_shapes(densenet.cifar_densenet(40), CIFAR)["params"]
  assert plain["stage2_block11"]["conv1"]["kernel"].shape == (3, 3, 16 + 2 * 12 * 12 + 11 * 12, 12)


def test_imagenet_densenet_13_is_121_with_one_layer_a_block():
  """The 8n+5 depths (no published net; the GPU compile check's DenseNet): DenseNet-13's layers
  are DenseNet-121's first layer of each block and its transitions, of the same shapes, except the
  maps a transition and the head see (one layer's k new maps, not a block's)."""
  shapes = {
    d: models.init_shapes(build("imagenet_densenet", d), (224, 224, 3))["params"] for d in (13, 121)
  }
  assert densenet.imagenet_densenet(13).stage_sizes == (1, 1, 1, 1)
  assert densenet.imagenet_densenet(21).stage_sizes == (2, 2, 2, 2)
  small, big = (jax.tree.map(np.shape, shapes[d]) for d in (13, 121))
  assert set(small) == {n for n in big if not n.startswith("stage") or n.endswith("block0")}
  for name in small:
    if name in ("conv_init", "bn_init", "stage0_block0"):  # before the first transition: equal
      assert small[name] == big[name], name
  k, k0 = 32, 64
  assert small["transition1_conv"]["kernel"] == (1, 1, k0 + k, (k0 + k) // 2)
  assert small["head"]["kernel"][1] == 1000


@pytest.mark.slow
def test_densenet_gate_zero_deletes_the_layers_new_maps():
  model = densenet.cifar_densenet(16, bc=True, growth_rate=4)
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
  v = init(model, x)
  assert model.num_blocks == 6 and not models.downsampling_blocks(model).any()
  run = forward(model)
  gates = lesion.deletion_gates(6, [4])  # stage2_block0
  ones = np.ones(6, np.float32)
  zeroed = jax.tree_util.tree_map(lambda a: a, v["params"])
  zeroed["stage2_block0"]["conv2"]["kernel"] = jnp.zeros_like(
    zeroed["stage2_block0"]["conv2"]["kernel"]
  )
  np.testing.assert_allclose(
    run(v, x, gates), run({**v, "params": zeroed}, x, ones), rtol=1e-6, atol=1e-6
  )
  assert not np.allclose(run(v, x, gates), run(v, x, ones))
