"""cnn_depth/layers.py: the CPU convolution's custom backward against lax (also inside a scan, and
with the classic nets' strides and paddings), the convolution's initialisers and its scaled weight
standardisation against NFNets' WSConv2D (tests/fixtures/nf), the option-A shortcut, ghost and
fused batch norm against flax's, the checks of the implementations' names, and the CPU compiler
options; with them models/gating.py's route_gradient, the one layer-level piece of the gating."""

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.runner import ROOT
from jax import lax

from cnn_depth import layers
from cnn_depth.models import gating, inits


@pytest.mark.slow
@pytest.mark.parametrize(
  "k,s,h",
  # the last three: kernels larger than their input (padded first, `layers._conv_cpu`)
  [
    (3, 1, 8),
    (3, 2, 8),
    (3, 2, 7),
    (1, 2, 8),
    (1, 1, 5),
    (7, 2, 15),
    (3, 1, 2),
    (3, 2, 2),
    (7, 2, 5),
  ],
)
def test_cpu_vjp_conv_matches_lax_gradients(k, s, h):
  pad = ((k // 2, k // 2),) * 2
  x = jax.random.normal(jax.random.key(0), (2, h, h, 3))
  w = jax.random.normal(jax.random.key(1), (k, k, 3, 5))
  ref = lambda x, w: jnp.sum(
    jnp.sin(lax.conv_general_dilated(x, w, (s, s), pad, dimension_numbers=layers._DN))
  )
  ours = lambda x, w: jnp.sum(jnp.sin(layers.conv_cpu_vjp(x, w, (s, s), pad)))
  # A sum of 2*h*h*5 sines of convolutions summed in another order (a 7x7 kernel over a 5x5 input
  # is padded first): float32 rounding reaches a few 1e-6 of a total near 0.25 (seen: 3.7e-6).
  np.testing.assert_allclose(ours(x, w), ref(x, w), rtol=1e-5, atol=1e-5)
  for a, b in zip(jax.grad(ours, (0, 1))(x, w), jax.grad(ref, (0, 1))(x, w)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=3e-5)  # 7x7: sums of up to 98 terms


@pytest.mark.slow
def test_cpu_vjp_conv_inside_scan_matches_lax():
  """The reason it exists: scanned convolutions. Gradients through a scan agree with lax.conv."""
  pad = ((1, 1), (1, 1))
  ws = jax.random.normal(jax.random.key(1), (4, 3, 3, 4, 4)) * 0.2
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 4))

  def net(conv):
    def loss(x, ws):
      y, _ = lax.scan(lambda c, w: (jnp.tanh(conv(c, w)), None), x, ws)
      return jnp.sum(y**2)

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
  np.testing.assert_array_equal(gating.route_gradient(x, 0.0), x)
  assert float(jax.grad(lambda v: jnp.sum(gating.route_gradient(v, 0.0) * 3))(x).sum()) == 0.0
  np.testing.assert_array_equal(
    jax.grad(lambda v: jnp.sum(gating.route_gradient(v, 1.0) * 3))(x), jnp.full(3, 3.0)
  )


def test_conv_impl_is_validated():
  assert layers.resolve_conv_impl("auto") == "cpu_vjp"  # the tests run on CPU
  with pytest.raises(ValueError, match="conv_impl"):
    layers.resolve_conv_impl("cudnn")


