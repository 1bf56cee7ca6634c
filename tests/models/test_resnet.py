"""The ResNets and their plain twins (cnn_depth/models/resnet.py, blocks.py): parameter counts and
multiply-adds against the papers, invalid depths and blocks refused, and the forward behaviour the
studies rely on, through the ResNet: scanned and unrolled layouts (layout.py), gates, stochastic
depth and gradient routes (gating.py). The last test trains four families' BN both ways (fused and
flax), the ResNets among them.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.nets import without_block

from cnn_depth import models
from cnn_depth.models import ROUTE_BOTH, ROUTE_SKIP, activations, branches, fixes, shaping

CIFAR = (32, 32, 3)


def n_params(model, shape=CIFAR):
  return models.count_params(models.init_shapes(model, shape)["params"])


# --- parameter counts against the papers ---------------------------------------------------------


@pytest.mark.parametrize(
  "depth,count",
  [
    (20, 269_722),
    (32, 464_154),
    (44, 658_586),
    (56, 853_018),
    (110, 1_727_962),
    (1202, 19_421_274),
  ],
)
def test_cifar_resnet_option_a_exact_counts(depth, count):
  assert n_params(models.cifar_resnet(depth)) == count


@pytest.mark.parametrize("depth", [20, 56])
def test_plain_twin_and_option_a_are_parameter_free_shortcuts(depth):
  resnet = models.init_shapes(models.cifar_resnet(depth), CIFAR)["params"]
  plain = models.init_shapes(models.cifar_resnet(depth, residual=False), CIFAR)["params"]
  assert models.count_params(plain) == models.count_params(resnet)
  assert jax.tree_util.tree_structure(plain) == jax.tree_util.tree_structure(resnet)
  assert not any(
    "proj" in jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_leaves_with_path(resnet)
  )
  # Option B adds exactly two projections (1x1 conv + BN) at the two dimension changes.
  extra = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
  assert (
    n_params(models.cifar_resnet(depth, shortcut="B"))
    == n_params(models.cifar_resnet(depth)) + extra
  )


@pytest.mark.parametrize("depth,count", [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032)])
def test_imagenet_resnet_exact_counts(depth, count):
  assert n_params(models.imagenet_resnet(depth), (224, 224, 3)) == count


@pytest.mark.parametrize("depth,paper", [(164, 1.7e6), (1001, 10.2e6)])
def test_preact_bottleneck_counts_within_one_percent(depth, paper):
  """He et al. 2016b quote conv/dense weights (BN adds ~1.5%, which `count_params` includes)."""
  params = models.init_shapes(models.cifar_preact(depth), CIFAR)["params"]
  weights = sum(
    a.size
    for k, a in jax.tree_util.tree_leaves_with_path(params)
    if jax.tree_util.keystr(k).endswith("['kernel']")
  )
  assert round(weights, -5) == paper  # the paper's figure, to the digits it gives
  if depth == 1001:
    assert abs(weights - paper) / paper < 0.01
  assert 0.01 < models.count_params(params) / weights - 1 < 0.02


def test_multiply_adds_match_the_papers():
  assert abs(models.multiply_adds(models.cifar_resnet(20), CIFAR) - 41e6) / 41e6 < 0.02
  for depth, paper in [(18, 1.8e9), (34, 3.6e9), (50, 3.8e9)]:
    macs = models.multiply_adds(models.imagenet_resnet(depth), (224, 224, 3))
    assert abs(macs - paper) / paper < 0.025, (depth, macs)


@pytest.mark.slow
def test_bottleneck_stride_on_the_3x3_is_torchvisions_v1_5():
  """The same 25,557,032 parameters as torchvision's resnet50; the stride moved to the 3x3 costs
  4.09G multiply-adds instead of the paper's 3.86G (torchvision's model card: 4.09 GFLOPS)."""
  paper, v15 = (models.imagenet_resnet(50, bottleneck_stride=s) for s in ("1x1", "3x3"))
  for net in (paper, v15):
    assert models.count_params(models.init_shapes(net, (224, 224, 3))["params"]) == 25_557_032
  assert round(models.multiply_adds(paper, (224, 224, 3)) / 1e7) == 386
  assert round(models.multiply_adds(v15, (224, 224, 3)) / 1e7) == 409
  with pytest.raises(ValueError, match="bottleneck_stride must be"):
    models.init_shapes(models.imagenet_resnet(50, bottleneck_stride="2x2"), (64, 64, 3))


# --- invalid configurations -----------------------------------------------------------------------


def test_invalid_depths_name_the_valid_form_and_neighbours():
  with pytest.raises(ValueError, match=r"6n\+2.*nearest valid depths: 20 and 26"):
    models.cifar_resnet(21)
  with pytest.raises(ValueError, match=r"9n\+2.*92 and 101"):
    models.cifar_preact(100)
  with pytest.raises(ValueError, match=r"6n\+2.*nearest valid depths: 8"):
    models.cifar_resnet(3)
  with pytest.raises(ValueError, match=r"\[18, 34, 50, 101, 152\].*nearest: 34"):
    models.imagenet_resnet(36)
  with pytest.raises(ValueError, match="unknown model family 'resnext'"):
    models.build_model({"family": "resnext", "depth": 50})
  with pytest.raises(ValueError, match="unknown model config fields"):
    models.build_model({"family": "cifar_resnet", "depth": 20, "dept": 3})
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    models.survival_probabilities(10, 1.5)


@pytest.mark.slow
def test_cifar_resnet_takes_bottleneck_blocks_at_depth_9n_plus_2():
  """The 'original' (post-activation) ResNet-164 of He et al. 2016b: ~1.7M parameters."""
  m = models.build_model({"family": "cifar_resnet", "depth": 164, "block": "bottleneck"})
  assert (m.block, m.preact, m.stage_sizes, m.stage_widths) == (
    "bottleneck",
    False,
    (18,) * 3,
    (64, 128, 256),
  )
  assert abs(n_params(m) - 1.7e6) / 1.7e6 < 0.03
  plain = models.build_model(
    {"family": "cifar_plain", "depth": 11, "block": "bottleneck", "width": 4}
  )
  assert not plain.residual and plain.stage_sizes == (1, 1, 1)
  logits = plain.apply(init(plain, jnp.zeros((2, 8, 8, 3))), jnp.zeros((2, 8, 8, 3)), train=False)
  assert logits.shape == (2, 10)


def test_a_block_the_family_cannot_build_is_refused_not_ignored():
  """Once `block` was read for cifar_preact only: block=bottleneck trained a basic-block
  ResNet-8."""
  with pytest.raises(
    ValueError, match=r"bottleneck blocks: it must be 9n\+2.*nearest valid depths: 11"
  ):
    models.build_model({"family": "cifar_resnet", "depth": 8, "block": "bottleneck"})
  with pytest.raises(
    ValueError, match="block='bottleneck' does not apply to family 'imagenet_resnet'"
  ):
    models.build_model({"family": "imagenet_resnet", "depth": 18, "block": "bottleneck"})
  with pytest.raises(ValueError, match="block must be 'basic' or 'bottleneck'"):
    models.build_model({"family": "cifar_resnet", "depth": 20, "block": "wide"})


def test_build_model_matches_presets():
  m = models.build_model({"family": "cifar_preact", "depth": 110, "block": "basic", "width": 4})
  assert (m.block, m.preact, m.stage_sizes) == ("basic", True, (18, 18, 18))
  m = models.build_model({"family": "imagenet_plain", "depth": 34, "dtype": "bfloat16"})
  assert not m.residual and m.dtype == jnp.bfloat16 and m.num_classes == 1000


# --- forward behaviour ----------------------------------------------------------------------------


def tiny(residual=True, **kw):
  kw.setdefault("width", 4)
  return models.cifar_resnet(14, residual=residual, **kw)  # n = 2 blocks per stage


@pytest.fixture(scope="module")
def images():
  return jax.random.normal(jax.random.key(1), (4, 16, 16, 3))


def init(model, images):
  """The variables, initialised as one compiled program: op by op, every draw compiled on its own
  took 2.6x the CPU (measured on ResNet-14)."""
  return jax.jit(lambda: model.init(jax.random.key(0), images, train=False))()


@pytest.mark.slow
@pytest.mark.parametrize(
  "make",
  [
    lambda: models.cifar_resnet(14, width=4),
    lambda: models.cifar_preact(11, width=2),
    lambda: models.cifar_preact(14, block="basic", width=4, shortcut="A"),
    lambda: models.imagenet_resnet(18, width=4, num_classes=7),
    lambda: models.imagenet_resnet(50, width=2, residual=False),
  ],
)
def test_output_shapes(make, images):
  """Shapes and dtypes only, so traced (jax.eval_shape), not run: op by op, the ImageNet nets took
  25 s each."""
  model = make()
  variables = jax.eval_shape(lambda: init(model, images))
  logits = jax.eval_shape(lambda v: model.apply(v, images, train=False), variables)
  assert logits.shape == (4, model.num_classes) and logits.dtype == jnp.float32
  apply = lambda v: model.apply(v, images, train=True, mutable=["batch_stats"])
  logits, updates = jax.eval_shape(apply, variables)
  assert logits.shape == (4, model.num_classes)
  assert jax.tree_util.tree_structure(updates["batch_stats"]) == jax.tree_util.tree_structure(
    variables["batch_stats"]
  )


@pytest.mark.slow
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("train", [False, True])
def test_scan_and_unroll_agree_in_values_and_gradients(residual, train, images):
  scanned = tiny(residual, stages="scan")
  unrolled = scanned.clone(stages="unroll")
  v = init(scanned, images)
  vu = models.convert_variables(v, "unroll")
  assert models.convert_variables(vu, "scan").keys() == v.keys()

  def loss(model, variables):
    out = model.apply(variables, images, train=train, mutable=["batch_stats"] if train else False)
    logits = out[0] if train else out
    return jnp.sum(logits**2)

  # Each side compiled whole (op by op, the plain net's training case took 17 s of a loaded CPU).
  value, g = jax.jit(jax.value_and_grad(functools.partial(loss, scanned)))(v)
  value_u, gu = jax.jit(jax.value_and_grad(functools.partial(loss, unrolled)))(vu)
  np.testing.assert_allclose(value, value_u, rtol=1e-5)
  g, gu = g["params"], gu["params"]
  flat_g = jax.tree_util.tree_leaves(models.unstack_stages(g))
  flat_gu = jax.tree_util.tree_leaves(gu)
  for a, b in zip(flat_g, flat_gu):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float32, reassociation only


@pytest.mark.slow
def test_scan_unroll_factor_and_remat_do_not_change_results(images):
  base = tiny(stages="scan")
  v = init(base, images)
  ref = base.apply(v, images, train=False)
  for variant in (base.clone(unroll=2), base.clone(remat=True)):
    np.testing.assert_allclose(variant.apply(v, images, train=False), ref, rtol=1e-6, atol=1e-6)


def test_all_gates_one_is_the_ordinary_forward(images):
  model = tiny()
  v = init(model, images)
  np.testing.assert_array_equal(
    model.apply(v, images, train=False, gates=jnp.ones(6)), model.apply(v, images, train=False)
  )


@pytest.mark.parametrize(
  "make",
  [
    lambda **kw: models.cifar_resnet(20, width=4, **kw),
    lambda **kw: models.cifar_preact(20, block="basic", width=4, **kw),
  ],
)
@pytest.mark.parametrize("stage,block", [(0, 1), (1, 2), (2, 0)])
def test_gate_zero_equals_the_network_without_that_block(make, stage, block, images):
  """Veit et al. lesion: gate 0 keeps only the block's skip path. For a non-downsampling block that
  is the net with one block fewer; for a downsampling block, the net whose block is replaced by
  option A."""
  model = make(stages="unroll")
  v = init(model, images)
  gates = np.ones(model.num_blocks, np.float32)
  gates[sum(model.stage_sizes[:stage]) + block] = 0.0
  lesioned = model.apply(v, images, train=False, gates=gates)

  sizes = list(model.stage_sizes)
  if block > 0:
    sizes[stage] -= 1
    smaller = model.clone(stage_sizes=tuple(sizes))
    sv = without_block(v, stage, block)
    np.testing.assert_allclose(
      lesioned, smaller.apply(sv, images, train=False), rtol=1e-6, atol=1e-6
    )
  # Independently of layout: gate 0 equals zeroing the last layer of the block's residual branch.
  name = f"stage{stage}_block{block}"
  params = jax.tree_util.tree_map(lambda a: a, v["params"])
  if model.preact:
    params[name]["conv2"]["kernel"] = jnp.zeros_like(params[name]["conv2"]["kernel"])
  else:
    params[name]["bn2"] = jax.tree_util.tree_map(jnp.zeros_like, params[name]["bn2"])
  np.testing.assert_allclose(
    lesioned, model.apply({**v, "params": params}, images, train=False), rtol=1e-6, atol=1e-6
  )
  assert not np.allclose(lesioned, model.apply(v, images, train=False))


def test_lesion_of_a_zero_gate_changes_nothing_and_plain_block_deletion_is_identity(images):
  model = tiny(residual=False, stages="unroll")
  v = init(model, images)
  gates = np.ones(6, np.float32)
  gates[1] = 0.0  # stage0 block1: same shape, so deleting it passes its input through
  smaller = model.clone(stage_sizes=(1, 2, 2))
  sv = {c: {k: val for k, val in t.items() if k != "stage0_block1"} for c, t in v.items()}
  np.testing.assert_allclose(
    model.apply(v, images, train=False, gates=gates),
    smaller.apply(sv, images, train=False),
    rtol=1e-6,
    atol=1e-6,
  )


def test_survival_probabilities_follow_the_linear_rule():
  p = models.survival_probabilities(54, 0.5)
  l = np.arange(1, 55)
  np.testing.assert_allclose(p, 1 - l / 54 * 0.5, rtol=1e-6)
  assert p[-1] == pytest.approx(0.5) and p[0] == pytest.approx(1 - 0.5 / 54)
  np.testing.assert_array_equal(models.survival_probabilities(5, 1.0), np.ones(5))


def test_stochastic_depth_test_time_is_the_p_scaled_forward(images):
  sd = tiny(survival_last=0.5)
  v = init(sd, images)
  p = models.survival_probabilities(6, 0.5)
  np.testing.assert_allclose(
    sd.apply(v, images, train=False), tiny().apply(v, images, train=False, gates=p), rtol=1e-6
  )


@pytest.mark.slow
def test_stochastic_depth_training_draws_whole_blocks_deterministically(images):
  sd = tiny(survival_last=0.5)
  v = init(sd, images)

  @jax.jit
  def run(key):
    return sd.apply(v, images, train=True, mutable=["batch_stats"], rngs={"drop": key})[0]

  np.testing.assert_array_equal(run(jax.random.key(3)), run(jax.random.key(3)))
  # The draw is one Bernoulli per block per batch: the output equals the ordinary net gated by it.
  gates = models.stochastic_depth_gates(
    jax.random.fold_in(jax.random.key(3), 0), jnp.asarray(models.survival_probabilities(6, 0.5))
  )
  assert gates.shape == (6,) and set(np.unique(gates)) <= {0.0, 1.0}
  survival = jnp.asarray(models.survival_probabilities(6, 0.5))
  draws = jax.vmap(lambda k: models.stochastic_depth_gates(k, survival))(
    jax.random.split(jax.random.key(0), 2000)
  )
  np.testing.assert_allclose(draws.mean(0), models.survival_probabilities(6, 0.5), atol=0.04)
  outs = {tuple(np.asarray(run(jax.random.key(i))[0]).round(4)) for i in range(8)}
  assert len(outs) > 1  # different keys drop different blocks


@pytest.mark.slow
def test_drop_path_draws_per_sample(images):
  survival = jnp.asarray(models.survival_probabilities(6, 0.5))
  g = models.stochastic_depth_gates(jax.random.key(0), survival, batch_size=64)
  assert g.shape == (6, 64)
  assert 0 < float(g[-1].mean()) < 1  # samples differ within the batch
  dp = tiny(survival_last=0.5, drop_mode="sample")
  v = init(dp, images)
  out, _ = dp.apply(
    v, images, train=True, mutable=["batch_stats"], rngs={"drop": jax.random.key(1)}
  )
  assert out.shape == (4, 10)


@pytest.mark.slow
def test_grad_route_changes_gradients_not_values(images):
  model = tiny()
  v = init(model, images)
  skip_only = np.full(6, ROUTE_SKIP, np.int32)
  apply = jax.jit(lambda route: model.apply(v, images, train=False, grad_route=route))
  no_route = jax.jit(lambda: model.apply(v, images, train=False))()
  np.testing.assert_array_equal(apply(skip_only), apply(np.full(6, ROUTE_BOTH, np.int32)))
  np.testing.assert_array_equal(apply(skip_only), no_route)

  @jax.jit  # one program for every route (op by op this test took 21 s of CI)
  def grads(route):
    f = lambda p: jnp.sum(model.apply({**v, "params": p}, images, train=False, grad_route=route))
    return models.unstack_stages(jax.grad(f)(v["params"]))

  g_skip = grads(skip_only)
  g_both = grads(np.full(6, ROUTE_BOTH, np.int32))
  # With every branch's gradient stopped, no residual-branch parameter receives a gradient...
  for name in models.block_names(model):
    assert all(float(jnp.abs(a).sum()) == 0 for a in jax.tree_util.tree_leaves(g_skip[name]))
    assert any(float(jnp.abs(a).sum()) > 0 for a in jax.tree_util.tree_leaves(g_both[name]))
  # ...while the head still learns.
  assert float(jnp.abs(g_skip["head"]["kernel"]).sum()) > 0


@pytest.mark.slow
def test_bfloat16_forward_agrees_with_float32(images):
  f32 = models.cifar_resnet(20, width=8)
  bf16 = f32.clone(dtype=jnp.bfloat16)
  # Compiled whole: op by op, every operation of two dtypes compiled on its own (26 s of CI).
  v = init(f32, images)
  bf16_variables = jax.eval_shape(lambda: init(bf16, images))
  assert all(a.dtype == jnp.float32 for a in jax.tree_util.tree_leaves(bf16_variables))
  a = jax.jit(lambda v: f32.apply(v, images, train=False))(v)
  b = jax.jit(lambda v: bf16.apply(v, images, train=False))(v)
  assert b.dtype == jnp.float32
  # bfloat16 keeps 8 bits of mantissa: logits agree to a few percent of their scale.
  assert float(jnp.max(jnp.abs(a - b))) < 0.05 * float(jnp.max(jnp.abs(a))) + 0.05


@pytest.mark.slow
def test_zero_init_last_bn_option():
  params = models.init_shapes(tiny(zero_init_last=True), (16, 16, 3))["params"]
  model = tiny(zero_init_last=True)
  v = init(model, jnp.zeros((1, 16, 16, 3)))
  assert float(jnp.abs(v["params"]["stage0_block0"]["bn2"]["scale"]).sum()) == 0.0
  assert float(v["params"]["stage0_block0"]["bn1"]["scale"].sum()) == 4.0
  assert "stage0_blocks" in params


@pytest.mark.slow
def test_block_addressing():
  model = tiny()
  assert models.block_names(model) == [f"stage{s}_block{b}" for s in range(3) for b in range(2)]
  np.testing.assert_array_equal(models.downsampling_blocks(model), [0, 0, 1, 0, 1, 0])
  v = init(model, jnp.zeros((1, 16, 16, 3)))
  blk = models.block_variables(v, 1, 1)
  np.testing.assert_array_equal(
    blk["params"]["conv1"]["kernel"], v["params"]["stage1_blocks"]["conv1"]["kernel"][0]
  )
  assert blk["batch_stats"]["bn1"]["mean"].shape == (8,)


def test_unroll_zero_is_the_measured_choice_per_backend(monkeypatch):
  assert models.resolve_unroll(3, 17) == 3
  assert models.resolve_unroll(0, 17) == 1  # the tests run on CPU: no unrolling
  monkeypatch.setattr(models.resnet.jax, "default_backend", lambda: "gpu")
  assert [models.resolve_unroll(0, n) for n in (2, 8, 17, 199)] == [2, 8, 17, 4]
  with pytest.raises(ValueError, match="unroll must be"):
    models.resolve_unroll(-1, 8)


@pytest.mark.slow
@pytest.mark.parametrize(
  "family,depth,extra",
  [
    ("cifar_resnet", 8, {}),
    ("cifar_preact", 11, {"block": "bottleneck"}),
    ("cifar_vgg_bn", 11, {"width": 4}),
    ("cifar_densenet_bc", 16, {"growth_rate": 4}),
  ],
)
def test_fused_and_flax_batch_norm_train_the_same_network(family, depth, extra):
  """bn_impl changes how BN is computed, not the network: same variables, logits and gradients."""
  from cnn_depth import steps

  x = jax.random.normal(jax.random.key(0), (8, 16, 16, 3))
  labels = jnp.arange(8) % 10
  out = {}
  for impl in ("fused", "flax"):
    cfg = {"family": family, "depth": depth, "num_classes": 10, "bn_impl": impl, **extra}
    if family in ("cifar_resnet", "cifar_preact"):
      cfg["width"] = 4
    model = models.build_model(cfg)
    v = model.init(jax.random.key(1), x, train=False)

    def loss(params):
      logits, upd = model.apply(
        {"params": params, "batch_stats": v["batch_stats"]},
        x,
        train=True,
        mutable=["batch_stats"],
        rngs={"drop": jax.random.key(2)},
      )
      return jnp.mean(steps.cross_entropy(logits, labels)), (logits, upd["batch_stats"])

    (_, aux), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(v["params"])
    out[impl] = v, aux, grads
  (v, (logits, stats), grads), (v_ref, (logits_ref, stats_ref), grads_ref) = (
    out["fused"],
    out["flax"],
  )
  assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(v_ref)
  np.testing.assert_allclose(logits, logits_ref, rtol=1e-4, atol=1e-5)
  leaves = jax.tree_util.tree_leaves
  for a, b in zip(leaves((stats, grads)), leaves((stats_ref, grads_ref))):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


# --- the fixes for depth (models/branches.py, blocks.Fixes, ResNet.fixes) -------------------------

# The combinations #24 names, and each branch rule (models/fixes.py, which the benchmark and the GPU
# compile check share); ResNet-8 (bottlenecks 11, TAT: plain-14) of width 4, 8x8 images.
FIXES = {name: dict(preset.model) for name, preset in fixes.PRESETS.items()}


def fixed_net(name, **kw):
  return models.build_model({**FIXES[name], "width": 4, **kw})


@pytest.mark.parametrize("name", sorted(FIXES))
def test_each_fix_builds_and_traces_a_training_step(name):
  """Traced, not run (jax.eval_shape: nothing compiles): init, and the training loss's gradient
  with the gates and routes passed in; the parameters each fix adds or removes."""
  model = fixed_net(name)
  n, x = model.num_blocks, jnp.zeros((4, 8, 8, 3))
  v = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))

  def loss(params, variables):
    logits, _ = model.apply(
      {**variables, "params": params},
      x,
      train=True,
      gates=jnp.ones(n),
      grad_route=jnp.zeros(n, jnp.int32),
      mutable=["batch_stats"],
    )
    return jnp.sum(logits)

  grads = jax.eval_shape(lambda v: jax.grad(loss)(v["params"], v), v)
  assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(v["params"])
  p = v["params"]
  norm = FIXES[name].get("norm", "bn")
  assert ("bn_init" in p or "bn_final" in p) == (norm == "bn")
  block = p["stage0_block0"]
  assert ("bias" in block["conv1"]) == (norm in ("none", "ws") and "fixup" not in name)
  assert ("gain" in block["conv1"]) == (norm == "ws")
  if name.startswith("fixup"):  # the reference's names (hongyi-zhang/Fixup), scalars
    assert {"bias1a", "bias1b", "bias2a", "bias2b", "scale"} <= set(block)
    assert p["stem_bias"].shape == p["head_bias"].shape == block["scale"].shape == ()
  if name in ("skipinit", "rezero_bn"):
    assert block["alpha"].shape == ()


@pytest.mark.parametrize(
  "name", ["fixup", "fixup_bottleneck", "skipinit", "rezero_bn", "depth_mup"]
)
def test_at_init_skipinit_and_fixup_nets_compute_their_skip_path(name):
  """SkipInit/ReZero's alpha = 0 and Fixup's zero last layers: at initialisation every block gives
  its skip path exactly (all gates 0 is the same net), and a Fixup net's output is its classifier's
  bias, whatever that bias is. Depth-muP's fixed 1/sqrt(L) is the He net with its gates at
  1/sqrt(L) (the gates multiply what a block adds, as the rule's scale does)."""
  model = fixed_net(name)
  n, x = model.num_blocks, jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  head_bias = jnp.float32(0.1) * jnp.arange(10, dtype=jnp.float32)

  @jax.jit
  def run(key):
    v = model.init(key, x, train=False)
    infer = lambda m, v, gates: m.apply(v, x, train=False, gates=gates)
    out = {"ones": infer(model, v, jnp.ones(n)), "zeros": infer(model, v, jnp.zeros(n))}
    if name.startswith("fixup"):
      head = {**v["params"]["head"], "bias": head_bias}
      out["head"] = infer(model, {**v, "params": {**v["params"], "head": head}}, None)
    if name == "depth_mup":  # the same parameters without the rule
      out["twin"] = infer(model.clone(branch="identity"), v, jnp.full(n, 1 / np.sqrt(n)))
    return out

  out = run(jax.random.key(0, impl="rbg"))
  if name == "depth_mup":  # XLA may contract c * y + skip into one rounding in one net only
    np.testing.assert_allclose(out["ones"], out["twin"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out["ones"], out["zeros"])
    return
  np.testing.assert_array_equal(out["ones"], out["zeros"])
  if name.startswith("fixup"):
    np.testing.assert_array_equal(out["ones"], 0.0)
    np.testing.assert_array_equal(out["head"], np.broadcast_to(head_bias, (4, 10)))


def held_by_fixup(model) -> set:
  """(block, parameter) pairs of a Fixup net that no gradient reaches in its first two steps: the
  multiplier and all that a branch computes before its zero-initialised last convolution m (the
  loss reaches them through it once it has moved, at step 2), but the first scalar bias of a block
  that changes shape, which its shortcut reads too (as in the reference)."""
  m = 3 if model.block == "bottleneck" else 2
  before_last = {"scale", f"bias{m}a"}
  for k in range(1, m):
    before_last |= {f"conv{k}", f"bias{k}a", f"bias{k}b"}
  held = set()
  for block, changes in zip(models.block_names(model), models.downsampling_blocks(model)):
    held |= {(block, p) for p in before_last if not (changes and p == "bias1a")}
  return held


def unmoved(before, after) -> set:
  """(top-level name, its child's name or '') of the parameters equal in `before` and `after`."""
  moved = {}
  paths = jax.tree_util.tree_leaves_with_path(before)
  for (path, a), b in zip(paths, jax.tree_util.tree_leaves(after)):
    names = (path[0].key, path[1].key if len(path) > 1 else "")
    moved[names] = moved.get(names, False) or bool(np.any(np.asarray(a) != np.asarray(b)))
  return {k for k, v in moved.items() if not v}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FIXES))
