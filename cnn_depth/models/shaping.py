"""Deep Kernel Shaping and TAT: the transformed activation a net's structure asks for.

DKS (Martens et al. 2021, "Rapid training of deep neural networks without skip connections or
normalization layers using Deep Kernel Shaping") and TAT (Zhang, Botev & Martens 2022, "Deep
learning without shortcuts: shaping the kernel with tailored rectifiers") replace an activation
phi by gamma * (phi(alpha * x + beta) + delta) (`activations.Transform`), with the constants
chosen so that the net's maximal C map (the composition of the local C maps along its deepest
subnetwork) has a prescribed shape:

  DKS:  Q(1) = 1, Q'(1) = 1 and C(0) = 0 locally; C_f'(1) = zeta over the net
  TAT, leaky ReLU: Q(1) = 1 (gamma = sqrt(2 / (1 + s^2))); C_f(0) = eta over the net, solved for
        the negative slope s with leaky ReLU's closed-form C map
  TAT, smooth phi: Q(1) = 1, Q'(1) = 1, C'(1) = 1 locally; C_f''(1) = tau over the net
(DKS's section "Summary of our method"; TAT's appendix "Additional details and pseudocode for
activation function transformations", which also defines the subnetwork maximizing function).

This module equals DeepMind's reference, `dks.base.activation_transform._get_activations_params`
(PyPI dks 0.1.2; tests/fixtures/make_dks_fixtures.py records its constants), step for step:
  * a bisection (dks's `_solve_increasing`, tol 1e-8) turns the net-level target into a local one
    (C'(1) for DKS, C''(1) for TAT) through the net's maximal slope (curvature) function, the
    subnetwork maximizing function with composition replaced by a product (a sum);
  * scipy.optimize.root(method='hybr') solves the local conditions, from dks's fixed starting
    points and then its random ones (a generator seeded 123), keeping the first solution it
    accepts; TAT rejects solutions with alpha * gamma >= 2 as dks does (unstable Q maps). Where the
    conditions admit several solutions this returns the one dks returns, by taking the same path;
  * Gaussian means are dks's: Gauss-Legendre of order 100,000 on [-10, 10]. Its nodes are
    scipy.special.roots_legendre's (which takes minutes at this order; dks ships them in a file)
    to 4e-16, computed here in 0.2 s by Newton's method on Stieltjes' asymptotic series of P_n
    (Szego, "Orthogonal polynomials", section 8.21; as in Hale & Townsend 2013). Matching the rule
    matters, not just the maths: at a kink of phi' (ReLU, leaky ReLU, SELU) a rule of this order
    errs by up to ~1e-4 times the Gaussian density there (4.5e-7 of E[phi'^2] in dks's ReLU test
    case), and dks's constants carry that error;
  * derivatives are analytic (dks differentiates with autograd): phi' from the activation
    registry, phi'' from `SECOND_DERIVATIVES` below.
A solve takes 0.01-2 s (TAT on tanh tries several starting points) and is cached (`solve` is an
lru_cache on its arguments).

The nets' structures (dks/examples/haiku/modified_resnet.py's subnet_max_func is the reference):
  `Chain(layers)`       L nonlinear layers in a row: M(x) = r^L(x)
  `ResidualNet(...)`    stages of residual blocks merged by normalised sums w^2 * skip + (1 - w^2)
                        * branch in the C maps (w * skip + sqrt(1 - w^2) * branch in the net)
  `subnet_for(depth, block=, preact=, residual=, shortcut=, shortcut_weight=)`: the structure of
  a CIFAR net of ours (resnet.py, blocks.py) as the nets' builders ask for it:
    plain-d (cifar_plain, basic or bottleneck): conv-act, then per block conv-act-conv-act (or
      three of each): d - 1 nonlinearities on its only path, `Chain(d - 1)`;
    post-activation ResNet (cifar_resnet): the stem's act, then per block branch (1 act in a
      basic block, 2 in a bottleneck), the normalised sum, an act after it;
    pre-activation (cifar_preact): per block act-conv-act-conv (3 acts in a bottleneck), the sum,
      and the final act; an option-B shortcut at a shape change reads the activated input.
  An option-A shortcut (subsampling, zero channels) leaves c unchanged, so it counts as identity
  here; its zero channels halve q, which the maps (Q(1) = 1 everywhere) do not model.

API: solve(activation, method, subnet, *, zeta=1.5, eta=0.9, tau=0.3, local_q_slope=1.0) ->
Solution(transform, negative_slope, local_target, start); local_target(method, subnet, ...);
local_maps(activation, transform, **params) -> LocalMaps (Q(1), Q'(1), C(0), C'(1), C''(1) as
dks computes them); leaky_relu_c_map(c, s); legendre_rule(n).

`solve` follows dks's rules (it allows DKS on ReLU, which dks discourages, and refuses TAT on it)
and refuses TAT on SELU too, which dks allows: SELU's derivative jumps at 0, so its C''(1) is
infinite, not the a.e. E[phi''^2] dks integrates. Which transforms a net may ask for is the
activation registry's `transforms`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Callable

import numpy as np

from cnn_depth import lazy_import
from cnn_depth.models import activations

optimize = lazy_import("scipy.optimize")
special = lazy_import("scipy.special")

_ORDER = 100_000  # dks's _QUADRATURE_ORDER, on [-10, 10]
_HALF_WIDTH = 10.0
_KEEP = 9.0  # the points of dks's rule kept (|y| <= 9); see _gaussian_rule
_SEED = 123  # dks's _RANDOM_SEED
_NUM_TRIES = 50
# dks's _ALWAYS_TRY_VALUES and the ranges of its random starting points.
_ALWAYS_TRY = {
  "input_shift": (0.0, 1.0, -1.0),
  "input_scale": (1.0, 0.1),
  "output_shift": (0.0, 1.0, -1.0),
  "negative_slope": (0.0, 0.5),
}
_SAMPLE_RANGE = {
  "input_shift": (-3.0, 3.0),
  "input_scale": (0.0, 2.0),
  "output_shift": (-3.0, 3.0),
  "negative_slope": (0.0, 1.0),
}
_RELU_MAX_C_SLOPE = 1.466942206924260361  # dks: the largest C'(1) of ReLU with input_shift > 0
METHODS = ("dks", "tat")


# --------------------------------------------------------------------------------------------------
# Second derivatives (dks takes them with autograd from the definitions activations.py restates),
# of the activations whose C map has a finite curvature at 1, the registry's `smooth` ones. (dks
# also takes SELU's, whose derivative jumps at 0: its true C''(1) is infinite.)


def _gelu_second(x):
  c = math.sqrt(2.0 / math.pi)
  t = np.tanh(c * (x + 0.044715 * x**3))
  du, d2u = c * (1.0 + 3 * 0.044715 * x**2), c * 6 * 0.044715 * x
  return (1.0 - t**2) * (du + 0.5 * x * (d2u - 2.0 * t * du**2))


def _elu_second(x):
  return np.where(x < 0, np.exp(np.minimum(x, 0.0)), 0.0)


def _sigmoid_second(x):
  s = special.expit(x)
  return s * (1.0 - s) * (1.0 - 2.0 * s)


def _swish_second(x):
  s = special.expit(x)
  return s * (1.0 - s) * (2.0 + x * (1.0 - 2.0 * s))


SECOND_DERIVATIVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
  "tanh": lambda x: -2.0 * np.tanh(x) * (1.0 - np.tanh(x) ** 2),
  "erf": lambda x: -4.0 / math.sqrt(math.pi) * x * np.exp(-np.square(x)),
  "sigmoid": _sigmoid_second,
  "softplus": lambda x: special.expit(x) * special.expit(-x),
  "elu": _elu_second,
  "swish": _swish_second,
  "gelu": _gelu_second,
  "gelu_exact": lambda x: (2.0 - x**2) * np.exp(-(x**2) / 2) / math.sqrt(2 * math.pi),
}


# --------------------------------------------------------------------------------------------------
# dks's Gaussian means: Gauss-Legendre of order 100,000 on [-10, 10].


def _stieltjes(n: int, theta: np.ndarray, terms: int = 6):
  """P_n(cos theta) and dP_n/dtheta, each divided by 2 Gamma(n+1) / (sqrt(pi) Gamma(n+3/2)),
  by Stieltjes' series (Szego section 8.21); for n = 1e5 six terms reach 1e-20 where
  sin(theta) > 0.5."""
  s2, cot = 2.0 * np.sin(theta), 1.0 / np.tan(theta)
  p, dp, h = np.zeros_like(theta), np.zeros_like(theta), 1.0
  for m in range(terms):
    if m:
      h *= (m - 0.5) ** 2 / (m * (n + m + 0.5))
    a = (n + m + 0.5) * theta - (m + 0.5) * math.pi / 2
    f = h / s2 ** (m + 0.5)
    p += f * np.cos(a)
    dp -= f * ((n + m + 0.5) * np.sin(a) + (m + 0.5) * cot * np.cos(a))
  return p, dp


@functools.cache
def legendre_rule(n: int = _ORDER) -> tuple[np.ndarray, np.ndarray]:
  """Gauss-Legendre nodes (ascending) and weights on [-1, 1] for even n >= 1000.

  Newton's method on theta from Tricomi's first guess, with Stieltjes' series. Nodes with |x| <
  0.87 (all that carry Gaussian mass on [-10, 10]: e^-37 beyond) equal scipy's to 4e-16 and their
  weights to 1e-11; the outermost few, where the series converges slowly, are approximate.
  """
  if n < 1000 or n % 2:
    raise ValueError(f"legendre_rule needs an even order n >= 1000, got {n}")
  k = np.arange(1, n // 2 + 1)
  x0 = (1 - 1 / (8 * n**2) + 1 / (8 * n**3)) * np.cos(math.pi * (4 * k - 1) / (4 * n + 2))
  theta = np.arccos(x0)
  for _ in range(4):
    p, dp = _stieltjes(n, theta)
    theta = theta - p / dp
  _, dp = _stieltjes(n, theta)
  m = n + 1.0  # Gamma(m + 1/2) / Gamma(m), asymptotically (the next term is 1e-22 at n = 1e5)
  ratio = math.sqrt(m) * (1 - 1 / (8 * m) + 1 / (128 * m**2) + 5 / (1024 * m**3))
  w = 2.0 / (dp * 2.0 / (math.sqrt(math.pi) * ratio)) ** 2
  x = np.cos(theta)
  return np.concatenate([-x, x[::-1]]), np.concatenate([w, w[::-1]])


@functools.cache
def _gaussian_rule() -> tuple[np.ndarray, np.ndarray]:
  """Points y and weights v with E[f(y)], y ~ N(0, 1), = sum(v * f(y)): dks's
  _estimate_gaussian_mean, less the 29% of its points beyond |y| = 9, which carry e^-40 of the
  mass (their share of E[f] stays under 1e-16 for an f of polynomial growth)."""
  x, w = legendre_rule()
  y = _HALF_WIDTH * (x + 1.0) - _HALF_WIDTH
  keep = np.abs(y) <= _KEEP
  y, w = y[keep], w[keep]
  return y, _HALF_WIDTH * w * np.exp(-(y**2) / 2) / math.sqrt(2 * math.pi)


def _mean(values: np.ndarray) -> np.float64:
  # A pairwise sum, as fixed_quad's (and no BLAS threads, which a busy machine stalls). NumPy
  # scalars, so that a root finder's step to Q(1) = 0 gives inf and a failed start, as in dks.
  return np.sum(_gaussian_rule()[1] * values)


# --------------------------------------------------------------------------------------------------
# The local maps of a transformed activation.


@dataclasses.dataclass(frozen=True)
class LocalMaps:
  """The local Q and C maps of gamma * (phi(alpha x + beta) + delta) at q = 1, as dks computes
  them: Q(1) = E[phi^2], Q'(1) = E[phi phi' x], C(0) = E[phi]^2 / Q(1), C'(1) = E[phi'^2] / Q(1),
  C''(1) = E[phi''^2] / Q(1) (None where phi has no second derivative: ReLU, leaky ReLU)."""

  q_value: float
  q_slope: float
  c_value_0: float
  c_slope_1: float
  c_curvature_1: float | None


class _Phi:
  """phi(alpha y + beta) + delta and its derivatives at dks's quadrature points."""

  def __init__(self, name, input_scale=1.0, input_shift=0.0, output_shift=0.0, **params):
    self.act, self.params = activations.get(name), params
    self.name, self.alpha = name, input_scale
    self.u = _gaussian_rule()[0] * input_scale + input_shift
    self.value = self.act.numpy(self.u, **params) + output_shift

  def first(self, gamma):
    return gamma * self.alpha * self.act.derivative(self.u, **self.params)

  def second(self, gamma):
    return gamma * self.alpha**2 * SECOND_DERIVATIVES[self.name](self.u)


