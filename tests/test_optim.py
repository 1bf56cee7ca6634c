"""cnn_depth/optim.py: the step-decay schedule with warm-up, its durations as fractions of the run
(every config's schedule in steps as before at its default length, and scaled when shortened), and
SGD as PyTorch's (coupled weight decay; two steps of a ResNet-20 against torch.optim.SGD, from
tests/fixtures/torch_equality)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers.interop import fixture, torch_weights

from cnn_depth import config as config_lib
from cnn_depth import optim, train
from cnn_depth.interop import architectures, convert

# Training images of each dataset the configs name (steps per epoch without reading the data).
TRAIN_IMAGES = {"cifar10": 50_000, "imagenet2012": 1_281_167, "digits": 1_500}
# Each config file at its default length, as the code before lr_unit 'fraction' scheduled it
# (computed with that code, at commit ad97b51): steps per epoch, run length, lr boundaries and
# warm-up in steps, and the checkpoint steps as (first, last, how many).
BEFORE_FRACTIONS = {
  "quickstart.py": (11, 800, [400, 600], 0, (800, 800, 1)),
  "quickstart.py:steps=400": (11, 400, [200, 300], 0, (400, 400, 1)),
  "quickstart.py:steps=201": (11, 201, [100, 150], 0, (201, 201, 1)),
  "quickstart.py:steps=333": (11, 333, [166, 249], 0, (333, 333, 1)),
  "vgg_digits.py": (11, 800, [400, 600], 0, (800, 800, 1)),
  "cifar_resnet.py": (390, 64_000, [32_000, 48_000], 0, (5_000, 64_000, 13)),
  "cifar_resnet.py:depth=110": (390, 64_000, [32_000, 48_000], 400, (5_000, 64_000, 13)),
  "cifar_resnet.py:depth=1202": (390, 64_000, [32_000, 48_000], 400, (5_000, 64_000, 13)),
  "cifar_preact.py": (390, 64_000, [32_000, 48_000], 400, (5_000, 64_000, 13)),
  "cifar_preact.py:depth=56,block=basic": (390, 64_000, [32_000, 48_000], 0, (5_000, 64_000, 13)),
  "cifar_vgg.py": (390, 64_000, [32_000, 48_000], 0, (5_000, 64_000, 13)),
  "cifar_densenet.py": (390, 64_000, [32_000, 48_000], 0, (5_000, 64_000, 13)),
  "stochastic_depth.py": (390, 195_000, [97_500, 146_250], 0, (5_000, 195_000, 39)),
  "imagenet_resnet.py": (5_004, 450_360, [150_120, 300_240], 0, (5_004, 450_360, 90)),
}


def _schedule(spec: str, **overrides):
  """(steps per epoch, length, boundaries, warm-up, checkpoint steps) of configs/<spec>, as the
  training loop runs it (train.num_steps, optim.from_config's schedule_steps, train.due)."""
  c = config_lib.load_config_file(f"configs/{spec}")
  c.update_from_flattened_dict(overrides)
  config_lib.check(c)
  spe = TRAIN_IMAGES[c.dataset.name] // c.batch_size
  total = train.num_steps(c, spe)
  boundaries, warmup = optim.schedule_steps(c, spe)
  saves = [s for s in range(1, total + 1) if train.due(s, c.checkpoint_every_steps, total)]
  return spe, total, boundaries, warmup, (saves[0], saves[-1], len(saves))


@pytest.mark.parametrize("spec", sorted(BEFORE_FRACTIONS))
def test_every_config_schedules_the_same_steps_as_before_fractions(spec):
  assert _schedule(spec) == BEFORE_FRACTIONS[spec]


def test_a_shortened_run_keeps_its_recipe():
  # He et al.'s drops at half and three quarters, the warm-up its 400/64k share, digits' one
  # checkpoint at the end, whatever the length.
  assert _schedule("quickstart.py", num_train_steps=200) == (11, 200, [100, 150], 0, (200, 200, 1))
  assert _schedule("vgg_digits.py", num_train_steps=1600)[2:] == ([800, 1200], 0, (1600, 1600, 1))
  assert _schedule("cifar_resnet.py:depth=110", num_train_steps=640)[1:4] == (640, [320, 480], 4)
  assert _schedule("stochastic_depth.py", num_epochs=50.0)[1:3] == (19_500, [9_750, 14_625])
  assert _schedule("imagenet_resnet.py", num_epochs=9.0)[1:3] == (45_036, [15_012, 30_024])


def test_old_workdirs_units_and_fractions_of_a_first_length():
  # A config.json saved before fractions (lr_unit 'steps' or 'epochs') schedules as it did.
  old = {"lr_unit": "steps", "lr_boundaries": [400, 600], "warmup": 0.0}
  assert optim.schedule_steps({**old, "num_epochs": -1.0, "num_train_steps": 800}, 11) == (
    [400, 600],
    0,
  )
  epochs = {"lr_unit": "epochs", "lr_boundaries": [250, 375], "warmup": 0, "num_epochs": 500.0}
  assert optim.schedule_steps(epochs, 390) == ([97_500, 146_250], 0)
  # An extended run keeps the drops of its first length.
  frac = {"lr_unit": "fraction", "lr_boundaries": [0.5, 0.75], "warmup": 0.0}
  run = {**frac, "num_epochs": -1.0, "num_train_steps": 1600}
  assert optim.schedule_steps(run, 11) == ([800, 1200], 0)
  assert optim.schedule_steps(run, 11, length=800) == ([400, 600], 0)
  with pytest.raises(ValueError, match="lr_unit must be one of"):
    optim.to_steps(1, "iterations", 10)


def test_fractions_outside_the_run_are_refused_naming_the_field():
  c = config_lib.load_config_file("configs/quickstart.py")
  c.lr_boundaries = (400, 600)  # steps given where the unit is 'fraction'
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.check(c)
  assert str(e.value).startswith("lr_boundaries=(400, 600) cannot be used: it must be fractions")
  assert "--config.lr_unit=steps" in str(e.value)
  c.lr_unit = "steps"
  config_lib.check(c)
  c.lr_unit, c.lr_boundaries, c.warmup = "fraction", (0.5, 0.75), 2.0
  with pytest.raises(config_lib.ConfigError, match="^warmup=2.0 cannot be used"):
    config_lib.check(c)


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


# --- the optimiser's fixes for depth: AGC and the scalars' learning rate ------------------------


def _nfnets_unitwise_norm(x):
  """deepmind-research nfnets/agc_optax.py's `unitwise_norm`, restated (its module imports the
  removed jax.tree_multimap)."""
  if len(jnp.squeeze(x).shape) <= 1:  # Scalars and vectors
    axis, keepdims = None, False
  elif len(x.shape) in [2, 3]:  # Linear layers of shape IO or multihead linear
    axis, keepdims = 0, True
  elif len(x.shape) == 4:  # Conv kernels of shape HWIO
    axis, keepdims = [0, 1, 2], True
  else:
    raise ValueError(f"Got a parameter with shape not in [1, 2, 4]! {x}")
  return jnp.sum(x**2, axis=axis, keepdims=keepdims) ** 0.5


def _nfnets_agc(grad, param, clip=0.01, eps=1e-3):
  """agc_optax.py's `adaptive_grad_clip` update for one parameter (its `my_clip`)."""
  g_norm, max_norm = (
    _nfnets_unitwise_norm(grad),
    clip * jnp.maximum(_nfnets_unitwise_norm(param), eps),
  )
  clipped = grad * (max_norm / jnp.maximum(g_norm, 1e-6))
  return jnp.where(g_norm < max_norm, grad, clipped)


def _tree(seed, scale=1.0):
  """A tiny net's parameters: a conv, a scanned stage of 3 blocks (kernel, BN-like vector, scalar),
  a lone scalar and the head; the units' sizes spread over decades so that some clip and some
  do not."""
  shapes = {
    "conv_init": {"kernel": (3, 3, 2, 4), "bias": (4,)},
    "stage0_blocks": {"conv": {"kernel": (3, 3, 3, 4, 4)}, "bn": {"scale": (3, 4)}, "alpha": (3,)},
    "bias_final": (),
    "head": {"kernel": (4, 10), "bias": (10,)},
  }
  rng = np.random.default_rng(seed)
  spread = lambda s: np.logspace(-2, 0, s[-1]) if s else 1.0
  return jax.tree.map(
    lambda s: np.asarray(scale * rng.standard_normal(s) * spread(s), np.float32),
    shapes,
    is_leaf=lambda s: isinstance(s, tuple),
  )


def _reference_clip(grads, params):
  """NFNets' AGC on the unrolled net: each scanned block's slice on its own; the head's kernel
  unclipped (experiment_nfnets.py: the linear layer's weights have clipping=None)."""

  def leaf(path, g, p):
    names = tuple(k.key for k in path)
    if names == ("head", "kernel"):
      return g
    if names[0] == "stage0_blocks":
      return jnp.stack([_nfnets_agc(g[i], p[i]) for i in range(g.shape[0])])
    return _nfnets_agc(g, p)

  return jax.tree_util.tree_map_with_path(leaf, grads, params)


def test_agc_is_nfnets_rule_per_block_and_leaves_the_head_kernel_alone():
  params, grads = _tree(0), _tree(1, scale=0.05)
  # optax's AGC is NFNets' rule: bit for bit op by op (measured); compiled, as here, the two
  # programs' fusions may round 1 ulp apart.
  ours = jax.jit(optim.adaptive_grad_clip, static_argnums=2)(grads, params, 0.01)
  reference = jax.jit(_reference_clip)(grads, params)
  jax.tree.map(lambda a, b: np.testing.assert_array_max_ulp(a, b, maxulp=2), ours, reference)
  clipped = jax.tree.map(lambda a, b: bool((a != b).any()), ours, grads)
  assert not clipped["head"]["kernel"] and clipped["head"]["bias"]
  assert sum(jax.tree.leaves(clipped)) >= 5  # the rule fires: most leaves have a clipped unit


def test_agc_comes_before_weight_decay_and_momentum():
  """As in NFNets' SGD_AGC: two compiled steps of the whole optimiser equal SGD on the clipped
  gradient (to 2 ulp: XLA fuses the two programs differently), with the same state (a checkpoint
  restores with AGC on or off)."""
  params, grads = _tree(0), _tree(1, scale=0.05)
  tx, plain = optim.with_fixes(optim.sgd(0.1), grad_clip="agc"), optim.sgd(0.1)

  @jax.jit
  def two_steps(params, grads):
    state, plain_state, p, q = tx.init(params), plain.init(params), params, params
    for _ in range(2):
      u, state = tx.update(grads, state, p)
      v, plain_state = plain.update(_reference_clip(grads, q), plain_state, q)
      p, q = optax.apply_updates(p, u), optax.apply_updates(q, v)
    return p, q, state, plain_state

  p, q, state, plain_state = two_steps(params, grads)
  jax.tree.map(lambda a, b: np.testing.assert_array_max_ulp(a, b, maxulp=2), p, q)
  assert jax.tree.structure(state) == jax.tree.structure(plain_state)


def _first_update(tx, params, grads):
  return jax.jit(lambda p, g: tx.update(g, tx.init(p), p)[0])(params, grads)


def test_scalar_lr_scale_scales_exactly_the_scalars_and_the_classifier_bias():
  params, grads = _tree(0), _tree(1)
  plain = optim.sgd(0.1)
  u = _first_update(optim.with_fixes(plain, scalar_lr_scale=0.1), params, grads)
  v = _first_update(plain, params, grads)
  # Shape (), () per scanned block, and the head's bias (Fixup's groups: names with 'bias').
  scaled = {("stage0_blocks", "alpha"), ("bias_final",), ("head", "bias")}
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(u), jax.tree.leaves(v)):
    names = tuple(k.key for k in path)
    if names in scaled:  # compiled, XLA may fold lr * 0.1 into one constant: 1 ulp apart
      np.testing.assert_array_max_ulp(a, b * np.float32(0.1), maxulp=2)
    else:
      np.testing.assert_array_equal(a, b, str(names))


