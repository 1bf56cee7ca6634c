"""The classic families (cnn_depth/models/lenet.py ... densenet.py): LeNet-5, AlexNet, VGG, NiN,
GoogLeNet, DenseNet.

Counts come from `jax.eval_shape` (nothing is initialised), so even VGG-19's 144M parameters cost
well under a second; training runs on tiny variants through the project's own train step.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from test_models import without_block  # the variables of the same net with one block fewer

from cnn_depth import layers, models, optim, steps
from cnn_depth import state as state_lib
from cnn_depth.analysis import lesion
from cnn_depth.models import alexnet, densenet, googlenet, lenet, nin, vgg

IMAGENET, CIFAR = (224, 224, 3), (32, 32, 3)
MEAN, STD = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)
KEY = jax.random.key(0, impl="rbg")  # initialising with threefry compiles twice as long on the CPU


def init(model, x):
  return jax.jit(lambda x: model.init(KEY, x, train=False))(x)


def forward(model):
  """model.apply in inference mode, compiled once for any variables, images and gates."""
  return jax.jit(lambda v, x, gates=None: model.apply(v, x, train=False, gates=gates))


def n_params(model, shape):
  return models.count_params(models.init_shapes(model, shape)["params"])


def build(family, depth, **kw):
  return models.build_model({"family": family, "depth": depth, **kw})


# --- parameter counts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
  "family,depth,count",
  [
    ("alexnet", 8, 61_100_840),
    ("vgg", 11, 132_863_336),
    ("vgg", 13, 133_047_848),
    ("vgg", 16, 138_357_544),
    ("vgg", 19, 143_667_240),
    (
      "vgg_bn",
      16,
      138_365_992,
    ),  # torchvision's vgg16_bn: BN after convolutions that keep their bias
    ("imagenet_densenet", 121, 7_978_856),
  ],
)
def test_exact_imagenet_counts(family, depth, count):
  """torchvision's counts at 1000 classes (the papers give them only to 2-3 digits)."""
  assert n_params(build(family, depth), IMAGENET) == count


def test_lenet5_has_the_papers_60000_parameters():
  """LeCun et al. 1998: C1 156, S2 12, C3 1,516 (Table I connections), S4 32, C5 48,120,
  F6 10,164."""
  params = models.init_shapes(build("lenet5", 5), (32, 32, 1))["params"]
  per_layer = {name: models.count_params(p) for name, p in params.items()}
  assert per_layer == {
    "c1": 156,
    "s2": 12,
    "c3": 1_516,
    "s4": 32,
    "c5": 48_120,
    "f6": 10_164,
    "head": 850,
  }
  assert sum(per_layer.values()) - per_layer["head"] == 60_000
  full = models.init_shapes(lenet.LeNet5(connection_table=False), (32, 32, 1))["params"]
  assert models.count_params(full["c3"]) == 5 * 5 * 6 * 16 + 16


@pytest.mark.parametrize(
  "family,depth,paper",
  [
    ("cifar_densenet", 40, 1.0e6),
    ("cifar_densenet", 100, 7.0e6),
    ("cifar_densenet_bc", 190, 25.6e6),
  ],
)
def test_cifar_densenet_counts_within_three_percent(family, depth, paper):
  """Huang et al. 2017, Table 2."""
  params = n_params(build(family, depth, num_classes=10), CIFAR)
  assert abs(params - paper) / paper < 0.03, params


def test_cifar_densenet_bc_100_rounds_to_the_papers_figure():
  """Table 2 gives 0.8M, one significant digit; the net has 769,162 (3.9% below 0.8M), which rounds
  to it. The same code gives the table's 15.3M for BC L=250 (k=24) and 25.6M for L=190 (k=40)."""
  params = n_params(build("cifar_densenet_bc", 100, num_classes=10), CIFAR)
  assert params == 769_162 and round(params, -5) == 800_000


def test_densenet_layer_l_sees_k0_plus_k_times_l_minus_1_maps():
  k, theta = 12, 0.5
  model = densenet.cifar_densenet(100, bc=True)
  params = models.init_shapes(model, CIFAR)["params"]
  assert model.stage_sizes == (16, 16, 16) and model.growth_rate == k
  k0 = 2 * k  # BC: the stem has 2k maps
  for s in range(3):
    for b in range(16):  # layer l = b + 1 sees k0 + k (l - 1) maps, BC-reduces them to 4k, adds k
      layer = params[f"stage{s}_block{b}"]
      assert layer["bn1"]["scale"].shape == (k0 + k * b,)
      assert layer["conv1"]["kernel"].shape == (1, 1, k0 + k * b, 4 * k)
      assert layer["conv2"]["kernel"].shape == (3, 3, 4 * k, k)
    m = k0 + 16 * k
    if s < 2:  # the transition compresses to floor(theta m) maps: the next block's k0
      assert params[f"transition{s + 1}_conv"]["kernel"].shape == (1, 1, m, int(theta * m))
      k0 = int(theta * m)
  assert params["head"]["kernel"].shape == (k0 + 16 * k, 10)
  plain = models.init_shapes(densenet.cifar_densenet(40), CIFAR)["params"]
  assert plain["stage2_block11"]["conv1"]["kernel"].shape == (3, 3, 16 + 2 * 12 * 12 + 11 * 12, 12)