def local_maps(activation: str, transform=activations.IDENTITY, **params) -> LocalMaps:
  """The local maps of `activation` (with `params`, e.g. negative_slope) under `transform`."""
  t = transform
  phi = _Phi(activation, t.input_scale, t.input_shift, t.output_shift, **params)
  value, first = t.output_scale * phi.value, phi.first(t.output_scale)
  q = float(_mean(value**2))
  curvature = None
  if activation in SECOND_DERIVATIVES:
    curvature = float(_mean(phi.second(t.output_scale) ** 2)) / q
  q_slope = float(_mean(value * first * _gaussian_rule()[0]))
  return LocalMaps(q, q_slope, float(_mean(value)) ** 2 / q, float(_mean(first**2)) / q, curvature)


def leaky_relu_c_map(c, negative_slope):
  """The local C map of leaky ReLU with Q(1) = 1 (TAT's closed form, from the arc-cosine kernel
  of Cho & Saul 2009; dks's _leaky_relu_cmap)."""
  s = negative_slope
  arc = (np.sqrt(1 - c**2) + (np.pi - np.arccos(c)) * c) / np.pi
  return ((1 - s) ** 2 * arc + 2 * s * c) / (1 + s**2)


# --------------------------------------------------------------------------------------------------
# The solver of the local conditions (dks's _solve_for_activation_params).


