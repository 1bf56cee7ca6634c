"""AlexNet (cnn_depth/models/alexnet.py): dropout draws from the 'drop' rng stream in training and
nothing in inference (its counts: tests/models/test_counting.py; its forward, training step and
refused inputs: tests/models/test_registry.py, with every classic family's)."""

import jax
import numpy as np
import pytest
from helpers.nets import TINY, forward, init


@pytest.mark.slow
def test_dropout_draws_from_the_drop_stream():
  model, shape = TINY["alexnet"][0](), TINY["alexnet"][1]
  x = jax.random.normal(jax.random.key(1), (2,) + shape)
  v = init(model, x)
  run = jax.jit(lambda key: model.apply(v, x, train=True, rngs={"drop": key}))
  np.testing.assert_array_equal(run(jax.random.key(3)), run(jax.random.key(3)))
  assert not np.allclose(run(jax.random.key(3)), run(jax.random.key(4)))
  with pytest.raises(Exception, match="drop"):
    jax.eval_shape(lambda: model.apply(v, x, train=True))
  # Inference mode draws nothing: no rng needed, and the same output every time.
  np.testing.assert_array_equal(forward(model)(v, x), forward(model)(v, x))
