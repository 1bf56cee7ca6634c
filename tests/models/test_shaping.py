"""The DKS/TAT solver equals DeepMind's dks 0.1.2 (tests/fixtures/dks/constants.json, written by
tests/fixtures/make_dks_fixtures.py): its quadrature rule, local maps, the nets' maximal
subnetwork functions, the bisection's local targets and the solved constants, on dks's own test
cases and on our CIFAR nets; every solution meets the conditions it solves.

Which solution: the conditions are unchanged by alpha -> -alpha (y ~ N(0, 1) is symmetric) and,
for odd tanh, by (beta, delta) -> (-beta, -delta), so they have several roots. dks keeps the first
its root finder reaches from a fixed list of starts; ours takes the same steps from the same
starts and reaches the same root (the fixture records dks's start, and the test holds ours to it).
For tanh, dks's first starts (beta = 0, where the residuals are even in beta) stall, and the
solution it returns is the one with beta > 0 reached from (1, 1) (DKS) or (1, 0, +-1), (1, 1, x)
(TAT; a root with alpha * gamma >= 2 is rejected as dks does)."""

import functools
import json
import math
import pathlib

import numpy as np
import pytest

from cnn_depth.models import activations, shaping

FIXTURE = json.loads(
  (pathlib.Path(__file__).parents[1] / "fixtures/dks/constants.json").read_text()
)
SOLUTIONS = FIXTURE["solutions"]


def _structure(name):
  spec = FIXTURE["subnets"][name]
  if spec["kind"] == "dks_test":  # a modified ResNet-101: pre-activation bottlenecks, w = 0.6
    return shaping.ResidualNet((3, 4, 23, 3), 3, 0.6, True, (True,) * 4, head_layers=1)
  fields = ("block", "preact", "residual", "shortcut", "shortcut_weight")
  return shaping.subnet_for(spec["depth"], **{k: spec[k] for k in fields})


def _solve(case):
  t = case["targets"]
  return shaping.solve(
    case["activation"],
    case["method"].lower(),
    _structure(case["structure"]),
    zeta=t["zeta"],
    eta=t["eta"],
    tau=t["tau"],
    local_q_slope=t["local_q_slope"],
  )


def _as_dict(solution):
  t = solution.transform
  return dict(vars(t), negative_slope=solution.negative_slope)


def _case_id(case):
  t = case["targets"]
  return f"{case['activation']}-{case['method']}-{case['structure']}-z{t['zeta']}"


def _tier(case):
  """dks's own parameter cases and every leaky-ReLU TAT case (closed form) in the first tier."""
  quick = case["structure"] == "dks_test" and "published_params" in case
  quick |= case["activation"] == "leaky_relu" and case["method"] == "TAT"
  return () if quick else (pytest.mark.slow,)


CASES = [pytest.param(c, id=_case_id(c), marks=_tier(c)) for c in SOLUTIONS]


def test_the_quadrature_rule_is_dks_shipped_one():
  ref = FIXTURE["legendre"]
  x, w = shaping.legendre_rule(ref["order"])
  i = np.asarray(ref["index"])
  inner = np.abs(np.asarray(ref["x"])) <= 0.9  # all of dks's rule that carries Gaussian mass
  np.testing.assert_allclose(x[i][inner], np.asarray(ref["x"])[inner], rtol=0, atol=1e-15)
  np.testing.assert_allclose(w[i][inner], np.asarray(ref["w"])[inner], rtol=1e-10)
  assert np.all(np.diff(x) > 0) and abs(w.sum() - 2.0) < 1e-10