def test_each_fix_trains_two_steps(name):
  """Two steps of the real train step (state.create_train_state, steps.compile_train_step: one
  compiled step, run again) with the optimiser the fix's paper uses (its preset: AGC for the
  NF-ResNets, lr/10 on Fixup's scalars, a lower lr for the shaped and vanilla nets): both steps
  finite, the loss lower at the second, and every parameter moved, except, for Fixup, those its
  zero last layers keep from the gradient for two steps; by a third step they have one too."""
  import optax

  from cnn_depth import optim, steps
  from cnn_depth import state as state_lib

  preset, model = fixes.PRESETS[name], fixed_net(name)
  sgd = optim.sgd(preset.train.get("learning_rate", 0.1), weight_decay=0.0)  # moves: gradients
  tx = optim.with_fixes(sgd, **preset.optimizer_fixes())
  rng = np.random.default_rng(0)
  batch = {"image": rng.integers(0, 256, (4, 8, 8, 3), np.uint8), "label": np.arange(4)}
  state = state_lib.create_train_state(model, tx, jax.random.key(0, impl="rbg"), (8, 8, 3))
  mean, std = (125.3, 123.0, 113.9), (63.0, 62.1, 66.7)
  step = steps.compile_train_step(model, tx, mean, std, augment=False)
  states, losses = [state], []
  for _ in range(3):  # the third for Fixup's held parameters only: the same compiled step
    new, metrics = step(states[-1], batch)
    assert int(metrics["nonfinite"]) == 0, name
    states.append(new)
    losses.append(float(metrics["loss_sum"]))
  assert losses[1] < losses[0], losses
  held = held_by_fixup(model) if name.startswith("fixup") else set()
  assert unmoved(states[0].params, states[2].params) == held
  # By the third step every parameter has had a gradient: its momentum is not zero (the update
  # itself can round away: Fixup's multipliers sit at 1 and train at lr/10).
  (momentum,) = [
    s.trace
    for s in jax.tree_util.tree_leaves(
      states[3].opt_state, is_leaf=lambda s: isinstance(s, optax.TraceState)
    )
  ]
  assert unmoved(jax.tree_util.tree_map(jnp.zeros_like, momentum), momentum) == set()