def test_googlenet_aux_heads_are_optional_and_cost_what_the_paper_says():
  """§5: avg pool 5x5/3 -> 4x4, 1x1 conv 128, dense 1024, dense 1000, after 4a (512 maps) and 4d
  (528)."""
  base = n_params(build("googlenet", 22), IMAGENET)
  with_aux = models.init_shapes(build("googlenet", 22, aux_heads=True), IMAGENET)["params"]
  head = lambda c: (c * 128 + 128) + (4 * 4 * 128 * 1024 + 1024) + (1024 * 1000 + 1000)
  assert models.count_params(with_aux) - base == head(512) + head(528)
  assert {"aux1", "aux2"} <= set(with_aux)
  assert "aux1" not in models.init_shapes(build("googlenet", 22), IMAGENET)["params"]


# --- multiply-adds: the 1x1 bottleneck's saving --------------------------------------------------


class _FiveByFive(nn.Module):
  """A 5x5 conv to 32 maps, optionally after a 1x1 reduction to 16 maps (the lecture example)."""

  reduce: bool

  @nn.compact
  def __call__(self, x, *, train):
    if self.reduce:
      x = layers.Conv(16, 1)(x)
    return layers.Conv(32, 5)(x)


def test_one_by_one_reduction_saves_multiply_adds():
  shape = (28, 28, 192)
  assert (
    models.multiply_adds(_FiveByFive(False), shape) == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
  )
  assert (
    models.multiply_adds(_FiveByFive(True), shape)
    == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16
    == 12_443_648
  )


def test_googlenet_multiply_adds_show_the_reductions():
  ours = models.multiply_adds(build("googlenet", 22), IMAGENET)
  naive = models.multiply_adds(build("googlenet", 22, reduce=False), IMAGENET)
  # Table 1 sums to 1.5G ops with a conv1 row of 34M; the 7x7/2 conv to 64 maps costs 118M.
  conv1 = 112 * 112 * 64 * 7 * 7 * 3
  assert abs(ours - (1.502e9 - 34e6 + conv1)) / ours < 0.01, ours
  assert naive > 2.5 * ours

  # Module 3a alone (Table 1: 128M ops; 163,328 weights, listed as 159K with K = 1024).
  class Only3a(nn.Module):
    @nn.compact
    def __call__(self, x, *, train):
      return googlenet.Inception(googlenet.INCEPTION_STAGES[0][0])(x)

  assert models.multiply_adds(Only3a(), (28, 28, 192)) == 28 * 28 * 163_328


def test_lenet5_multiply_adds_count_only_the_connection_tables_kernels():
  macs = models.multiply_adds(build("lenet5", 5), (32, 32, 1))
  c3 = 10 * 10 * 25 * 60
  assert macs == 28 * 28 * 6 * 25 + c3 + 120 * 400 + 120 * 84 + 84 * 10
  dense = models.multiply_adds(lenet.LeNet5(connection_table=False), (32, 32, 1))
  assert dense - macs == 10 * 10 * 25 * (96 - 60)


# --- forward and training on tiny variants -------------------------------------------------------

