"""cnn_depth/state.py: the train state's shapes without building it, and the unoptimised init
program."""

import jax
import numpy as np
import pytest

from cnn_depth import models, optim
from cnn_depth import state as state_lib


@pytest.mark.slow
def test_state_shapes_and_the_unoptimised_init():
  """`train_state_shapes` is what `create_train_state` builds; the init program is compiled without
  XLA's backend optimisations (state.INIT_OPTIONS), which moves no draw by more than 3 ulp
  (2.4e-7 relative; measured the same for ResNet-8 to 56)."""
  model = models.build_model({"family": "cifar_resnet", "depth": 8, "width": 4})
  tx = optim.sgd(0.1, momentum=0.9)
  state = state_lib.create_train_state(model, tx, jax.random.key(3), (8, 8, 1))
  shapes = state_lib.train_state_shapes(model, tx, (8, 8, 1))
  as_spec = lambda t: jax.tree.map(lambda a: (a.shape, a.dtype), t)
  assert as_spec(state) == as_spec(shapes)
  optimised = jax.jit(state_lib._init_fn(model, tx, jax.random.key(3), (8, 8, 1)))()
  for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(optimised.params)):
    np.testing.assert_array_max_ulp(np.asarray(a), np.asarray(b), maxulp=3)