def test_per_block_constants_reach_scanned_and_unrolled_blocks_alike():
  """NF's input scales 1/beta_i differ from block to block: a scanned stage slices them as it
  slices the gates, so the scanned and the unrolled net compute the same function."""
  model = fixed_net("nf", depth=20, nf_alpha=0.5)  # 3 blocks a stage: 2 scanned, betas 1.1, 1.2
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  v = jax.jit(lambda: model.init(jax.random.key(0, impl="rbg"), x, train=False))()
  unrolled = model.clone(stages="unroll")
  scanned_out = jax.jit(lambda v: model.apply(v, x, train=False))(v)
  unrolled_out = jax.jit(lambda v: unrolled.apply(v, x, train=False))(
    models.convert_variables(v, "unroll")
  )
  np.testing.assert_allclose(scanned_out, unrolled_out, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
  "config,match",
  [
    ({"branch": "fixup"}, "branch='fixup' replaces normalisation .* set norm='none'"),
    (
      {"family": "cifar_plain", "norm": "none", "branch": "fixup"},
      "branch='fixup' has no meaning on a plain net",
    ),
    (
      {"family": "cifar_preact", "norm": "none", "branch": "fixup"},
      "branch='fixup' is defined for post-activation ResNets",
    ),
    ({"norm": "ws", "branch": "nf"}, "branch='nf' needs pre-activation blocks"),
    ({"family": "cifar_preact", "branch": "nf"}, "branch='nf' .* cannot be used with norm='bn'"),
    (
      {"family": "cifar_preact", "norm": "ws", "branch": "nf", "shortcut": "A"},
      "branch='nf' needs projection shortcuts .* set shortcut='B'",
    ),
    ({"branch": "normalized", "shortcut": "B"}, r"needs shortcut_weight in \(0, 1\), got 0.0"),
    ({"family": "cifar_plain", "transform": "tat"}, "transform='tat' does not apply to .*'relu'"),
    ({"activation": "tanh", "transform": "dks"}, "transform='dks' shapes nets without norm.*"),
    (
      {"norm": "none", "activation": "tanh", "transform": "dks", "init": "suo", "sigma_w2": 1.0},
      "transform='dks' needs normalised sums .* set branch='normalized'",
    ),
    (
      {"family": "cifar_plain", "norm": "none", "activation": "tanh", "transform": "dks"},
      "transform='dks' assumes layers that keep each unit's q .* init='suo'",
    ),
    (
      {**FIXES["tat"], "depth": 8},
      "tat_eta=0.9 is out of reach for this net",  # the solver's refusal, at build time
    ),
    ({"negative_slope": 0.2}, "negative_slope=0.2 applies to activation='leaky_relu'"),
    ({"sigma_b2": 0.1}, "sigma_b2=0.1 applies to the biases of norm='none' or 'ws'"),
    ({"norm": "none", "zero_init_last": True}, "zero_init_last=True applies to norm='bn' only"),
    ({"nf_alpha": 0.5}, r"nf_alpha=0.5 applies to branch='nf' only: .* \(to 0.2\)"),
    ({"dks_zeta": 2.0}, "dks_zeta=2.0 applies to transform='dks' only"),
    ({"activation": "swishy"}, "activation='swishy' is unknown: choose one of relu, leaky_relu"),
    ({"init": "xavier"}, "init='xavier' is unknown: choose one of he, gaussian"),
    ({"branch": "highway"}, "branch='highway' is not a branch rule"),
    ({"norm": "group"}, "norm='group' is not a normalisation"),
    (
      {"family": "imagenet_resnet", "depth": 18, "norm": "none"},
      "norm='none' does not apply to family 'imagenet_resnet'; it applies to cifar_resnet",
    ),
    ({"family": "cifar_vgg", "depth": 11, "branch": "fixup"}, "branch='fixup' does not apply"),
  ],
)
def test_fixes_without_meaning_are_refused_in_one_sentence(config, match):
  with pytest.raises(ValueError, match=match) as e:
    models.build_model({"family": "cifar_resnet", "depth": 20, **config})
  assert "\n" not in str(e.value)


