"""Fixup (Zhang, Dauphin & Ma 2019): `cifar_resnet` with `norm='none', branch='fixup'` against the
reference Fixup-ResNet for CIFAR (github.com/hongyi-zhang/Fixup, cifar/models/fixup_resnet_cifar.py
and the parameter groups of its cifar_train.py), through tests/fixtures/fixup/, which
tests/fixtures/make_fixup_fixtures.py wrote with PyTorch (versions in its versions.json).

The reference's weights map onto ours one for one (`from_reference`): its scalar biases and
multiplier keep their names inside each block (`bias1a`, `bias1b`, `bias2a`, `bias2b`, `scale`),
`bias1` is our `stem_bias`, `bias2` our `head_bias`, `conv1` our `conv_init`, `layer{s}.{b}` our
`stage{s-1}_block{b}` and `fc` our `head`; kernels go from OIHW to HWIO. Where a stage widens, the
reference appends its zero channels after the subsampled input, ours (He et al.'s option A, as
layers.shortcut_a) splits them before and after: the same net with its channels in another order,
so the map permutes each stage's channels (`channel_orders`).

Measured: logits equal to 1.8e-7 (ResNet-20) and 2.2e-7 (ResNet-32) of their largest magnitude in
float32, to 2e-15 and 5e-15 in float64; the two SGD steps' losses to 2e-16, every parameter's change
to 5e-8 of its largest (the fixture stores them in float32). First tier: keys, ResNet-20's logits,
its init, the lr groups (~4 s); the rest is slow.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers.interop import torch_weights
from helpers.runner import ROOT, run_script

from cnn_depth import layers, optim
from cnn_depth.models import build_model, init_shapes, layout

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "fixup")
CIFAR = (32, 32, 3)


def fixture(name: str):
  data = np.load(os.path.join(FIXTURES, f"{name}.npz"))
  return data, [(k, tuple(s)) for k, s in json.loads(str(data["keys"]))]


def fixup_net(depth: int, **kw):
  config = dict(family="cifar_resnet", depth=depth, num_classes=10, norm="none", branch="fixup")
  return build_model({**config, **kw})


def reference_weights(keys, dtype=np.float64) -> dict:
  """make_fixup_fixtures.perturbed_weights: torch_weights' rule, each `scale` 0.5 + 0.1 N(0, 1)."""
  weights = torch_weights.generate(keys, dtype=dtype)
  return {k: v + 0.5 if k.endswith(".scale") else v for k, v in weights.items()}


def channel_orders(widths=(16, 32, 64)) -> list[np.ndarray]:
  """Per stage, where our net holds each of the reference's channels (ours[order[i]] = ref[i]): the
  stem's order, then at each widening the input's channels where layers.shortcut_a puts them and
  the reference's appended zero channels on the rest, in order."""
  orders = [np.arange(widths[0])]
  for c_out in widths[1:]:
    prev = orders[-1]
    tagged = np.zeros((1, 1, 1, len(prev)))
    tagged[..., prev] = np.arange(len(prev)) + 1  # our channel prev[i] carries reference i + 1
    out = np.asarray(layers.shortcut_a(jnp.asarray(tagged), c_out, 1))[0, 0, 0]
    held = {int(t) - 1: j for j, t in enumerate(out) if t}
    zeros = [j for j, t in enumerate(out) if not t]
    orders.append(np.asarray([held[i] for i in range(len(prev))] + zeros))
  return orders


def _kernel(w: np.ndarray, order_in: np.ndarray, order_out: np.ndarray) -> np.ndarray:
  """OIHW reference kernel -> our HWIO kernel with permuted input and output channels."""
  out = np.zeros(w.shape[2:] + w.shape[1::-1], w.dtype)
  out[:, :, order_in[:, None], order_out[None, :]] = w.transpose(2, 3, 1, 0)
  return out


def from_reference(weights: dict) -> dict:
  """The reference's state_dict as our parameters in the unrolled layout (module docstring)."""
  orders = channel_orders()
  params = {
    "conv_init": {"kernel": _kernel(weights["conv1.weight"], np.arange(3), orders[0])},
    "stem_bias": weights["bias1"].reshape(()),
    "head_bias": weights["bias2"].reshape(()),
  }
  head = np.zeros(weights["fc.weight"].shape[::-1], weights["fc.weight"].dtype)
  head[orders[-1]] = weights["fc.weight"].T
  params["head"] = {"kernel": head, "bias": weights["fc.bias"]}
  for key, value in weights.items():
    m = re.match(r"layer(\d)\.(\d+)\.(\w+)(\.weight)?$", key)
    if m is None:
      continue
    s, b, name = int(m.group(1)) - 1, int(m.group(2)), m.group(3)
    block = params.setdefault(f"stage{s}_block{b}", {})
    if m.group(4):  # conv1 (reads the stage's input) or conv2
      order_in = orders[max(s - 1, 0)] if (b == 0 and name == "conv1") else orders[s]
      block[name] = {"kernel": _kernel(value, order_in, orders[s])}
    else:
      block[name] = value.reshape(())
  return params