@pytest.mark.slow
def test_ghost_batch_norm_equals_per_group_batch_norm():
  import flax.linen as nn

  x = jax.random.normal(jax.random.key(0), (8, 3, 3, 4)) * 3 + 1
  ghost = layers.GhostBatchNorm(use_running_average=False, groups=2)
  v = ghost.init(jax.random.key(1), x)
  y, upd = ghost.apply(v, x, mutable=["batch_stats"])
  ref = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5)
  rv = ref.init(jax.random.key(1), x[:4])
  halves = [ref.apply(rv, x[i : i + 4], mutable=["batch_stats"]) for i in (0, 4)]
  np.testing.assert_allclose(y, jnp.concatenate([h[0] for h in halves]), rtol=1e-5, atol=1e-5)
  mean = (halves[0][1]["batch_stats"]["mean"] + halves[1][1]["batch_stats"]["mean"]) / 2
  np.testing.assert_allclose(upd["batch_stats"]["mean"], mean, rtol=1e-6)
  # one group is ordinary batch norm; inference mode uses the running averages
  one = layers.GhostBatchNorm(use_running_average=False, groups=1)
  np.testing.assert_allclose(
    one.apply(v, x, mutable=["batch_stats"])[0],
    ref.apply(rv, x, mutable=["batch_stats"])[0],
    rtol=1e-5,
    atol=1e-5,
  )
  inf = layers.GhostBatchNorm(use_running_average=True, groups=2).apply(v, x)
  ref_inf = nn.BatchNorm(use_running_average=True, momentum=0.9, epsilon=1e-5).apply(rv, x)
  np.testing.assert_allclose(inf, ref_inf, rtol=1e-5, atol=1e-5)
  assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(rv)


def _flax_bn(train, relu=False):
  return layers.FlaxBatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, relu=relu)


@pytest.mark.slow
@pytest.mark.parametrize("relu", [False, True])
def test_fused_batch_norm_equals_flax_batch_norm(relu):
  """Same variables, outputs, running averages and gradients as flax's BatchNorm (float32), with and
  without the ReLU after it."""
  x = jax.random.normal(jax.random.key(0), (8, 5, 5, 6)) * 3 + 1
  ours, ref = layers.BatchNorm(use_running_average=False, relu=relu), _flax_bn(True, relu)
  v = ours.init(jax.random.key(1), x)
  assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(
    ref.init(jax.random.key(1), x)
  )
  v = {
    "params": {"scale": jnp.linspace(0.5, 2.0, 6), "bias": jnp.linspace(-1.0, 1.0, 6)},
    "batch_stats": {"mean": jnp.full((6,), 0.3), "var": jnp.full((6,), 2.0)},
  }
  (y, upd), (y_ref, upd_ref) = (m.apply(v, x, mutable=["batch_stats"]) for m in (ours, ref))
  np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
  for k in ("mean", "var"):
    np.testing.assert_allclose(upd["batch_stats"][k], upd_ref["batch_stats"][k], rtol=1e-6)
  np.testing.assert_allclose(
    layers.BatchNorm(use_running_average=True, relu=relu).apply(v, x),
    _flax_bn(False, relu).apply(v, x),
    rtol=1e-6,
    atol=1e-6,
  )
  assert not relu or float(jnp.min(y)) == 0.0

  w = jax.random.normal(jax.random.key(2), x.shape)  # a loss that weighs every output differently

  def grads(module):
    loss = lambda p, x: jnp.sum(
      w
      * module.apply({"params": p, "batch_stats": v["batch_stats"]}, x, mutable=["batch_stats"])[0]
      ** 2
    )
    return jax.grad(loss, (0, 1))(v["params"], x)

  (gp, gx), (gp_ref, gx_ref) = grads(ours), grads(ref)
  np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-5)
  for k in ("scale", "bias"):
    np.testing.assert_allclose(gp[k], gp_ref[k], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("relu", [False, True])
def test_bn_train_backward_includes_the_statistics_outputs(relu):
  """The hand-written VJP is exact for all three outputs (y, mean, var), against autodiff."""
  x = jax.random.normal(jax.random.key(0), (4, 3, 3, 5)) * 2 - 1
  scale, bias = jnp.linspace(0.5, 1.5, 5), jnp.linspace(-0.2, 0.2, 5)

  def reference(x, scale, bias):
    mean = jnp.mean(x, (0, 1, 2))
    var = jnp.maximum(jnp.mean(x * x, (0, 1, 2)) - mean**2, 0.0)
    y = (x - mean) * (scale * lax.rsqrt(var + 1e-5)) + bias
    return (jax.nn.relu(y) if relu else y), mean, var

  ours = lambda x, s, b: layers.bn_train(x, s, b, 1e-5, relu)
  cot = (
    jax.random.normal(jax.random.key(1), x.shape),
    jnp.linspace(-1, 1, 5),
    jnp.linspace(2, 3, 5),
  )
  got, want = (jax.vjp(f, x, scale, bias)[1](cot) for f in (ours, reference))
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_bn_train_float32_backward_as_accurate_as_autodiff():
  """Against the exact (float64 numpy) gradient over a CIFAR-sized batch: the sums must not lose
  accuracy (a variadic lax.reduce did on XLA:CPU: 2.7e-6 relative error against autodiff's
  1.5e-7)."""
  rng = np.random.default_rng(0)
  x = rng.normal(0.7, 2.0, (128, 16, 16, 16))
  g = rng.normal(size=x.shape)
  scale, bias = np.linspace(0.5, 1.5, 16), np.linspace(-0.2, 0.2, 16)
  m = x.size // 16
  inv = 1 / np.sqrt(x.var((0, 1, 2)) + 1e-5)
  xhat = (x - x.mean((0, 1, 2))) * inv
  d_bias, d_scale = g.sum((0, 1, 2)), (g * xhat).sum((0, 1, 2))
  exact = (scale * inv / m * (m * g - d_bias - xhat * d_scale), d_scale, d_bias)
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  _, vjp = jax.vjp(lambda *a: layers.bn_train(*a, 1e-5)[0], f32(x), f32(scale), f32(bias))
  for got, want in zip(vjp(f32(g)), exact):
    assert np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want)) < 6e-7