@dataclasses.dataclass(frozen=True)
class _Targets:
  q_slope: float | None  # Q'(1)
  c_value_0: float | None  # C(0), met through delta
  c_slope_1: float | None  # C'(1)
  c_curvature_1: float | None  # C''(1)
  reject_large_gain: bool = False  # TAT: refuse alpha * gamma >= 2


def _complete(name, constants, free, p, c_value_0) -> tuple[dict, _Phi]:
  """dks's make_params_from_pvector: the free parameters from p, then delta (where C(0) is set)
  and gamma (Q(1) = 1) from the Gaussian means; with phi (delta included) at the points."""
  params = dict(constants, **{k: float(v) for k, v in zip(free, p)})
  kw = {k: v for k, v in params.items() if k == "negative_slope"}
  phi = _Phi(name, params.get("input_scale", 1.0), params.get("input_shift", 0.0),
             params.get("output_shift", 0.0), **kw)  # fmt: skip
  if c_value_0 is not None:
    params["output_shift"] = math.sqrt(c_value_0) - _mean(phi.value)
    phi.value = phi.value + params["output_shift"]
  params["output_scale"] = 1.0 / np.sqrt(_mean(phi.value**2))
  return params, phi


def _residuals(name, constants, free, targets: _Targets, p) -> np.ndarray:
  params, phi = _complete(name, constants, free, p, targets.c_value_0)
  gamma = params["output_scale"]
  first, out = phi.first(gamma), []
  if targets.q_slope is not None:
    out.append(_mean(gamma * phi.value * first * _gaussian_rule()[0]) - targets.q_slope)
  if targets.c_slope_1 is not None:
    out.append(_mean(first**2) - targets.c_slope_1)
  if targets.c_curvature_1 is not None:
    out.append(_mean(phi.second(gamma) ** 2) - targets.c_curvature_1)
  return np.asarray(out)