def our_variables(weights: dict, model) -> dict:
  params = jax.tree_util.tree_map(jnp.asarray, from_reference(weights))
  return layout.convert_variables({"params": params}, model.stages)


def paths(tree) -> dict:
  return {k: tuple(v.shape) for k, v in leaves(tree).items()}


def test_our_parameters_are_the_reference_state_dict():
  """Every parameter of ours is one of the reference's, of its shape, and none is left over."""
  for depth in (8, 20):
    _, keys = fixture("fixup_resnet20") if depth == 20 else fixture("sgd_fixup_resnet8")
    model = fixup_net(depth, stages="unroll")
    ours = paths(init_shapes(model, CIFAR)["params"])
    assert paths(from_reference(reference_weights(keys))) == ours


@pytest.mark.parametrize("depth", [20, pytest.param(32, marks=pytest.mark.slow)])
def test_logits_equal_the_reference(depth):
  """On weights where every parameter counts (at Fixup's init the logits are the head's bias),
  scanned stages, in float32."""
  data, keys = fixture(f"fixup_resnet{depth}")
  model = fixup_net(depth)
  variables = our_variables(reference_weights(keys, np.float32), model)
  logits = jax.jit(functools.partial(model.apply, train=False))(
    variables, jnp.asarray(data["x"].transpose(0, 2, 3, 1))
  )
  scale = np.abs(data["logits"]).max()
  np.testing.assert_allclose(logits, data["logits"], rtol=0, atol=1e-5 * scale)


@pytest.mark.slow
def test_logits_equal_the_reference_in_float64():
  data, keys = fixture("fixup_resnet20")
  with jax.enable_x64(True):
    model = fixup_net(20, dtype="float64")
    variables = our_variables(reference_weights(keys), model)
    x = jnp.asarray(data["x"].transpose(0, 2, 3, 1), jnp.float64)
    logits = jax.jit(functools.partial(model.apply, train=False))(variables, x)
    np.testing.assert_allclose(logits, data["logits"], rtol=0, atol=1e-12)


def _reference_init(depth: int) -> dict:
  with open(os.path.join(FIXTURES, "init_stats.json")) as f:
    return json.load(f)[str(depth)]


NAMES = {  # the reference's names outside the blocks -> ours
  "conv1.weight": "conv_init/kernel",
  "bias1": "stem_bias",
  "bias2": "head_bias",
  "fc.weight": "head/kernel",
  "fc.bias": "head/bias",
}


def our_name(key: str) -> str:
  """The path of our parameter that the reference's state_dict entry `key` is."""
  m = re.match(r"layer(\d)\.(\d+)\.(\w+?)(\.weight)?$", key)
  if m is None:
    return NAMES[key]
  block = f"stage{int(m.group(1)) - 1}_block{m.group(2)}/{m.group(3)}"
  return block + ("/kernel" if m.group(4) else "")


def _our_init(depth: int) -> dict:
  """Our Fixup init (key 0), by the reference's names."""
  model = fixup_net(depth)
  init = jax.jit(functools.partial(model.init, train=False))
  params = init(jax.random.key(0), jnp.zeros((1, *CIFAR)))["params"]
  ours = leaves(jax.device_get(layout.unstack_stages(params)))
  return {k: np.asarray(ours[our_name(k)], np.float64) for k in _reference_init(depth)}