@pytest.mark.slow
def test_fused_batch_norm_bfloat16_close_to_flax():
  x = (jax.random.normal(jax.random.key(0), (16, 4, 4, 8)) * 2 + 3).astype(jnp.bfloat16)
  import flax.linen as nn

  ours = layers.BatchNorm(use_running_average=False, dtype=jnp.bfloat16)
  ref = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5, dtype=jnp.bfloat16)
  v = ours.init(jax.random.key(1), x)
  y, y_ref = (
    ours.apply(v, x, mutable=["batch_stats"])[0],
    ref.apply(v, x, mutable=["batch_stats"])[0],
  )
  assert y.dtype == y_ref.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.float32(y), np.float32(y_ref), atol=0.05)
  g = jax.grad(
    lambda x: jnp.sum(ours.apply(v, x, mutable=["batch_stats"])[0].astype(jnp.float32) ** 3)
  )(x)
  g_ref = jax.grad(
    lambda x: jnp.sum(ref.apply(v, x, mutable=["batch_stats"])[0].astype(jnp.float32) ** 3)
  )(x)
  assert g.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.float32(g), np.float32(g_ref), rtol=0.05, atol=0.05)


def test_batch_norm_impl_is_checked():
  import flax.linen as nn

  assert layers.batch_norm(True, jnp.float32).func is layers.BatchNorm
  assert layers.batch_norm(True, jnp.float32, impl="flax").func is layers.FlaxBatchNorm
  assert issubclass(layers.FlaxBatchNorm, nn.BatchNorm)
  with pytest.raises(ValueError, match="bn_impl"):
    layers.batch_norm(True, jnp.float32, impl="cudnn")


def _convolutions_in_ynnpack(hlo: str) -> int:
  """How many of the HLO's convolutions sit in a computation a YNNPACK fusion calls."""
  comps = re.split(r"\n(?=%|ENTRY )", hlo)
  convs = [c.split(" ", 1)[0] for c in comps if "convolution(" in c]
  return sum(
    any("ynn" in line and f"calls={name}" in line for line in hlo.splitlines()) for name in convs
  )