def _free_parameters(name: str, targets: _Targets) -> tuple[dict, tuple[str, ...], _Targets]:
  """Which parameters the root finder moves, as dks chooses them per activation."""
  if name == "relu":  # one degree of freedom fewer: beta fixed at +-1, Q'(1) not imposed
    shift = 1.0 if targets.c_slope_1 < _RELU_MAX_C_SLOPE else -1.0
    return {"input_shift": shift}, ("input_scale",), dataclasses.replace(targets, q_slope=None)
  if name == "leaky_relu":
    return {}, ("negative_slope", "input_shift"), targets
  if targets.c_value_0 is not None:
    return {}, ("input_scale", "input_shift"), targets
  return {}, ("input_scale", "input_shift", "output_shift"), targets


def _starting_points(free: tuple[str, ...]) -> list[tuple[float, ...]]:
  points = list(itertools.product(*(_ALWAYS_TRY[k] for k in free)))
  rng = np.random.RandomState(_SEED)  # dks seeds NumPy's global generator alike
  for _ in range(_NUM_TRIES - len(points)):
    points.append(tuple(rng.uniform(*_SAMPLE_RANGE[k]) for k in free))
  return points


def _solve_local(name: str, targets: _Targets) -> tuple[dict, tuple[float, ...]]:
  constants, free, targets = _free_parameters(name, targets)
  fun = functools.partial(_residuals, name, constants, free, targets)
  with np.errstate(all="ignore"):  # the root finder may step where Q(1) is 0 or inf
    for start in _starting_points(free):
      sol = optimize.root(fun, np.asarray(start), method="hybr", jac=False)
      if sol.success:
        params, _ = _complete(name, constants, free, sol.x, targets.c_value_0)
        gain = params.get("input_scale", 1.0) * params["output_scale"]
        if not (targets.reject_large_gain and gain >= 2.0):
          break
  # As dks: a last solution that succeeded but was rejected is still returned.
  if not sol.success:
    raise ValueError(
      f"no transform of activation {name!r} meets the local conditions {targets} from any of "
      f"dks's {_NUM_TRIES} starting points; try a less extreme net-level target"
    )
  return params, tuple(float(v) for v in start)