def test_the_net_shapes_its_activation_for_its_own_structure():
  """transform='dks'/'tat' asks models/shaping.py for the transform of the net's own maximal
  subnetwork; branch='nf' scales the activation by NFNets' gamma."""
  z = jnp.linspace(-3.0, 3.0, 13)
  tat = shaping.solve("leaky_relu", "tat", shaping.subnet_for(14, residual=False), eta=0.9)
  act = activations.make("leaky_relu", tat.transform, **tat.params)
  np.testing.assert_array_equal(fixed_net("tat").fixes().act(z), act(z))
  assert 0.0 < tat.negative_slope < 0.1  # plain-14 at eta = 0.9: nearly a ReLU
  subnet = shaping.subnet_for(8, shortcut="B", shortcut_weight=0.8)
  dks = shaping.solve("softplus", "dks", subnet, zeta=1.5)
  np.testing.assert_array_equal(
    fixed_net("dks_normalized").fixes().act(z), activations.make("softplus", dks.transform)(z)
  )
  np.testing.assert_allclose(fixed_net("nf").fixes().act(z), 1.7139588594436646 * jax.nn.relu(z))


@pytest.mark.slow
def test_nf_block_outputs_follow_the_expected_variance_schedule():
  """Brock, De & Smith 2021, Fig. 2: at initialisation on unit Gaussian inputs, the average
  channel variance after each block is Var(h_i) + alpha^2, reset to 1 + alpha^2 after a block that
  changes shape ([2, 3, 4] per stage at alpha = 1). Within 6% at width 64 on 96x96 inputs, over the
  maps' central half (measured: within 3% for three keys). Each 3x3 convolution's zero padding
  loses variance at a map's border (the whole 24x24 maps of the last stage fall ~9% short), and at
  width 16 the weights' sampling error is ~10%."""
  model = models.build_model(dict(FIXES["nf"], depth=20, width=64, stages="unroll", nf_alpha=1.0))
  x = jax.random.normal(jax.random.key(1), (2, 96, 96, 3))

  @jax.jit
  def variances(key):
    v = model.init(key, x, train=False)
    block = lambda m, method: method == "__call__" and "_block" in (m.name or "")
    _, st = model.apply(v, x, train=False, capture_intermediates=block, mutable=["intermediates"])
    out = st["intermediates"]
    centre = lambda h: h[:, h.shape[1] // 4 : -h.shape[1] // 4, h.shape[2] // 4 : -h.shape[2] // 4]
    outputs = [centre(out[n]["__call__"][0]) for n in models.block_names(model)]
    return [jnp.mean(jnp.var(h, (0, 1, 2))) for h in outputs]

  measured = np.asarray(variances(jax.random.key(0, impl="rbg")))
  changes = models.downsampling_blocks(model)
  expected = np.where(changes, 1.0, branches.nf_betas(changes, 1.0) ** 2) + 1.0
  np.testing.assert_allclose(expected, [2, 3, 4] * 3)  # the schedule the blocks' beta_i assume
  np.testing.assert_allclose(measured, expected, rtol=0.06)


@pytest.mark.slow
def test_resnet_1202_with_each_fix_compiles_once_in_seconds():
  """Every fix keeps a stage one scanned block: the lowered training gradient of ResNet-1202
  (bottlenecks: ResNet-1001) is about as long as ResNet-20's (the per-block constants are scanned
  arrays, not unrolled Python), and is traced once. The longest of the ten programs is compiled
  here (2-core CPU, XLA's backend optimisations off as everywhere in the suite); the others are no
  longer, and each fix's ResNet-20 compiles and trains in test_each_fix_trains_two_steps. Compiling
  all ten took 45 s of the suite for numbers within a second of each other (~3 s each)."""
  import time

  longest = None
  for name, fix in FIXES.items():
    lengths = []
    deepest = 1001 if "bottleneck" in name else 1202  # 9n+2, 6n+2
    for d in (20, deepest):
      model = models.build_model({**fix, "depth": d})
      x = jax.ShapeDtypeStruct((8, 32, 32, 3), jnp.float32)
      v = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape), train=False))
      traces = []

      def grad(params, variables, images):
        traces.append(1)
        logits, _ = model.apply(
          {**variables, "params": params}, images, train=True, mutable=["batch_stats"]
        )
        return jnp.sum(logits)

      lowered = jax.jit(jax.grad(grad)).lower(v["params"], v, x)
      lengths.append(len(lowered.as_text()))
    assert len(traces) == 1, name
    assert lengths[1] < 1.2 * lengths[0], (name, lengths)
    if longest is None or lengths[1] > longest[1]:
      longest = (name, lengths[1], lowered)
  name, _, lowered = longest
  cached = jax.config.jax_enable_compilation_cache
  jax.config.update("jax_enable_compilation_cache", False)  # a compile, not a cache read
  try:
    start = time.perf_counter()
    lowered.compile()
    seconds = time.perf_counter() - start
  finally:
    jax.config.update("jax_enable_compilation_cache", cached)
  print(f"ResNet-1202 training gradient with {name} (the longest program): compiled in {seconds} s")
  assert seconds < 60, (name, seconds)
