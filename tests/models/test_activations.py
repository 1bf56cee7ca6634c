"""The activation registry: each entry's jax.numpy form equals its NumPy form, each NumPy
derivative equals a central difference, transforms apply as gamma * (phi(alpha x + beta) + delta),
and a new entry is one register call."""

import jax
import numpy as np
import pytest

from cnn_depth.models import activations

X = np.concatenate([np.linspace(-4.0, 4.0, 401), [-1e-3, 1e-3, 0.3, -0.3]])


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS))
def test_jax_form_equals_numpy_form(name):
  act = activations.get(name)
  with jax.enable_x64(True):
    got = np.asarray(act.fn(jax.numpy.asarray(X)))
  np.testing.assert_allclose(got, act.numpy(X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS))
def test_derivative_equals_a_central_difference(name):
  act = activations.get(name)
  x = X[np.abs(X) > 1e-2]  # away from the kinks of relu, leaky relu, elu
  h = 1e-6
  numeric = (act.numpy(x + h) - act.numpy(x - h)) / (2 * h)
  np.testing.assert_allclose(act.derivative(x), numeric, rtol=1e-6, atol=1e-8)


def test_leaky_relu_takes_its_slope():
  f = activations.make("leaky_relu", negative_slope=0.2)
  np.testing.assert_allclose(np.asarray(f(np.array([-1.0, 2.0]))), [-0.2, 2.0])
  assert activations.get("leaky_relu").numpy(-1.0, negative_slope=0.2) == -0.2


def test_a_transform_scales_and_shifts_input_and_output():
  t = activations.Transform(input_scale=2.0, input_shift=0.5, output_scale=3.0, output_shift=-0.1)
  f = activations.make("tanh", t)
  x = np.array([-1.0, 0.0, 0.7], np.float32)
  np.testing.assert_allclose(np.asarray(f(x)), 3.0 * (np.tanh(2.0 * x + 0.5) - 0.1), rtol=1e-6)
  assert activations.make("tanh") is activations.get("tanh").fn


def test_unknown_name_lists_the_known_ones():
  with pytest.raises(ValueError, match="unknown activation 'tahn'; known: relu, leaky_relu, tanh"):
    activations.get("tahn")


def test_a_new_activation_is_one_register_call():
  entry = activations.Activation("cube", lambda x: x**3, lambda x: x**3, lambda x: 3 * x**2)
  activations.register(entry)
  try:
    assert activations.make("cube")(2.0) == 8.0
    with pytest.raises(ValueError, match="already registered"):
      activations.register(entry)
  finally:
    activations.ACTIVATIONS.pop("cube")