@pytest.mark.slow
def test_cpu_compiler_options_route_convolutions_to_eigen_with_the_same_gradients():
  """On CPU the programs that run our layers keep YNNPACK out of the convolutions (faster for the
  CIFAR nets' shapes, benchmarks/NOTES.md); the gradients through a scan do not change."""
  opts = layers.compiler_options()
  assert opts == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
  x = jax.random.normal(jax.random.key(0), (128, 8, 8, 64))
  ws = jax.random.normal(jax.random.key(1), (2, 3, 3, 64, 64)) * 0.05
  pad = ((1, 1), (1, 1))

  def loss(x, ws):
    y, _ = lax.scan(lambda c, w: (jnp.tanh(layers.conv_cpu_vjp(c, w, (1, 1), pad)), None), x, ws)
    return jnp.sum(y**2)

  def ref(x, ws):
    conv = lambda c, w: lax.conv_general_dilated(c, w, (1, 1), pad, dimension_numbers=layers._DN)
    y, _ = lax.scan(lambda c, w: (jnp.tanh(conv(c, w)), None), x, ws)
    return jnp.sum(y**2)

  grad = jax.grad(loss, (0, 1))
  default = jax.jit(grad).lower(x, ws).compile()
  ours = jax.jit(grad, compiler_options=opts).lower(x, ws).compile()
  assert _convolutions_in_ynnpack(default.as_text()) > 0  # the library default this option undoes
  assert _convolutions_in_ynnpack(ours.as_text()) == 0
  for a, b in zip(ours(x, ws), jax.jit(jax.grad(ref, (0, 1)))(x, ws)):  # float32 sums of 8k terms
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.max(jnp.abs(b))))


@pytest.mark.slow
def test_new_conv_options_keep_the_cpu_backward_exact():
  """AlexNet's 11x11/4 conv with padding 2 and NiN's unpadded one: the CPU custom backward
  agrees."""
  x = jax.random.normal(jax.random.key(0), (2, 27, 27, 3))
  w = jax.random.normal(jax.random.key(1), (11, 11, 3, 4))
  for pad in (2, 0):
    p = ((pad, pad),) * 2
    ref = lambda x, w: jnp.sum(
      jnp.sin(lax.conv_general_dilated(x, w, (4, 4), p, dimension_numbers=layers._DN))
    )
    ours = lambda x, w: jnp.sum(jnp.sin(layers.conv_cpu_vjp(x, w, (4, 4), p)))
    for a, b in zip(jax.grad(ours, (0, 1))(x, w), jax.grad(ref, (0, 1))(x, w)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_conv_initialisers_are_options_and_the_default_is_he():
  x = jnp.ones((1, 5, 5, 3))
  key = jax.random.key(3)
  default = layers.Conv(4).init(key, x)["params"]
  assert set(default) == {"kernel"}
  he = layers.Conv(4, kernel_init=inits.kernel("he", 2.0)).init(key, x)["params"]
  np.testing.assert_array_equal(default["kernel"], he["kernel"])
  conv = layers.Conv(
    4,
    use_bias=True,
    kernel_init=jax.nn.initializers.constant(0.5),
    bias_init=jax.nn.initializers.constant(0.25),
  )
  params = conv.init(key, x)["params"]
  assert set(params) == {"kernel", "bias"}
  assert (params["kernel"] == 0.5).all() and (params["bias"] == 0.25).all()


def test_standardized_conv_equals_nfnets_wsconv2d():
  """Against WSConv2D of deepmind-research's nfnets/base.py (Haiku), from
  tests/fixtures/make_nf_fixtures.py: the same parameters, the same output (the last case's
  channel is below the eps floor)."""
  data = np.load(os.path.join(ROOT, "tests", "fixtures", "nf", "ws_conv.npz"))
  for i, (k, _, c_out, stride, pad, _) in enumerate(json.loads(str(data["meta"]))["cases"]):
    conv = layers.Conv(
      c_out, k, stride, padding=pad[0][0], use_bias=True, standardize=True, conv_impl="xla"
    )
    params = {
      name: data[f"{i}/{p}"] for name, p in (("kernel", "w"), ("gain", "gain"), ("bias", "bias"))
    }
    shapes = jax.eval_shape(conv.init, jax.random.key(0), data[f"{i}/x"])["params"]
    assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(jnp.shape, params)
    y = conv.apply({"params": params}, data[f"{i}/x"])
    np.testing.assert_allclose(y, data[f"{i}/y"], rtol=0, atol=2e-6, err_msg=f"case {i}")
