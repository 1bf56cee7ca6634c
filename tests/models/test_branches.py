"""cnn_depth/models/branches.py: the rules by which a residual branch meets its skip. Their numbers
against the papers and references (NF-ResNets' beta_i schedule as DeepMind's NF_ResNet computes
it, its activation gains, Fixup's L^(-1/(2m-2)), depth-muP's 1/sqrt(L), DKS's normalised sums),
their refusals, and a toy rule registered here reaching the net's blocks. The nets built with each
rule: tests/models/test_resnet.py; Fixup's and NF-ResNet's equality with their references:
tests/models/test_fixup.py, tests/models/test_nf.py.
"""

import json
import math
import pathlib

import jax
import numpy as np
import pytest

from cnn_depth import models
from cnn_depth.models import activations, branches

NF_SCHEDULE = pathlib.Path(__file__).parents[1] / "fixtures" / "nf_resnet" / "schedule.json"


def structure(**kw):
  kw.setdefault("num_blocks", 9)
  kw.setdefault("shape_changing", (False,) * 3 + (True, False, False) * 2)
  kw.setdefault("layers_per_branch", 2)
  return branches.Structure(**kw)


def test_nf_betas_equal_the_reference_nf_resnets_schedule():
  """beta_i of every block of DeepMind's NF_ResNet (nfnets/nf_resnet.py, as its constructor sets
  them for [n, n, n] blocks, each stage's first block projecting), alpha 0.2 and 0.5."""
  for key, blocks in json.loads(NF_SCHEDULE.read_text()).items():
    alpha = float(key.split(",")[0].split("=")[1])
    changes = [stride > 1 or c_in != c_out for stride, c_in, c_out, _, _ in blocks]
    reference_input_scale = [beta for *_, beta in blocks]  # nfnets multiplies by 1 / std
    np.testing.assert_allclose(
      1.0 / branches.nf_betas(changes, alpha), reference_input_scale, rtol=1e-14
    )
    coef = branches.coefficients(
      branches.get("nf"), structure(num_blocks=len(blocks), shape_changing=changes, nf_alpha=alpha)
    )
    np.testing.assert_allclose(coef["input"], reference_input_scale, rtol=1e-7)
    np.testing.assert_array_equal(coef["branch"], np.float32(alpha))


def test_nf_betas_grow_by_alpha_squared_and_reset_after_a_shape_change():
  # A CIFAR basic net's first stage keeps its shape (16 -> 16): no reset before the first stride.
  betas = branches.nf_betas(structure().shape_changing, 0.2)
  np.testing.assert_allclose(betas**2, [1, 1.04, 1.08, 1.12, 1.04, 1.08, 1.12, 1.04, 1.08])


def test_nf_gamma_is_the_references_constant_or_the_analytic_value():
  z, w = np.polynomial.hermite_e.hermegauss(200)
  w = w / w.sum()
  for name, gamma in branches.NF_GAMMA.items():
    assert branches.nf_gamma(name) == gamma
    # Each constant is NFNets' measurement for the function our entry of that name computes
    # (their 'silu' is our 'swish', their gelu the tanh approximation): within 0.1%.
    phi = activations.get(name).numpy(z)
    assert gamma * np.sqrt(w @ phi**2 - (w @ phi) ** 2) == pytest.approx(1.0, abs=1e-3), name
  # ReLU's closed form sqrt(2 / (1 - 1/pi)) (NFNets' paper, section 3), through leaky ReLU at 0.
  assert branches.nf_gamma("leaky_relu", 0.0) == pytest.approx(math.sqrt(2 / (1 - 1 / math.pi)))
  # erf (not in NFNets' table): Var(erf(z)) = (2/pi) arcsin(2/3), z ~ N(0, 1).
  assert branches.nf_gamma("erf") == pytest.approx(1 / math.sqrt(2 / math.pi * math.asin(2 / 3)))


