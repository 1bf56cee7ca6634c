"""cnn_depth/steps.py: the augmentation, the train step (it learns, compiles once, gives the same
per-block norms in both layouts; the global norm), on one device and sharded over conftest.py's 8
fake CPU devices (sharding.py), ghost BN per device (the schedule and SGD: tests/test_optim.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnn_depth import models, optim, sharding, steps
from cnn_depth import state as state_lib

MEAN, STD = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)


def tiny_setup(batch=16, **model_kw):
  model = models.cifar_resnet(8, width=4, **model_kw)
  tx = optim.sgd(optim.step_decay_schedule(0.1, [100, 200]))
  rng = np.random.default_rng(0)
  data = {
    "image": rng.integers(0, 256, (batch, 16, 16, 3), dtype=np.uint8),
    "label": rng.integers(0, 10, (batch,), dtype=np.int32),
  }
  return model, tx, data


def test_augmentation_shapes_and_determinism():
  x = jnp.arange(2 * 8 * 8 * 1, dtype=jnp.float32).reshape(2, 8, 8, 1) + 1
  a = steps.random_crop_flip(jax.random.key(0), x)
  b = steps.random_crop_flip(jax.random.key(0), x)
  assert a.shape == x.shape
  np.testing.assert_array_equal(a, b)
  # every output pixel is either an input pixel or zero padding
  assert set(np.unique(np.asarray(a))) <= set(np.unique(np.asarray(x))) | {0.0}
  assert not np.array_equal(steps.random_crop_flip(jax.random.key(1), x), a)


@pytest.mark.slow
def test_train_step_learns_and_compiles_once():
  model, tx, data = tiny_setup()
  state = state_lib.create_train_state(model, tx, jax.random.key(0), (16, 16, 3))
  step = steps.compile_train_step(model, tx, MEAN, STD, augment=False, log_block_norms=True)
  losses = []
  for _ in range(6):
    state, m = step(state, data)
    losses.append(float(m["loss_sum"]) / float(m["count"]))
  assert step._cache_size() == 1
  assert int(state.step) == 6 and losses[-1] < losses[0]
  assert m["block_grad_norms"].shape == (3,) and bool(jnp.all(m["block_grad_norms"] > 0))
  ev = jax.jit(lambda s, b: steps.eval_step(s, b, model=model, mean=MEAN, std=STD))(state, data)
  assert float(ev["count"]) == 16 and 0 <= float(ev["correct"]) <= 16


def test_block_norms_same_in_scan_and_unroll_layouts():
  model = models.cifar_resnet(14, width=4)
  v = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), train=False)
  a = steps.block_grad_norms(v["params"], model)
  b = steps.block_grad_norms(models.unstack_stages(v["params"]), model.clone(stages="unroll"))
  np.testing.assert_allclose(a, b, rtol=1e-6)
  assert a.shape == (6,)
  # against the definition: the root of the sum of squares of every leaf of the block
  flat = models.unstack_stages(v["params"])
  want = [
    np.sqrt(
      sum(
        np.sum(np.square(np.asarray(l, np.float64)))
        for l in jax.tree_util.tree_leaves(flat[f"stage{s}_block{b}"])
      )
    )
    for s in range(3)
    for b in range(2)
  ]
  np.testing.assert_allclose(a, want, rtol=1e-5)


def test_global_norm_is_optax_tree_norm():
  import optax

  tree = {
    "a": jnp.arange(6.0).reshape(2, 3),
    "b": [jnp.ones((4,), jnp.bfloat16), jnp.full((), -2.0)],
  }
  np.testing.assert_allclose(steps.global_norm(tree), optax.tree.norm(tree), rtol=1e-6)
  assert steps.global_norm(tree).dtype == jnp.float32
  assert float(steps.global_norm({})) == 0.0


@pytest.mark.slow
def test_one_step_on_eight_devices_equals_one_device():
  assert jax.device_count() == 8, "tests run with --xla_force_host_platform_device_count=8"
  model, tx, data = tiny_setup(batch=16)
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = sharding.data_mesh(devices)
    repl, shard = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    state = state_lib.create_train_state(model, tx, jax.random.key(0), (16, 16, 3), repl)
    step = steps.compile_train_step(model, tx, MEAN, STD, repl, shard)
    state, m = step(state, jax.device_put(data, shard))
    results.append((float(m["loss_sum"]), state.params))
  assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
  for a, b in zip(
    jax.tree_util.tree_leaves(results[0][1]), jax.tree_util.tree_leaves(results[1][1])
  ):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float reassociation across devices


def test_batch_must_split_over_devices():
  with pytest.raises(ValueError, match="not divisible by the 8 devices"):
    sharding.check_batch_size(12, sharding.data_mesh())


@pytest.mark.slow
def test_ghost_bn_per_device_statistics_on_eight_devices():
  """bn_groups = devices: each device's shard normalised by its own statistics (papers' multi-GPU
  BN)."""
  mesh = sharding.data_mesh()
  repl, shard = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  losses = []
  for groups in (1, 8):
    model, tx, data = tiny_setup(batch=16, bn_groups=groups)
    state = state_lib.create_train_state(model, tx, jax.random.key(0), (16, 16, 3), repl)
    step = steps.compile_train_step(model, tx, MEAN, STD, repl, shard, augment=False)
    state, m = step(state, jax.device_put(data, shard))
    losses.append(float(m["loss_sum"]))
    assert np.isfinite(losses[-1])
  assert losses[0] != pytest.approx(losses[1], rel=1e-4)  # per-device statistics are different
