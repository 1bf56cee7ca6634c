"""Normaliser-free ResNets (Brock, De & Smith 2021): `cifar_preact` with `norm='ws', branch='nf'`
against DeepMind's reference (deepmind-research nfnets/nf_resnet.py `NFResBlock` and `NF_ResNet`'s
alpha / beta_i schedule, with base.py's WSConv2D and ReLU gamma), through tests/fixtures/nf_resnet/,
which tests/fixtures/make_nf_resnet_fixtures.py wrote with Haiku (versions in its versions.json).

Our pre-activation bottleneck is the reference's block: its conv0, conv1, conv2 and conv_shortcut
are our conv1, conv2, conv3 and proj/conv, each `w` our `kernel` (both HWIO), with `gain` and
`bias` of the same names. The reference's zero-init `skip_gain` (SkipInit on top of alpha) is not
ours (branches.py says why); the fixtures set it to 1. Its 3x3 stride-2 convolution pads 'SAME'
(nothing before, one row and column after), ours one on each side as every net here: the strided
block is compared with the reference's block padded as ours (the fixture's one change). The
reference's `beta` is the multiplier of the block's input, 1 / sqrt(expected variance): the paper's
1 / beta_i, our coefficient 'input'.

Measured: block outputs equal to 2.5e-7 of their largest magnitude in float32 and 9e-9 in float64
(our per-block constants are float32 arrays); the reference's own 'SAME' padding gives a strided
output 26% away from ours (the padding is all that differs). The schedules are equal to float32's
precision. First tier (float32), ~3 s.
"""

from __future__ import annotations

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.runner import ROOT

from cnn_depth.models import blocks, branches, build_model, layout

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "nf_resnet")
NAMES = {"conv0": "conv1", "conv1": "conv2", "conv2": "conv3"}  # the reference's -> ours


def nf_net(n: int = 1, alpha: float = 0.2, **kw):
  config = dict(family="cifar_preact", depth=9 * n + 2, num_classes=10, norm="ws", branch="nf")
  return build_model({**config, "nf_alpha": alpha, **kw})


def our_params(data) -> dict:
  """The reference block's parameters as our block's."""
  params = {}
  for key in data.files:
    if key.startswith("params/") and not key.endswith("skip_gain"):
      _, module, name = key.split("/")
      leaf = {"w": "kernel"}.get(name, name)
      if module == "conv_shortcut":
        params.setdefault("proj", {}).setdefault("conv", {})[leaf] = data[key]
      else:
        params.setdefault(NAMES[module], {})[leaf] = data[key]
  return params


@pytest.mark.parametrize("case", ["identity", "projection", "strided_torch_padding"])
@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_block_equals_the_reference(case, dtype):
  """act(x) / beta -> 1x1 -> act -> 3x3 (stride) -> act -> 1x1, times alpha, plus x or the
  projection of act(x) / beta; act is ReLU times NFNets' gamma, every convolution scaled WS with
  gain and bias."""
  data = np.load(os.path.join(FIXTURES, f"block_{case}.npz"))
  assert float(data["params/block/skip_gain"]) == 1.0
  with jax.enable_x64(dtype == "float64"):
    fixes = nf_net(width=8, dtype=dtype).fixes()
    block = blocks.PreActBottleneckBlock(
      int(data["out_ch"]), int(data["stride"]), shortcut="B", dtype=dtype, fixes=fixes
    )
    coef = {"input": data["beta"], "branch": data["alpha"]}
    coef = {k: jnp.asarray(v, jnp.float32) for k, v in coef.items()}  # as the net passes them
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), our_params(data))
    out = jax.jit(block.apply)({"params": params}, jnp.asarray(data["x"], dtype), 1.0, None, coef)
    scale = np.abs(data["out"]).max()
    tol = 1e-5 if dtype == "float32" else 1e-7
    np.testing.assert_allclose(out, data["out"], rtol=0, atol=tol * scale)