def test_fixup_scale_and_the_fixed_branch_scales():
  assert branches.fixup_scale(27, 2) == pytest.approx(27**-0.5)  # Fixup: L^(-1/(2m-2)), m = 2
  assert branches.fixup_scale(18, 3) == pytest.approx(18**-0.25)  # m = 3: bottlenecks
  s = structure(shortcut="B", shortcut_weight=0.8)
  mup = branches.coefficients(branches.get("depth_mup"), s)
  np.testing.assert_allclose(mup["branch"], np.full(9, 1 / 3.0), rtol=1e-7)
  norm = branches.coefficients(branches.get("normalized"), s)
  np.testing.assert_allclose(norm["skip"] ** 2 + norm["branch"] ** 2, 1.0, rtol=1e-6)
  np.testing.assert_allclose(norm["skip"], 0.8, rtol=1e-7)
  for name in ("identity", "fixup", "skipinit", "rezero"):
    assert branches.coefficients(branches.get(name), s) is None
  assert branches.get("fixup").multiplier == ("scale", 1.0)
  assert branches.get("skipinit").multiplier == branches.get("rezero").multiplier == ("alpha", 0.0)


@pytest.mark.parametrize(
  "name,changes,match",
  [
    ("fixup", {"residual": False}, "branch='fixup' has no meaning on a plain net"),
    ("skipinit", {"residual": False}, "branch='skipinit' has no meaning on a plain net"),
    ("nf", {"residual": False}, "branch='nf' has no meaning on a plain net"),
    ("normalized", {"residual": False}, "branch='normalized' has no meaning on a plain net"),
    ("depth_mup", {"residual": False}, "branch='depth_mup' has no meaning on a plain net"),
    ("fixup", {}, "branch='fixup' replaces normalisation .* with norm='bn': set norm='none'"),
    ("fixup", {"norm": "none", "preact": True}, "post-activation ResNets .* cifar_resnet"),
    ("nf", {"preact": True, "shortcut": "B"}, "branch='nf' .* norm='bn': set norm='ws'"),
    ("nf", {"norm": "ws", "shortcut": "B"}, "needs pre-activation blocks.*use family cifar_preact"),
    ("nf", {"norm": "ws", "preact": True}, "needs projection shortcuts .* set shortcut='B'"),
    ("normalized", {"shortcut": "B"}, r"needs shortcut_weight in \(0, 1\), got 0.0"),
    ("normalized", {"shortcut_weight": 0.8}, "needs projection shortcuts"),
    ("resnet", {}, "branch='resnet' is not a branch rule; choose one of 'identity', 'fixup'"),
  ],
)
def test_each_rule_refuses_the_nets_where_it_has_no_meaning(name, changes, match):
  with pytest.raises(ValueError, match=match):
    branches.check(name, structure(**changes))


def test_every_rule_accepts_the_net_its_paper_describes():
  assert branches.check("identity", structure(residual=False)).name == "identity"
  assert branches.check("fixup", structure(norm="none")).fixup
  assert branches.check("nf", structure(norm="ws", preact=True, shortcut="B")).name == "nf"
  assert branches.check("normalized", structure(shortcut="B", shortcut_weight=0.5))
  for name in ("skipinit", "rezero", "depth_mup"):
    assert branches.check(name, structure()).name == name


def test_a_rule_registered_here_reaches_every_block():
  """One `register` call adds a rule: a fixed 0.5 on each branch is the He net whose gates are
  0.5, to the last bit (what a block adds is gate * branch either way)."""
  half = branches.Branch("half", "skip + f(x) / 2", coefficients=lambda s: {"branch": [0.5] * 6})
  branches.register(half)
  try:
    with pytest.raises(ValueError, match="already registered"):
      branches.register(half)
    net = models.cifar_resnet(14, width=2, branch="half")
    plain_sum = net.clone(branch="identity")
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
    v = jax.jit(lambda x: net.init(jax.random.key(0), x, train=False))(x)
    # XLA:CPU's default (fusion) emitters, which the suite turns off to compile faster
    # (tests/helpers/runner.py): under the old emitters the two programs' logits differ by up
    # to 1.8e-7 (1 ulp); under the default ones, which users run, they agree to the last bit.
    default = {"xla_cpu_use_fusion_emitters": True}
    forward = lambda m, gates: jax.jit(
      lambda g: m.apply(v, x, train=False, gates=g), compiler_options=default
    )(gates)
    np.testing.assert_array_equal(forward(net, np.ones(6)), forward(plain_sum, np.full(6, 0.5)))
  finally:
    branches.BRANCHES.pop("half")
