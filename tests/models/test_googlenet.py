"""GoogLeNet (cnn_depth/models/googlenet.py): the auxiliary heads, optional, costing what §5 says
and run only in training; the multiply-adds of Table 1 and what the 1x1 reductions save; the
Inception modules as the blocks (its tiny variant's forward and training step:
tests/models/test_registry.py)."""

import flax.linen as nn
import jax
import numpy as np
import pytest
from helpers.nets import IMAGENET, TINY, build, init, n_params

from cnn_depth import models
from cnn_depth.models import googlenet


def test_googlenet_aux_heads_are_optional_and_cost_what_the_paper_says():
  """§5: avg pool 5x5/3 -> 4x4, 1x1 conv 128, dense 1024, dense 1000, after 4a (512 maps) and 4d
  (528)."""
  base = n_params(build("googlenet", 22), IMAGENET)
  with_aux = models.init_shapes(build("googlenet", 22, aux_heads=True), IMAGENET)["params"]
  head = lambda c: (c * 128 + 128) + (4 * 4 * 128 * 1024 + 1024) + (1024 * 1000 + 1000)
  assert models.count_params(with_aux) - base == head(512) + head(528)
  assert {"aux1", "aux2"} <= set(with_aux)
  assert "aux1" not in models.init_shapes(build("googlenet", 22), IMAGENET)["params"]


def test_googlenet_multiply_adds_show_the_reductions():
  ours = models.multiply_adds(build("googlenet", 22), IMAGENET)
  naive = models.multiply_adds(build("googlenet", 22, reduce=False), IMAGENET)
  # Table 1 sums to 1.5G ops with a conv1 row of 34M; the 7x7/2 conv to 64 maps costs 118M.
  conv1 = 112 * 112 * 64 * 7 * 7 * 3
  assert abs(ours - (1.502e9 - 34e6 + conv1)) / ours < 0.01, ours
  assert naive > 2.5 * ours

  # Module 3a alone (Table 1: 128M ops; 163,328 weights, listed as 159K with K = 1024).
  class Only3a(nn.Module):
    @nn.compact
    def __call__(self, x, *, train):
      return googlenet.Inception(googlenet.INCEPTION_STAGES[0][0])(x)

  assert models.multiply_adds(Only3a(), (28, 28, 192)) == 28 * 28 * 163_328


@pytest.mark.slow
def test_googlenet_aux_heads_run_only_in_training():
  model, shape = TINY["googlenet"][0](), TINY["googlenet"][1]
  x = jax.random.normal(jax.random.key(1), (2,) + shape)
  v = init(model, x)
  assert {"aux1", "aux2"} <= set(v["params"])
  _, col = jax.jit(
    lambda v, x, k: model.apply(v, x, train=True, rngs={"drop": k}, mutable=["aux_logits"])
  )(v, x, jax.random.key(2))
  assert set(col["aux_logits"]) == {"aux1_logits", "aux2_logits"}
  (aux1,) = col["aux_logits"]["aux1_logits"]
  assert aux1["logits"].shape == (2, 10) and float(aux1["weight"]) == pytest.approx(0.3)
  _, col = jax.eval_shape(lambda v, x: model.apply(v, x, train=False, mutable=["aux_logits"]), v, x)
  assert not col


def test_googlenet_blocks_are_the_inception_modules():
  model = googlenet.googlenet()
  assert model.stage_sizes == (2, 5, 2) and model.num_blocks == 9
  # 3a 192->256, 3b ->480, 4a ->512, 4b 512, 4c 512, 4d ->528, 4e ->832, 5a 832, 5b ->1024
  np.testing.assert_array_equal(models.downsampling_blocks(model), [1, 1, 1, 0, 0, 1, 1, 0, 1])