def test_our_block_has_the_reference_parameters():
  """Every parameter of the reference block but its skip_gain is one of ours, and no more."""
  for case in ("identity", "projection"):
    data = np.load(os.path.join(FIXTURES, f"block_{case}.npz"))
    block = blocks.PreActBottleneckBlock(
      int(data["out_ch"]), int(data["stride"]), shortcut="B", fixes=nf_net(width=8).fixes()
    )
    coef = {"input": jnp.float32(1.0), "branch": jnp.float32(0.2)}
    shapes = jax.eval_shape(block.init, jax.random.key(0), data["x"], 1.0, None, coef)["params"]
    ref = jax.tree_util.tree_map(np.shape, our_params(data))
    assert jax.tree_util.tree_map(lambda a: a.shape, shapes) == ref


def test_schedule_equals_the_reference():
  """alpha and beta_i of every block (the expected variance growing by alpha^2 per block, reset to
  1 + alpha^2 after each stage's first block) and which blocks project, for [n, n, n] blocks of
  16 -> 64, 128, 256 channels (our width-16 CIFAR bottleneck net) as NF_ResNet's constructor sets
  them."""
  with open(os.path.join(FIXTURES, "schedule.json")) as f:
    schedules = json.load(f)
  assert len(schedules) == 6
  for name, rows in schedules.items():
    alpha, n = (float(v.split("=")[1]) for v in name.split(","))
    net = nf_net(int(n), alpha)
    stride, in_ch, out_ch, ref_alpha, beta = map(np.asarray, zip(*rows))
    coef = branches.coefficients(net.fixes().branch, net.branch_structure())
    np.testing.assert_allclose(coef["input"], beta, rtol=1e-7, err_msg=name)
    np.testing.assert_allclose(coef["branch"], ref_alpha, rtol=1e-7, err_msg=name)
    assert list(net.shape_changing_blocks()) == list((stride > 1) | (in_ch != out_ch)), name
    widths = [net.stem_width] + [
      w for w, k in zip(net.stage_widths, net.stage_sizes) for _ in range(k)
    ]
    assert (widths[:-1], widths[1:]) == (list(in_ch), list(out_ch)), name
    np.testing.assert_allclose(branches.nf_betas(net.shape_changing_blocks(), alpha), 1.0 / beta)


@pytest.mark.slow
def test_block_output_variances_follow_the_expected_schedule():
  """The paper's signal propagation plot (Brock, De & Smith 2021, Figure 2): at initialisation, on
  unit Gaussian inputs, the average channel variance of each block's output (NFNets' `avg_var`
  signal metric) is the expected variance beta_{i+1}^2, growing by alpha^2 per block and reset to
  1 + alpha^2 at each stage's first block. Measured at width 16, alpha 0.5: within 7% of it, the
  growth per block 0.21-0.27 (finite width and 8x8 maps bias both low); without the 1 / beta_i
  input scale the growth would be alpha^2 Var(h_i), 0.31 then 0.39."""
  alpha, n = 0.5, 3
  model = nf_net(n, alpha, width=16, stages="unroll")
  x = jax.random.normal(jax.random.key(1), (8, 32, 32, 3))
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.key(0), x[:1])
  is_block = lambda mdl, method: isinstance(mdl, blocks._Block) and method == "__call__"
  capture = lambda v, x: model.apply(v, x, train=False, capture_intermediates=is_block)[1]
  outputs = jax.jit(capture)(variables, x)["intermediates"]
  var = np.array(
    [np.mean(np.var(outputs[b]["__call__"][0], axis=(0, 1, 2))) for b in layout.block_names(model)]
  )
  beta = branches.nf_betas(model.shape_changing_blocks(), alpha)
  expected = np.append(beta[1:] ** 2, beta[-1] ** 2 + alpha**2)
  np.testing.assert_allclose(var, expected, rtol=0.1)
  growth = np.diff(var.reshape(3, n), axis=1)
  np.testing.assert_allclose(growth.mean(axis=1), alpha**2, rtol=0.2)