@pytest.mark.parametrize("depth", [20, pytest.param(110, marks=pytest.mark.slow)])
def test_initialisation_equals_the_reference(depth):
  """Fixup's rules as the reference draws them: scalar biases 0 and multipliers 1, each branch's
  last convolution, the classifier's kernel and bias 0, the first convolution N(0, 2 / fan_out)
  times L^(-1/2): its std within 5 sampling standard errors of the reference's draw (a factor
  sqrt(2) of fan-in for fan-out at a widening, or L^(-1/2) missing, is 8+ errors away)."""
  ref, ours = _reference_init(depth), _our_init(depth)
  for key, stats in ref.items():
    value = ours[key]
    if stats["std"] == 0.0:  # zero-init layers, scalar biases and multipliers
      assert np.all(value == stats["mean"]), key
    elif key != "conv1.weight":
      n = np.prod(stats["shape"])
      assert abs(value.std() / stats["std"] - 1) < 5 * np.sqrt(1 / n), key
  # The stem: the reference keeps PyTorch's default U(+-1/sqrt(fan_in)) (std 1/sqrt(81) = 0.111),
  # ours draws the net's init (He: N(0, 2/fan_out), std 0.118); the bound shows which is which.
  stem = ref["conv1.weight"]
  assert stem["max_abs"] <= 1 / np.sqrt(27) < np.abs(ours["conv1.weight"]).max()


def test_the_reference_lr_groups_are_what_scalar_lr_scale_scales():
  """cifar_train.py trains the parameters named '*bias*' or '*scale*' at lr/10 (the scalar biases,
  the multipliers and the classifier's bias vector): exactly the parameters whose updates
  `scalar_lr_scale` (optim.scale_scalars) scales."""
  data, _ = fixture("sgd_fixup_resnet8")
  slow, scale, others = json.loads(str(data["groups"]))
  model = fixup_net(8, stages="unroll")
  ones = jax.tree_util.tree_map(jnp.ones_like, init_shapes(model, CIFAR)["params"])
  scaled = leaves(optim.scale_scalars(ones, 0.5))
  ours = {k for k, v in scaled.items() if np.all(v == 0.5)}
  assert {our_name(k) for k in slow + scale} == ours
  assert {our_name(k) for k in others} == set(scaled) - ours


def leaves(tree) -> dict:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {"/".join(str(k.key) for k in p): v for p, v in flat}


@pytest.mark.slow
def test_two_sgd_steps_equal_the_reference_in_float64():
  """Two steps of the reference's SGD (lr 0.1, scalars and biases 0.01, momentum 0.9, weight
  decay 1e-4 on every parameter) on Fixup-ResNet-8, from the same weights and batches."""
  data, keys = fixture("sgd_fixup_resnet8")
  weights = reference_weights(keys)
  with jax.enable_x64(True):
    model = fixup_net(8, dtype="float64")
    params = our_variables(weights, model)["params"]
    tx = optim.with_fixes(optim.sgd(0.1, 0.9, weight_decay=1e-4), scalar_lr_scale=0.1)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
      def loss_fn(p):
        logits = model.apply({"params": p}, x, train=True)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss

    for i in range(2):
      x = jnp.asarray(data[f"x{i}"].transpose(0, 2, 3, 1), jnp.float64)
      params, opt_state, loss = step(params, opt_state, x, jnp.asarray(data[f"y{i}"]))
      assert float(loss) == pytest.approx(float(data[f"loss{i}"]), rel=1e-12)
    before = from_reference(weights)
    after = jax.device_get(layout.unstack_stages(params))
  deltas = {k[len("delta/") :]: data[k].astype(np.float64) for k in data.files if k[:6] == "delta/"}
  expected = from_reference(deltas)
  for (path, ours), (_, b), (_, d) in zip(*(jax.tree_util.tree_flatten_with_path(t)[0]
                                             for t in (after, before, expected))):  # fmt: skip
    scale = np.abs(d).max() + 1e-30
    np.testing.assert_allclose(ours - b, d, rtol=0, atol=1e-6 * scale, err_msg=str(path))


def test_the_fixtures_are_what_the_fixture_script_writes_now(tmp_path):
  """Where PyTorch is installed, re-run the committed fixture script and compare."""
  if importlib.util.find_spec("torch") is None:
    pytest.skip("torch not installed: the committed fixtures are not re-made here")
  script = os.path.join(ROOT, "tests", "fixtures", "make_fixup_fixtures.py")
  proc = run_script(script, f"--out={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  for name in os.listdir(FIXTURES):
    if name.endswith(".npz"):
      committed, live = np.load(os.path.join(FIXTURES, name)), np.load(tmp_path / name)
      assert committed.files == live.files
      for key in committed.files:
        if committed[key].dtype.kind == "U":  # keys and shapes, parameter groups
          assert str(live[key]) == str(committed[key]), key
        else:
          np.testing.assert_allclose(live[key], committed[key], rtol=1e-6, err_msg=key)
