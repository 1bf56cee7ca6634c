"""The kernel initialiser registry: 'he' at sigma_w2 = 2 is every net's draw until now; each entry
equals the jax initialiser it names for the same key and has the variance it promises;
delta-orthogonal kernels are orthogonal on the centre tap and zero elsewhere, and a stack of them
is an isometry; the SUO sampler equals DKS's (tests/fixtures/init/suo.npz, written by
tests/fixtures/make_init_fixtures.py with dks 0.1.2 on jax 0.4.13)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.runner import ROOT

from cnn_depth import layers
from cnn_depth.models import inits

KEY = jax.random.key(7)


@pytest.mark.parametrize("shape", [(3, 3, 16, 32), (1, 1, 64, 16)])
def test_he_at_two_is_todays_draw(shape):
  got = inits.kernel("he", 2.0)(KEY, shape, jnp.float32)
  np.testing.assert_array_equal(got, layers.he_normal(KEY, shape, jnp.float32))


@pytest.mark.parametrize(
  "name, reference",
  [
    ("he", jax.nn.initializers.variance_scaling(1.5, "fan_out", "normal")),
    ("gaussian", jax.nn.initializers.variance_scaling(1.5, "fan_in", "normal")),
    ("orthogonal", jax.nn.initializers.orthogonal(np.sqrt(1.5))),
    ("delta_orthogonal", jax.nn.initializers.delta_orthogonal(np.sqrt(1.5))),
  ],
)
def test_each_entry_is_the_jax_initialiser_it_names(name, reference):
  shape = (3, 3, 8, 16)
  got = inits.kernel(name, 1.5)(KEY, shape, jnp.float32)
  np.testing.assert_array_equal(got, reference(KEY, shape, jnp.float32))


@pytest.mark.parametrize("name, fan_axes", [("he", (0, 1, 3)), ("gaussian", (0, 1, 2))])
def test_gaussian_draws_have_sigma_w2_over_the_fan(name, fan_axes):
  shape = (3, 3, 64, 128)
  w = np.asarray(inits.kernel(name, 1.7)(KEY, shape, jnp.float32), np.float64)
  fan = np.prod([shape[a] for a in fan_axes])
  # 73,728 draws: the sample variance's relative standard error is sqrt(2 / n) = 0.5%.
  assert w.var() * fan == pytest.approx(1.7, rel=0.02)
  assert abs(w.mean()) < 4 * np.sqrt(1.7 / fan / w.size)


@pytest.mark.parametrize("shape", [(3, 3, 16, 32), (3, 3, 16, 16), (3, 3, 32, 16), (1, 1, 64, 16)])
def test_delta_orthogonal_is_orthogonal_on_the_centre_tap_only(shape):
  w = np.asarray(inits.kernel("delta_orthogonal", 1.3)(KEY, shape, jnp.float32), np.float64)
  c = shape[0] // 2
  centre = w[c, c]
  small = min(shape[-2:])
  gram = centre.T @ centre if shape[-1] <= shape[-2] else centre @ centre.T
  np.testing.assert_allclose(gram, 1.3 * np.eye(small), atol=1e-5)
  rest = w.copy()
  rest[c, c] = 0
  assert not rest.any()


def test_orthogonal_spans_the_flattened_fan_in():
  w = np.asarray(inits.kernel("orthogonal", 2.0)(KEY, (3, 3, 8, 16), jnp.float32), np.float64)
  m = w.reshape(-1, 16)  # (k*k*c_in, c_out) = (72, 16): orthonormal columns times sqrt(2)
  np.testing.assert_allclose(m.T @ m, 2.0 * np.eye(16), atol=1e-5)


def test_a_delta_orthogonal_linear_stack_is_an_isometry():
  # Xiao et al. 2018: at sigma_w2 = g^2, every singular value of a linear stack's input-output
  # Jacobian is g^L (here on a 4x4 map, zero padding, c_in = c_out = 8, L = 4, g^2 = 1.21).
  kernels = [
    inits.kernel("delta_orthogonal", 1.21)(k, (3, 3, 8, 8)) for k in jax.random.split(KEY, 4)
  ]

  def net(x):
    for w in kernels:
      x = layers._conv(x, w, (1, 1), ((1, 1), (1, 1)))
    return x

  x = jnp.zeros((1, 4, 4, 8))
  jac = jax.jit(jax.jacfwd(lambda v: net(v.reshape(x.shape)).ravel()))(x.ravel())
  s = np.linalg.svd(np.asarray(jac, np.float64), compute_uv=False)
  np.testing.assert_allclose(s, 1.1**4, rtol=1e-5)


def _suo_fixture():
  data = np.load(os.path.join(ROOT, "tests", "fixtures", "init", "suo.npz"))
  cases = json.loads(str(data["meta"]))["cases"]
  return data, [(i, tuple(shape), seed, scale) for i, (shape, seed, scale) in enumerate(cases)]


def test_suo_equals_dks_sampler_for_the_same_key():
  data, cases = _suo_fixture()
  for i, shape, seed, scale in cases:
    key = jax.random.PRNGKey(seed)
    c_in, c_out = shape[-2:]
    # The same key gives the same normals (dks's run had jax_threefry_partitionable on), and the
    # same kernel: bit for bit with XLA's optimisations on (measured), within a few ulp under the
    # suite's --xla_backend_optimization_level=0 (tests/helpers/runner.py).
    normal = jax.random.normal(key, (max(c_in, c_out), min(c_in, c_out)))
    np.testing.assert_array_max_ulp(normal, data[f"{i}/normal"], maxulp=4)
    got = inits.scaled_uniform_orthogonal(scale)(key, shape, jnp.float32)
    np.testing.assert_allclose(got, data[f"{i}/draw"], rtol=0, atol=1e-6, err_msg=str(shape))


def test_delta_orthogonal_with_fewer_outputs_is_dks_rule():
  data, cases = _suo_fixture()
  for i, shape, seed, _ in cases:
    if len(shape) == 4 and shape[-1] < shape[-2]:  # where jax's delta_orthogonal raises
      got = inits.kernel("delta_orthogonal", 1.0)(jax.random.PRNGKey(seed), shape, jnp.float32)
      np.testing.assert_allclose(got, data[f"{i}/draw"], rtol=0, atol=1e-6, err_msg=str(shape))


def test_bias_is_n_0_sigma_b2_and_zeros_at_zero():
  assert inits.bias(0.0) is jax.nn.initializers.zeros
  b = np.asarray(inits.bias(0.05)(KEY, (20_000,), jnp.float32), np.float64)
  np.testing.assert_array_equal(b, jax.nn.initializers.normal(np.sqrt(0.05))(KEY, (20_000,)))
  assert b.var() == pytest.approx(0.05, rel=0.05)


def test_bad_values_are_refused_in_one_sentence():
  with pytest.raises(ValueError, match="unknown initialiser 'xavier'; known: he, gaussian"):
    inits.kernel("xavier")
  with pytest.raises(ValueError, match=r"^sigma_w2=0.0 cannot be used: give a finite number > 0"):
    inits.kernel("he", 0.0)
  with pytest.raises(ValueError, match=r"^sigma_b2=-1.0 cannot be used"):
    inits.bias(-1.0)
  with pytest.raises(ValueError, match="odd spatial sizes"):
    inits.kernel("suo")(KEY, (2, 2, 8, 8))


def test_a_new_initialiser_is_one_register_call():
  entry = inits.Init("ones", lambda s: jax.nn.initializers.constant(s), "every weight sigma_w2")
  inits.register(entry)
  try:
    assert float(inits.kernel("ones", 3.0)(KEY, (1, 1, 2, 2)).sum()) == 12.0
    with pytest.raises(ValueError, match="already registered"):
      inits.register(entry)
  finally:
    inits.INITS.pop("ones")