# One small module per stage, the last two each followed by an auxiliary head: the full net's 57
# convolutions compile for half a minute on a 2-core CPU; its counts are checked above.
TINY_INCEPTION = {"inception_stages": (((8, 8, 8, 8, 8, 8),),) * 3, "aux_after": ((1, 0), (2, 0))}
TINY = {
  "lenet5": (lambda: lenet.lenet5(), (28, 28, 1)),  # MNIST-sized: padded to 32x32
  "alexnet": (
    lambda: alexnet.alexnet(num_classes=10, widths=(4, 8, 8, 8, 8), hidden=16),
    (63, 63, 3),
  ),
  "vgg": (lambda: vgg.vgg(11, width=4, hidden=16, num_classes=10), (32, 32, 3)),
  "cifar_vgg_bn": (lambda: vgg.cifar_vgg(11, bn=True, width=4), (16, 16, 3)),
  "nin": (lambda: nin.nin(9), (32, 32, 3)),
  "googlenet": (
    lambda: googlenet.googlenet(num_classes=10, aux_heads=True, **TINY_INCEPTION),
    (32, 32, 3),
  ),
  "cifar_densenet_bc": (lambda: densenet.cifar_densenet(16, bc=True, growth_rate=4), (16, 16, 3)),
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_output_shapes_in_both_modes(name):
  """Shapes only (jax.eval_shape: nothing compiles): logits, and the BN statistics a training
  forward updates; the training forward draws its dropout from the 'drop' stream."""
  make, shape = TINY[name]
  model = make()
  x = jnp.zeros((3,) + shape)
  variables = jax.eval_shape(lambda: model.init(KEY, x, train=False))
  logits = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
  assert logits.shape == (3, 10) and logits.dtype == jnp.float32
  logits, updates = jax.eval_shape(
    lambda v: model.apply(v, x, train=True, mutable=["batch_stats"], rngs={"drop": KEY}), variables
  )
  assert logits.shape == (3, 10)
  assert jax.tree_util.tree_structure(
    updates.get("batch_stats", {})
  ) == jax.tree_util.tree_structure(variables.get("batch_stats", {}))


# NiN and the ImageNet-head VGG train like the others (plain convolutions, pools, dropout: nothing
# these five do not have); leaving their steps out keeps this file near a minute on a cold 2-core
# CPU.
TRAINED = ("lenet5", "alexnet", "cifar_vgg_bn", "googlenet", "cifar_densenet_bc")


@pytest.mark.parametrize("name", TRAINED)
def test_one_training_step(name):
  make, shape = TINY[name]
  model = make()
  tx = optim.sgd(0.01, weight_decay=0.0)  # so a parameter moves only by its gradient
  rng = np.random.default_rng(0)
  batch = {
    "image": rng.integers(0, 256, (4,) + shape, dtype=np.uint8),
    "label": rng.integers(0, 10, (4,), dtype=np.int32),
  }
  mean, std = MEAN[: shape[-1]], STD[: shape[-1]]
  state = state_lib.create_train_state(model, tx, KEY, shape)
  before = jax.tree_util.tree_map(np.asarray, state.params)  # host copies from before the step
  step = steps.compile_train_step(model, tx, mean, std, augment=False, log_block_norms=True)
  new, metrics = step(state, batch)
  assert int(new.step) == 1 and np.isfinite(float(metrics["loss_sum"]))
  assert int(metrics["count"]) == 4 and int(metrics["nonfinite"]) == 0
  assert metrics["block_grad_norms"].shape == (model.num_blocks,)
  # Parameters move only by their gradients: the head's and the auxiliary heads' (their own loss)
  # all do, and nearly every other array (a tiny branch behind a dead ReLU may not, on 4 images).
  moved = jax.tree_util.tree_map(lambda a, b: bool(jnp.any(a != b)), before, new.params)
  outputs = {k: moved[k] for k in ("head", "aux1", "aux2") if k in moved}
  assert "head" in outputs and all(jax.tree_util.tree_leaves(outputs)), outputs
  assert ("aux1" in outputs and "aux2" in outputs) == (name == "googlenet")
  flags = jax.tree_util.tree_leaves(moved)
  assert sum(flags) >= 0.9 * len(flags), moved
  # The eval step on the new state: shapes only (no second compilation).
  ev = jax.eval_shape(
    lambda s, b: steps.eval_step(s, b, model=model, mean=mean, std=std), new, batch
  )
  assert ev["correct"].shape == ()


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


def test_googlenet_aux_heads_run_only_in_training():
  model, shape = TINY["googlenet"][0](), TINY["googlenet"][1]
  x = jax.random.normal(jax.random.key(1), (2,) + shape)
  v = init(model, x)
  assert {"aux1", "aux2"} <= set(v["params"])
  _, col = jax.jit(
    lambda v, x, k: model.apply(v, x, train=True, rngs={"drop": k}, mutable=["aux_logits"])
  )(v, x, jax.random.key(2))
  assert set(col["aux_logits"]) == {"aux1_logits", "aux2_logits"}
  (aux1,) = col["aux_logits"]["aux1_logits"]
  assert aux1["logits"].shape == (2, 10) and float(aux1["weight"]) == pytest.approx(0.3)
  _, col = jax.eval_shape(lambda v, x: model.apply(v, x, train=False, mutable=["aux_logits"]), v, x)
  assert not col


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


def test_densenet_gate_zero_deletes_the_layers_new_maps():
  model = densenet.cifar_densenet(16, bc=True, growth_rate=4)
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
  v = init(model, x)
  assert model.num_blocks == 6 and not models.downsampling_blocks(model).any()
  run = forward(model)
  gates = lesion.deletion_gates(6, [4])  # stage2_block0
  ones = np.ones(6, np.float32)
  zeroed = jax.tree_util.tree_map(lambda a: a, v["params"])
  zeroed["stage2_block0"]["conv2"]["kernel"] = jnp.zeros_like(
    zeroed["stage2_block0"]["conv2"]["kernel"]
  )
  np.testing.assert_allclose(
    run(v, x, gates), run({**v, "params": zeroed}, x, ones), rtol=1e-6, atol=1e-6
  )
  assert not np.allclose(run(v, x, gates), run(v, x, ones))


def test_googlenet_blocks_are_the_inception_modules():
  model = googlenet.googlenet()
  assert model.stage_sizes == (2, 5, 2) and model.num_blocks == 9
  # 3a 192->256, 3b ->480, 4a ->512, 4b 512, 4c 512, 4d ->528, 4e ->832, 5a 832, 5b ->1024
  np.testing.assert_array_equal(models.downsampling_blocks(model), [1, 1, 1, 0, 0, 1, 1, 0, 1])


# --- invalid configurations -----------------------------------------------------------------------


@pytest.mark.parametrize(
  "cfg,match",
  [
    (
      {"family": "vgg", "depth": 12},
      r"VGG depth must be one of \[11, 13, 16, 19\]; got 12 \(nearest: 11\)",
    ),
    ({"family": "cifar_vgg_bn", "depth": 20}, r"one of \[11, 13, 16, 19\]; got 20 \(nearest: 19\)"),
    ({"family": "cifar_densenet", "depth": 41}, r"3n\+4 .*nearest valid depths: 40 and 43"),
    ({"family": "cifar_densenet_bc", "depth": 99}, r"6n\+4 .*nearest valid depths: 94 and 100"),
    ({"family": "imagenet_densenet", "depth": 120}, r"\[121, 161, 169, 201, 264\]; got 120"),
    ({"family": "lenet5", "depth": 7}, r"LeNet-5 depth must be one of \[5\]"),
    ({"family": "alexnet", "depth": 5}, r"AlexNet depth must be one of \[8\]"),
    ({"family": "nin", "depth": 10}, r"NiN depth must be one of \[9, 12\]"),
    ({"family": "googlenet", "depth": 21}, r"GoogLeNet depth must be one of \[22\]"),
    (
      {"family": "vgg", "depth": 16, "growth_rate": 12},
      r"growth_rate=12 does not apply to family 'vgg'; it applies to cifar_densenet",
    ),
    (
      {"family": "cifar_densenet", "depth": 40, "width": 32},
      r"width=32 does not apply .* reset it \(to 16\)",
    ),
    (
      {"family": "cifar_vgg", "depth": 11, "survival_last": 0.5},
      r"survival_last=0.5 does not apply to family 'cifar_vgg'; it applies to cifar_resnet",
    ),
    (
      {"family": "alexnet", "depth": 8, "bn_groups": 8},
      r"bn_groups=8 does not apply to family 'alexnet'",
    ),
    (
      {"family": "cifar_resnet", "depth": 20, "aux_heads": True},
      r"aux_heads=True does not apply to family 'cifar_resnet'; it applies to googlenet",
    ),
    ({"family": "vggg", "depth": 16}, r"unknown model family 'vggg'"),
  ],
)
def test_invalid_configs_are_refused_with_one_sentence(cfg, match):
  with pytest.raises(ValueError, match=match):
    models.build_model(cfg)


def test_a_config_built_on_the_base_fields_builds_a_classic_net():
  """config.base()'s ResNet fields at their defaults are accepted (and ignored) by the classic
  nets."""
  from cnn_depth import config as config_lib

  cfg = {
    **config_lib.base().model.to_dict(),
    "family": "cifar_densenet_bc",
    "depth": 100,
    "width": 0,
    "num_classes": 10,
  }
  model = models.build_model(cfg)
  assert isinstance(model, densenet.DenseNet) and model.growth_rate == 12
  net = models.build_model(
    {**cfg, "family": "cifar_vgg_bn", "depth": 19, "width": 16, "dropout": 0.3}
  )
  assert (net.width, net.bn, net.dropout, net.stage_sizes) == (16, True, 0.3, (2, 2, 4, 4, 4))
  # config.base()'s own width (16) asks nothing of a family that does not read it.
  assert models.build_model({**cfg, "width": 16}).growth_rate == 12


def test_inputs_the_nets_cannot_take_are_refused():
  with pytest.raises(ValueError, match="at most 32x32"):
    models.init_shapes(lenet.lenet5(), (64, 64, 1))
  with pytest.raises(ValueError, match="at least 63x63"):
    models.init_shapes(alexnet.alexnet(), (32, 32, 3))
  with pytest.raises(ValueError, match="no blocks to gate"):
    lenet.lenet5().init(jax.random.key(0), jnp.zeros((1, 32, 32, 1)), train=False, gates=np.ones(3))
  with pytest.raises(ValueError, match="compression theta"):
    models.init_shapes(densenet.cifar_densenet(40, compression=1.5), CIFAR)
