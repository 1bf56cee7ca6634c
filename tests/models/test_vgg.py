"""VGG (cnn_depth/models/vgg.py): pooling on small images, its layers as the blocks that gates
delete (a same-shape layer: the net without it; a widening one: its input zero-padded), and the
lesion study on it. Its parameter counts: tests/models/test_counting.py; its tiny variant's forward
and training step: tests/models/test_registry.py, with every classic family's.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.nets import MEAN, STD, forward, init, without_block

from cnn_depth import models, steps
from cnn_depth.analysis import lesion
from cnn_depth.models import vgg


def test_vgg_pools_only_as_often_as_the_image_allows():
  """8x8 digits: pools after the last three of five stages only (8 -> 4 -> 2 -> 1)."""
  model = vgg.cifar_vgg(11, bn=True, width=4)
  calls = []

  def spy(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if isinstance(context.module, vgg.VGGLayer):
      calls.append((context.module.name, args[0].shape[1]))
    return out

  with nn.intercept_methods(spy):
    out = jax.eval_shape(
      lambda: model.init_with_output(jax.random.key(0), jnp.zeros((2, 8, 8, 1)), train=False)[0]
    )
  assert out.shape == (2, 10)
  assert calls == [
    ("stage0_block0", 8),
    ("stage1_block0", 8),
    ("stage2_block0", 8),
    ("stage2_block1", 8),
    ("stage3_block0", 4),
    ("stage3_block1", 4),
    ("stage4_block0", 2),
    ("stage4_block1", 2),
  ]


# --- gates and the lesion study -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vgg():
  model = vgg.cifar_vgg(13, bn=True, width=4)  # stages of 2 layers: (stage s, block 1) keeps shape
  x = jax.random.normal(jax.random.key(1), (8, 16, 16, 3))
  variables = init(model, x)
  # Give BN non-trivial statistics, as after training.
  _, upd = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
    variables, x * 3 + 1
  )
  return model, {**variables, **upd}, x


def test_vgg_blocks_and_shape_changing_layers(tiny_vgg):
  model, variables, _ = tiny_vgg
  assert model.num_blocks == 10 and not model.residual
  assert models.block_names(model)[:3] == ["stage0_block0", "stage0_block1", "stage1_block0"]
  # Widths 4-8-16-32-32: each stage's first layer widens, but stage 4's (32 -> 32).
  np.testing.assert_array_equal(models.downsampling_blocks(model), [1, 0, 1, 0, 1, 0, 1, 0, 0, 0])
  assert set(variables["params"]) == set(models.block_names(model)) | {"head"}


@pytest.mark.slow
@pytest.mark.parametrize("stage,block", [(1, 1), (4, 0)])
def test_deleting_a_same_shape_vgg_layer_is_the_identity(tiny_vgg, stage, block):
  model, variables, x = tiny_vgg
  i = sum(model.stage_sizes[:stage]) + block
  gates = lesion.deletion_gates(model.num_blocks, [i])
  run = forward(model)
  lesioned = run(variables, x, gates)
  sizes = list(model.stage_sizes)
  sizes[stage] -= 1
  smaller = model.clone(stage_sizes=tuple(sizes))
  expected = forward(smaller)(without_block(variables, stage, block), x)
  np.testing.assert_allclose(lesioned, expected, rtol=1e-5, atol=1e-6)
  ones = run(variables, x, np.ones(10, np.float32))
  assert not np.allclose(lesioned, ones)
  np.testing.assert_allclose(ones, forward(model)(variables, x), rtol=1e-6, atol=1e-6)


def test_deleting_a_widening_vgg_layer_zero_pads_its_input(tiny_vgg):
  model, variables, x = tiny_vgg
  gates = lesion.deletion_gates(model.num_blocks, [2])  # stage1_block0: 4 -> 8 maps

  def replace(next_fun, args, kwargs, context):
    if isinstance(context.module, vgg.VGGLayer) and context.module.name == "stage1_block0":
      return jnp.pad(args[0], ((0, 0), (0, 0), (0, 0), (2, 2)))  # option A: centred zero maps
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(replace):
    expected = forward(model)(variables, x)
  np.testing.assert_allclose(forward(model)(variables, x, gates), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_lesion_error_fn_on_vgg_matches_the_smaller_net(tiny_vgg):
  """lesion.make_error_fn runs on a VGG; deleting a same-shape layer gives the error of the net
  without it, and deleting it again on top of that (its gate already 0) changes nothing."""
  model, variables, _ = tiny_vgg
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
  logits = forward(model)(variables, steps.normalize(images, MEAN, STD))
  labels = np.array(jnp.argmax(logits, -1))  # the intact net is right on every image
  labels[:10] = (labels[:10] + 1) % 10  # ...but these
  error = lesion.make_error_fn(model, variables, images, labels, MEAN, STD, batch_size=16)
  intact, singles = lesion.single_block_lesion(error, model.num_blocks)
  assert intact == pytest.approx(0.25) and singles.shape == (10,)
  smaller = model.clone(stage_sizes=(2, 1, 2, 2, 2))
  small_error = lesion.make_error_fn(
    smaller, without_block(variables, 1, 1), images, labels, MEAN, STD, batch_size=16
  )
  assert singles[3] == small_error()
  twice = lesion.deletion_gates(model.num_blocks, [3, 3, 7])
  assert (
    error(twice)
    == error(lesion.deletion_gates(model.num_blocks, [3, 7]))
    == small_error(lesion.deletion_gates(smaller.num_blocks, [6]))
  )
  assert error.traces == 1