# --------------------------------------------------------------------------------------------------
# From the net-level target to the local one (dks's _solve_increasing).


def _solve_increasing(fn, target, x, lo, hi, field, tol=1e-8, max_eval=100) -> float:
  """x with |fn(x) - target| < tol for an increasing fn, by dks's bisection (doubling while hi
  is infinite)."""
  for _ in range(max_eval):
    value = fn(x)
    if abs(value - target) < tol:
      return x
    if value > target:
      hi, x = x, 0.5 * (x + lo)
    elif value < target:
      lo = x
      x = x * 2 if math.isinf(hi) else 0.5 * (x + hi)
  raise ValueError(
    f"{field} is out of reach for this net: no local value meets it in {max_eval} bisection "
    "steps (a shallow net cannot be made that nonlinear); choose a smaller target or a deeper net"
  )


# --------------------------------------------------------------------------------------------------
# The nets' maximal subnetworks.


@dataclasses.dataclass(frozen=True)
class Chain:
  """`layers` nonlinear layers in a row (a net without shortcuts): M(x, r) = r^L(x)."""

  layers: int

  def __call__(self, x, r_fn):
    for _ in range(self.layers):
      x = r_fn(x)
    return x


@dataclasses.dataclass(frozen=True)
class ResidualNet:
  """Stages of residual blocks whose sums are normalised (dks's modified ResNet, its
  subnet_max_func): per block x <- w^2 * skip(x) + (1 - w^2) * r^branch_layers(x), then r after
  the sum in a post-activation net; `stem_layers` acts before the blocks, `head_layers` after;
  `activated_shortcuts[s]`: stage s's first shortcut reads r(x) (a pre-activation projection).
  The result is the larger of the net's and a lone branch's (dks: r^branch_layers(x))."""

  stage_sizes: tuple[int, ...]
  branch_layers: int
  shortcut_weight: float
  preact: bool
  activated_shortcuts: tuple[bool, ...]
  stem_layers: int = 0
  head_layers: int = 0

  def __call__(self, x, r_fn):
    branch = Chain(self.branch_layers)
    lone_branch = branch(x, r_fn)
    x = Chain(self.stem_layers)(x, r_fn)
    for s, n in enumerate(self.stage_sizes):
      for j in range(n):
        res_x = branch(x, r_fn)
        shortcut_x = r_fn(x) if j == 0 and self.activated_shortcuts[s] else x
        x = self.shortcut_weight**2 * shortcut_x + (1.0 - self.shortcut_weight**2) * res_x
        if not self.preact:
          x = r_fn(x)
    x = Chain(self.head_layers)(x, r_fn)
    return max(x, lone_branch)