@pytest.mark.parametrize(
  "entry", FIXTURE["maps"], ids=lambda e: f"{e['activation']}-{e['transform']}"
)
def test_local_maps_equal_dks(entry):
  p = dict(entry["params"])
  slope = {"negative_slope": p.pop("negative_slope")} if "negative_slope" in p else {}
  got = shaping.local_maps(entry["activation"], activations.Transform(**p), **slope)
  for key in ("q_value", "q_slope", "c_value_0", "c_slope_1", "c_curvature_1"):
    if key in entry:
      np.testing.assert_allclose(getattr(got, key), entry[key], rtol=1e-10, atol=1e-13, err_msg=key)
  assert (got.c_curvature_1 is None) == ("c_curvature_1" not in entry)


@pytest.mark.parametrize("name", list(FIXTURE["subnets"]))
def test_subnet_functions_equal_dks_form(name):
  """Our structures equal dks's subnet_max_func restated for each net (the fixture script's)."""
  subnet, want = _structure(name), FIXTURE["subnets"][name]
  assert subnet(1.0, lambda y: 1.05 * y) == pytest.approx(want["slope_1_05"], rel=1e-13)
  assert subnet(0.0, lambda y: 0.01 + y) == pytest.approx(want["curvature_0_01"], rel=1e-13)
  c0 = subnet(0.0, lambda c: shaping.leaky_relu_c_map(c, 0.5))
  assert c0 == pytest.approx(want["leaky_c0_0_5"], rel=1e-13)


def test_a_plain_net_is_a_chain_of_depth_minus_one():
  assert shaping.subnet_for(56, residual=False) == shaping.Chain(55)
  assert shaping.subnet_for(56, block="bottleneck", residual=False) == shaping.Chain(55)
  assert shaping.subnet_for(20, shortcut_weight=0.0)(0.0, lambda y: y + 1) == 19


@pytest.mark.parametrize("case", [c for c in SOLUTIONS if "local_target" in c], ids=_case_id)
def test_local_targets_equal_dks_bisection(case):
  t, method = case["targets"], case["method"].lower()
  got = shaping.local_target(method, _structure(case["structure"]), zeta=t["zeta"], tau=t["tau"])
  assert got == case["local_target"]  # the same bisection steps give the same float


@pytest.mark.parametrize("case", CASES)
def test_solutions_equal_dks(case):
  if "error" in case:
    with pytest.raises(ValueError, match="out of reach for this net"):
      _solve(case)
    return
  got = _solve(case)
  for key, want in case["params"].items():
    np.testing.assert_allclose(_as_dict(got)[key], want, rtol=1e-6, atol=1e-9, err_msg=key)
  if "start" in case:  # the same solution, reached from the same starting point
    np.testing.assert_allclose(got.start, case["start"], rtol=1e-15)
  _assert_meets_conditions(case, got)


def _assert_meets_conditions(case, got):
  """The conditions dks solves, met by our solution to hybr's tolerance."""
  maps = shaping.local_maps(case["activation"], got.transform, **got.params)
  near = functools.partial(pytest.approx, abs=1e-8)
  assert maps.q_value == near(1.0)
  t = case["targets"]
  if case["method"] == "DKS":
    assert maps.c_value_0 == near(0.0) and maps.c_slope_1 == near(got.local_target)
    if case["activation"] != "relu":  # dks fixes ReLU's shift and drops Q'(1)
      assert maps.q_slope == near(t["local_q_slope"])
  elif case["activation"] == "leaky_relu":
    c0 = _structure(case["structure"])(
      0.0, lambda c: shaping.leaky_relu_c_map(c, got.negative_slope)
    )
    assert c0 == pytest.approx(t["eta"], abs=1e-8)
  else:
    assert maps.q_slope == near(1.0) and maps.c_slope_1 == near(1.0)
    assert maps.c_curvature_1 == near(got.local_target)