def test_the_default_fields_give_todays_optimiser():
  c = config_lib.base()
  assert (c.grad_clip, c.clip_lambda, c.scalar_lr_scale) == ("none", 0.01, 1.0)
  plain = optim.sgd(0.1)
  assert optim.with_fixes(plain) is plain
  params, grads = _tree(0), _tree(1)
  tx, schedule = optim.from_config(c, steps_per_epoch=390)
  today = optim.sgd(schedule, c.momentum, c.nesterov, c.weight_decay)
  assert jax.tree.structure(tx.init(params)) == jax.tree.structure(today.init(params))
  u, v = _first_update(tx, params, grads), _first_update(today, params, grads)
  jax.tree.map(np.testing.assert_array_equal, u, v)


@pytest.mark.parametrize(
  "override, message",
  [
    ("grad_clip=adaptive", "grad_clip='adaptive' cannot be used: it must be 'none' or 'agc'"),
    ("clip_lambda=0", "clip_lambda=0.0 cannot be used: it must be a finite number > 0"),
    ("scalar_lr_scale=-0.1", "scalar_lr_scale=-0.1 cannot be used: it must be a finite number"),
  ],
)
def test_the_fixes_fields_refuse_a_bad_value_in_one_sentence(override, message):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.parse_overrides(config_lib.base(), [f"--config.{override}"])
  assert str(e.value).startswith(message) and "\n" not in str(e.value)
  assert f"set --config.{override.split('=')[0]} to such a value (default: " in str(e.value)
  with pytest.raises(ValueError, match="grad_clip must be one of 'none', 'agc', got 'clip'"):
    optim.with_fixes(optim.sgd(0.1), grad_clip="clip")