def subnet_for(
  depth: int,
  *,
  block: str = "basic",
  preact: bool = False,
  residual: bool = True,
  shortcut: str = "A",
  shortcut_weight: float = 0.0,
) -> Chain | ResidualNet:
  """The maximal-subnetwork structure of our CIFAR net of `depth` (cifar_plain: residual=False;
  cifar_resnet; cifar_preact: preact=True), its sums weighted w = `shortcut_weight` in [0, 1)
  (w = 0: the branches alone, i.e. the plain twin)."""
  if block not in ("basic", "bottleneck"):
    raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
  per_block = 2 if block == "basic" else 3
  n, rest = divmod(depth - 2, 3 * per_block)
  if rest or n < 1:
    raise ValueError(f"depth {depth} is not {3 * per_block}n+2 for a CIFAR net of {block} blocks")
  if not 0.0 <= shortcut_weight < 1.0:
    raise ValueError(f"shortcut_weight must be in [0, 1), got {shortcut_weight}")
  if not residual:
    return Chain(depth - 1)
  projects = preact and shortcut == "B"
  return ResidualNet(
    stage_sizes=(n,) * 3,
    branch_layers=per_block if preact else per_block - 1,
    shortcut_weight=shortcut_weight,
    preact=preact,
    # A shape change: every later stage's first block; stage 0's too with bottlenecks (16 -> 64).
    activated_shortcuts=(projects and block == "bottleneck", projects, projects),
    stem_layers=0 if preact else 1,
    head_layers=1 if preact else 0,
  )


# --------------------------------------------------------------------------------------------------
# The solver.


@dataclasses.dataclass(frozen=True)
class Solution:
  """A solved transform; `negative_slope` where the method sets leaky ReLU's slope (else None);
  `local_target` the local C'(1) (DKS) or C''(1) (TAT, smooth) the bisection chose; `start` the
  root finder's starting point that gave it (dks's order: its fixed points, then random ones),
  which decides the solution where the conditions have several (e.g. (alpha, beta) and
  (-alpha, -beta) always give the same maps)."""

  transform: activations.Transform
  negative_slope: float | None = None
  local_target: float | None = None
  start: tuple[float, ...] | None = None

  @property
  def params(self) -> dict[str, float]:
    """The activation's keyword parameters: activations.make(name, s.transform, **s.params)."""
    return {} if self.negative_slope is None else {"negative_slope": self.negative_slope}