@pytest.mark.parametrize("case", [c for c in SOLUTIONS if "published_params" in c], ids=_case_id)
def test_solutions_equal_dks_published_constants(case):
  """To dks's own test tolerance (7 decimals): its tests file's constants."""
  got = _as_dict(_solve(case))
  for key, want in case["published_params"].items():
    assert got[key] == pytest.approx(want, abs=1.5e-7), key


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in SOLUTIONS if "published_values" in c], ids=_case_id)
def test_transformed_activations_equal_dks_published_values(case):
  s = _solve(case)
  act, t = activations.get(case["activation"]), s.transform
  x = np.array([0.6, -0.6])
  got = t.output_scale * (act.numpy(t.input_scale * x + t.input_shift, **s.params) + t.output_shift)
  np.testing.assert_allclose(got, case["published_values"], rtol=0, atol=5e-9)


@pytest.mark.parametrize("name", [n for n, a in activations.ACTIVATIONS.items() if a.smooth])
def test_second_derivatives_equal_a_central_difference(name):
  act = activations.get(name)
  x = np.concatenate([np.linspace(-4, -0.05, 80), np.linspace(0.05, 4, 80)])  # off ELU's kink
  h = 1e-5
  numeric = (act.derivative(x + h) - act.derivative(x - h)) / (2 * h)
  np.testing.assert_allclose(shaping.SECOND_DERIVATIVES[name](x), numeric, rtol=1e-6, atol=1e-8)


def test_leaky_relu_c_map_is_the_arc_cosine_kernel_at_slope_0():
  c = np.linspace(-1, 1, 9)
  relu = (np.sqrt(1 - c**2) + (np.pi - np.arccos(c)) * c) / np.pi
  np.testing.assert_allclose(shaping.leaky_relu_c_map(c, 0.0), relu, rtol=1e-15)
  np.testing.assert_allclose(shaping.leaky_relu_c_map(c, 1.0), c, rtol=1e-15)


def test_solve_is_cached():
  net = shaping.subnet_for(56)
  assert shaping.solve("leaky_relu", "tat", net) is shaping.solve("leaky_relu", "tat", net)


@pytest.mark.parametrize(
  "args, kw, message",
  [
    (("relu", "tat"), {}, "transform='tat' does not apply to activation 'relu' \\(its deriv"),
    (("selu", "tat"), {}, "transform='tat' does not apply to activation 'selu'"),
    (("tanh", "kfac"), {}, r"method must be one of \('dks', 'tat'\), got 'kfac'"),
    (("tanh", "dks"), {"zeta": 1.0}, "dks_zeta must be greater than 1, got 1.0"),
    (("tanh", "tat"), {"tau": 0.0}, "tat_tau must be greater than 0, got 0.0"),
    (("leaky_relu", "tat"), {"eta": 1.5}, r"tat_eta must be in \[0, 1\], got 1.5"),
    (("tahn", "dks"), {}, "unknown activation 'tahn'"),
  ],
)
def test_bad_input_is_refused_in_one_sentence(args, kw, message):
  with pytest.raises(ValueError, match=message):
    shaping.solve(*args, shaping.Chain(10), **kw)


@pytest.mark.parametrize(
  "kw, message",
  [
    ({"depth": 21}, "depth 21 is not 6n\\+2 for a CIFAR net of basic blocks"),
    ({"depth": 22, "block": "bottleneck"}, "depth 22 is not 9n\\+2"),
    ({"depth": 20, "block": "wide"}, "block must be 'basic' or 'bottleneck', got 'wide'"),
    ({"depth": 20, "shortcut_weight": 1.0}, r"shortcut_weight must be in \[0, 1\), got 1.0"),
  ],
)
def test_subnet_for_refuses_what_is_no_cifar_net(kw, message):
  with pytest.raises(ValueError, match=message):
    shaping.subnet_for(**kw)


def test_an_unreachable_eta_names_its_field():
  with pytest.raises(ValueError, match="tat_eta=0.99 is out of reach for this net"):
    shaping.solve("leaky_relu", "tat", shaping.Chain(3), eta=0.99)
  assert math.isfinite(
    shaping.solve("leaky_relu", "tat", shaping.Chain(100), eta=0.99).negative_slope
  )
