"""cnn_depth/optim.py: the step-decay schedule with warm-up, and SGD as PyTorch's (coupled weight
decay; two steps of a ResNet-20 against torch.optim.SGD, from tests/fixtures/torch_equality)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers.interop import fixture, torch_weights

from cnn_depth import optim
from cnn_depth.interop import architectures, convert


def test_schedule_step_decay_and_warmup():
  s = optim.step_decay_schedule(0.1, [32000, 48000])
  assert [float(s(i)) for i in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx(
    [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
  )
  w = optim.step_decay_schedule(0.1, [32000, 48000], warmup_steps=400, warmup_lr=0.01)
  assert [float(w(i)) for i in (0, 399, 400, 31999, 32000, 48000)] == pytest.approx(
    [0.01, 0.01, 0.1, 0.1, 0.01, 0.001]
  )
  assert (
    optim.to_steps(250, "epochs", 391) == 97750 and optim.to_steps(64000, "steps", 391) == 64000
  )
  with pytest.raises(ValueError, match="after the warm-up"):
    optim.step_decay_schedule(0.1, [300], warmup_steps=400)


def test_sgd_is_torch_style_coupled_weight_decay():
  tx = optim.sgd(0.1, momentum=0.9, weight_decay=1e-4)
  p = {"w": jnp.array([1.0, -2.0])}
  g = {"w": jnp.array([0.5, 0.5])}
  st = tx.init(p)
  u1, st = tx.update(g, st, p)
  # torch: buf = g + wd * p; p -= lr * buf
  np.testing.assert_allclose(u1["w"], -0.1 * (g["w"] + 1e-4 * p["w"]), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("nesterov", [False, True])
def test_two_sgd_steps_equal_torch_optim_sgd_in_float64(nesterov):
  data, keys = fixture(f"sgd_{'nesterov' if nesterov else 'momentum'}")
  arch = architectures.get("cifar_reference", "resnet20")
  weights = torch_weights.generate(keys, dtype=np.float64)
  with jax.enable_x64(True):
    model = convert.build(arch, dtype="float64", bn_impl="flax")
    variables = convert.from_torch(weights, arch, dtype=np.float64)
    params, stats = variables["params"], variables["batch_stats"]
    tx = optim.sgd(0.1, momentum=0.9, nesterov=nesterov, weight_decay=1e-4)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, stats, opt_state, x, y):
      def loss_fn(p):
        logits, new = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                  mutable=["batch_stats"])  # fmt: skip
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new

      (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), new["batch_stats"], opt_state, loss

    for i in range(2):
      x = jnp.asarray(data[f"x{i}"].transpose(0, 2, 3, 1), jnp.float64)
      params, stats, opt_state, loss = step(params, stats, opt_state, x, jnp.asarray(data[f"y{i}"]))
      assert float(loss) == pytest.approx(float(data[f"loss{i}"]), rel=1e-12)
    after = convert.to_torch({"params": params, "batch_stats": stats}, arch)
  for key, delta in ((k[6:], data[k]) for k in data.files if k.startswith("delta/")):
    ours = after[key] - weights[key]
    if key.endswith("running_var"):
      continue  # torch's unbiased update: test_logits_equal_the_pytorch_class checks its formula
    scale = np.abs(delta).max()
    np.testing.assert_allclose(ours, delta, rtol=0, atol=1e-6 * scale + 1e-12, err_msg=key)