def _transform(params: dict) -> activations.Transform:
  return activations.Transform(
    float(params.get("input_scale", 1.0)),
    float(params.get("input_shift", 0.0)),
    float(params["output_scale"]),
    float(params.get("output_shift", 0.0)),
  )


def local_target(method: str, subnet: Callable, *, zeta: float = 1.5, tau: float = 0.3) -> float:
  """The local C'(1) (method 'dks') or C''(1) ('tat', smooth activations) that brings the net's
  maximal C_f'(1) to zeta (C_f''(1) to tau): dks's bisection on the maximal slope function
  subnet(1, s * y) (curvature function subnet(0, k + y))."""
  if method == "dks":
    if zeta <= 1.0:
      raise ValueError(f"dks_zeta must be greater than 1, got {zeta}")
    slope = lambda s: subnet(1.0, lambda y: s * y)  # noqa: E731
    return _solve_increasing(slope, zeta, 1.1, 1.0, math.inf, f"dks_zeta={zeta}")
  if method != "tat":
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if tau <= 0.0:
    raise ValueError(f"tat_tau must be greater than 0, got {tau}")
  curvature = lambda k: subnet(0.0, lambda y: k + y)  # noqa: E731
  return _solve_increasing(curvature, tau, 0.1, 0.0, math.inf, f"tat_tau={tau}")


def _solve_dks(name, subnet, zeta, local_q_slope) -> Solution:
  local = local_target("dks", subnet, zeta=zeta)
  params, start = _solve_local(name, _Targets(local_q_slope, 0.0, local, None))
  return Solution(_transform(params), params.get("negative_slope"), local, start)


def _solve_tat_leaky(subnet, eta) -> Solution:
  if not 0.0 <= eta <= 1.0:
    raise ValueError(f"tat_eta must be in [0, 1], got {eta}")
  max_c0 = lambda s: subnet(0.0, lambda c: leaky_relu_c_map(c, s))  # noqa: E731
  slope = _solve_increasing(lambda s: 1.0 - max_c0(s), 1.0 - eta, 0.5, 0.0, 1.0, f"tat_eta={eta}")
  gain = float(np.sqrt(2.0 / (1.0 + slope**2)))
  return Solution(activations.Transform(output_scale=gain), float(slope))


def _solve_tat_smooth(name, subnet, tau) -> Solution:
  if name not in SECOND_DERIVATIVES:
    raise ValueError(
      f"transform='tat' needs the second derivative of activation {name!r}, which "
      "shaping.SECOND_DERIVATIVES lacks; add it there"
    )
  local = local_target("tat", subnet, tau=tau)
  params, start = _solve_local(name, _Targets(1.0, None, 1.0, local, reject_large_gain=True))
  return Solution(_transform(params), None, local, start)


@functools.lru_cache(maxsize=256)
def solve(
  activation: str,
  method: str,
  subnet: Callable,
  *,
  zeta: float = 1.5,
  eta: float = 0.9,
  tau: float = 0.3,
  local_q_slope: float = 1.0,
) -> Solution:
  """The DKS or TAT transform of `activation` for a net whose maximal subnetwork is `subnet`
  (`subnet(x, r_fn)`, dks's subnet_max_func; e.g. `subnet_for(56)`), with DKS's zeta (C_f'(1))
  and local Q'(1), TAT's eta (C_f(0), leaky ReLU) or tau (C_f''(1), smooth activations)."""
  activations.get(activation)  # refuses an unknown name
  if method == "dks":
    return _solve_dks(activation, subnet, zeta, local_q_slope)
  if method != "tat":
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if activation == "leaky_relu":
    return _solve_tat_leaky(subnet, eta)
  if not activations.get(activation).smooth:
    raise ValueError(
      f"transform='tat' does not apply to activation {activation!r} (its derivative jumps, so "
      "its C map's curvature at 1 is infinite); use leaky_relu or a smooth activation"
    )
  return _solve_tat_smooth(activation, subnet, tau)
