import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from cnn_depth import layers


@pytest.mark.parametrize("k,s,h", [(3, 1, 8), (3, 2, 8), (3, 2, 7), (1, 2, 8), (1, 1, 5), (7, 2, 15)])
def test_cpu_vjp_conv_matches_lax_gradients(k, s, h):
  pad = ((k // 2, k // 2),) * 2
  x = jax.random.normal(jax.random.key(0), (2, h, h, 3))
  w = jax.random.normal(jax.random.key(1), (k, k, 3, 5))
  ref = lambda x, w: jnp.sum(jnp.sin(lax.conv_general_dilated(x, w, (s, s), pad,
                                                               dimension_numbers=layers._DN)))
  ours = lambda x, w: jnp.sum(jnp.sin(layers.conv_cpu_vjp(x, w, (s, s), pad)))
  np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-6)
  for a, b in zip(jax.grad(ours, (0, 1))(x, w), jax.grad(ref, (0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_cpu_vjp_conv_inside_scan_matches_lax():
  """The reason it exists: scanned convolutions. Gradients through a scan agree with lax.conv."""
  pad = ((1, 1), (1, 1))
  ws = jax.random.normal(jax.random.key(1), (4, 3, 3, 4, 4)) * 0.2
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))

  def net(conv):
    def loss(x, ws):
      y, _ = lax.scan(lambda c, w: (jnp.tanh(conv(c, w)), None), x, ws)
      return jnp.sum(y ** 2)
    return jax.jit(jax.grad(loss, (0, 1)))

  ref = net(lambda c, w: lax.conv_general_dilated(c, w, (1, 1), pad, dimension_numbers=layers._DN))
  ours = net(lambda c, w: layers.conv_cpu_vjp(c, w, (1, 1), pad))
  for a, b in zip(ours(x, ws), ref(x, ws)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_option_a_shortcut_subsamples_and_zero_pads():
  x = jnp.arange(2 * 4 * 4 * 2, dtype=jnp.float32).reshape(2, 4, 4, 2)
  y = layers.shortcut_a(x, 6, 2)
  assert y.shape == (2, 2, 2, 6)
  np.testing.assert_array_equal(y[..., 2:4], x[:, ::2, ::2, :])
  assert float(jnp.abs(y[..., :2]).sum() + jnp.abs(y[..., 4:]).sum()) == 0.0
  with pytest.raises(ValueError, match="cannot shrink"):
    layers.shortcut_a(x, 1, 1)


def test_route_gradient_keeps_values_and_masks_gradient():
  x = jnp.array([1.0, -2.0, 3.0])
  np.testing.assert_array_equal(layers.route_gradient(x, 0.0), x)
  assert float(jax.grad(lambda v: jnp.sum(layers.route_gradient(v, 0.0) * 3))(x).sum()) == 0.0
  np.testing.assert_array_equal(jax.grad(lambda v: jnp.sum(layers.route_gradient(v, 1.0) * 3))(x),
                                jnp.full(3, 3.0))


def test_conv_impl_is_validated():
  assert layers.resolve_conv_impl("auto") == "cpu_vjp"  # the tests run on CPU
  with pytest.raises(ValueError, match="conv_impl"):
    layers.resolve_conv_impl("cudnn")


def test_ghost_batch_norm_equals_per_group_batch_norm():
  import flax.linen as nn
  x = jax.random.normal(jax.random.key(0), (8, 3, 3, 4)) * 3 + 1
  ghost = layers.GhostBatchNorm(use_running_average=False, groups=2)
  v = ghost.init(jax.random.key(1), x)
  y, upd = ghost.apply(v, x, mutable=["batch_stats"])
  ref = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
  rv = ref.init(jax.random.key(1), x[:4])
  halves = [ref.apply(rv, x[i:i + 4], mutable=["batch_stats"]) for i in (0, 4)]
  np.testing.assert_allclose(y, jnp.concatenate([h[0] for h in halves]), rtol=1e-5, atol=1e-5)
  mean = (halves[0][1]["batch_stats"]["mean"] + halves[1][1]["batch_stats"]["mean"]) / 2
  np.testing.assert_allclose(upd["batch_stats"]["mean"], mean, rtol=1e-6)
  # one group is ordinary batch norm; inference mode uses the running averages
  one = layers.GhostBatchNorm(use_running_average=False, groups=1)
  np.testing.assert_allclose(one.apply(v, x, mutable=["batch_stats"])[0],
                             ref.apply(rv, x, mutable=["batch_stats"])[0], rtol=1e-5, atol=1e-5)
  inf = layers.GhostBatchNorm(use_running_average=True, groups=2).apply(v, x)
  ref_inf = nn.BatchNorm(use_running_average=True, momentum=0.9, epsilon=1e-5).apply(rv, x)
  np.testing.assert_allclose(inf, ref_inf, rtol=1e-5, atol=1e-5)
  assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(rv)
