"""Mean-field signal propagation through a deep vanilla net at initialisation.

Schoenholz et al. 2017 ("Deep information propagation"; after Poole et al. 2016) and, for CNNs,
Xiao et al. 2018 ("Dynamical isometry and a mean field theory of CNNs"): with weights of variance
sigma_w2 / fan_in and biases of variance sigma_b2, a wide net's pre-activations are Gaussian, and
their length q and the correlation c of two inputs follow deterministic maps layer after layer
(the same maps at every spatial location of a CNN):

  length map       q' = sigma_w2 E[phi(u)^2] + sigma_b2,                u ~ N(0, q)
  correlation map  c' = (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q',  corr(u1, u2) = c
  chi_1 = sigma_w2 E[phi'(u)^2] at q*: the slope of the correlation map at c = 1 and the
          per-layer mean squared singular value of the input-output Jacobian (a depth-L net's
          is chi_1^L); ordered phase chi_1 < 1 (c* = 1), chaotic chi_1 > 1
  chi_c = sigma_w2 E[phi'(u1) phi'(u2)] at (q*, c*), and the depth scales
  xi_c = -1 / ln chi_c,  xi_q = -1 / ln(dq'/dq at q*) = -1 / ln(chi_1 + sigma_w2 E[phi'' phi]).

xi_c diverges on the critical line chi_1 = 1; nets train where depth <~ 6 xi_c (Schoenholz et al.).

API (activation: a name of `activations.ACTIVATIONS`; its parameters, e.g. negative_slope, as
keywords; every function refuses an unknown name or parameter, sigma_w2 <= 0 and sigma_b2 < 0):
  gaussian_mean(f, q), bivariate_mean(f, g, q, c)      the Gaussian expectations below
  length_map(q, activation, sigma_w2, sigma_b2), correlation_map(c, ..., q=None: at q*)
  q_star(...), chi_1(...)                                the length's fixed point, chi_1 there
  propagation(...) -> Propagation(q_star, c_star, chi_1, chi_c, xi_q, xi_c)
  critical_sigma_w2(activation, sigma_b2), critical_line(activation, sigma_b2s)

Expectations: ReLU and leaky ReLU by their closed forms (the arc-cosine kernel of degree 1 and 0,
Cho & Saul 2009). Every other activation by Gauss-Legendre quadrature split where the integrand
may have a kink (at u = 0, where ELU and SELU have theirs): two half-lines for one variable, and
in polar coordinates for two, arcs between the angles where u1 = 0 or u2 = 0 times a radial rule;
|z| < 12 holds all but ~1e-32 of the mass. Gauss-Hermite (numpy.polynomial.hermite_e) was measured
and is not used: at q = 10 its 200-node rule errs by 1e-5 on tanh^2 and at q = 100 by 1e-2 (the
integrand sharpens as sqrt(q) z), and by 1e-4 on SELU's kink. The split Legendre rules are within
1e-12 (relative) of erf's and ReLU's closed forms for q from 1e-3 to 1e3 in one variable, 1e-10
for q up to 100 in two (2e-7 at q = 1000). A kink elsewhere than at 0 would converge slower.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from typing import Callable

import numpy as np

from cnn_depth import lazy_import
from cnn_depth.models import activations

optimize = lazy_import("scipy.optimize")

_Z = 12.0  # half-width of the integration range in standard deviations
_N_LINE, _N_RADIUS, _N_ARC = 200, 128, 64  # Legendre nodes: per half-line, radius, arc
_Q_TINY, _Q_HUGE = 1e-14, 1e12  # below: q* = 0; above: the length grows without bound
_CLOSED_FORMS = ("relu", "leaky_relu")  # phi(x) = s x + (1 - s) relu(x): arc-cosine kernels


@functools.cache
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
  return np.polynomial.legendre.leggauss(n)


def _nodes(a: float, b: float, n: int) -> tuple[np.ndarray, np.ndarray]:
  x, w = _legendre(n)
  return a + (x + 1) * (b - a) / 2, w * (b - a) / 2


@functools.cache
def _line() -> tuple[np.ndarray, np.ndarray]:
  """Nodes and weights of E[f(z)], z ~ N(0, 1), split at 0."""
  z, w = _nodes(0.0, _Z, _N_LINE)
  z, w = np.concatenate([-z[::-1], z]), np.concatenate([w[::-1], w])
  return z, w * np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)


def gaussian_mean(f: Callable, q: float) -> float:
  """E[f(u)], u ~ N(0, q); for q = inf the limit (f(+inf) + f(-inf)) / 2 of a bounded f (read at
  +-1e100: some activations' NumPy forms give inf * 0 at infinity)."""
  if q == 0:
    return float(f(np.zeros(1))[0])
  if math.isinf(q):
    return float(np.mean(f(np.array([1e100, -1e100]))))
  z, w = _line()
  return float(w @ f(math.sqrt(q) * z))


def bivariate_mean(f: Callable, g: Callable, q: float, c: float) -> float:
  """E[f(u1) g(u2)] for (u1, u2) ~ N(0, q [[1, c], [c, 1]]).

  In polar coordinates z = r (cos t, sin t) with u1 = sqrt(q) r cos t and u2 = sqrt(q) r
  cos(t - theta), theta = arccos c, so each arc between the four angles where u1 or u2 is 0 is
  smooth for activations whose only kink is at 0.
  """
  if q == 0:
    return float(f(np.zeros(1))[0] * g(np.zeros(1))[0])
  if abs(c) == 1:
    return gaussian_mean(lambda u: f(u) * g(c * u), q)
  theta = math.acos(c)
  cuts = np.sort(
    np.mod([0.5 * np.pi, 1.5 * np.pi, theta + 0.5 * np.pi, theta + 1.5 * np.pi], 2 * np.pi)
  )
  arcs = [_nodes(a, b, _N_ARC) for a, b in zip(cuts, np.append(cuts[1:], cuts[0] + 2 * np.pi))]
  t = np.concatenate([a[0] for a in arcs])
  wt = np.concatenate([a[1] for a in arcs])
  r, wr = _nodes(0.0, _Z, _N_RADIUS)
  sr = math.sqrt(q) * r[:, None]
  weights = (wr * r * np.exp(-(r**2) / 2))[:, None] * wt / (2 * math.pi)
  return float(np.sum(weights * f(sr * np.cos(t)) * g(sr * np.cos(t - theta))))


def _leaky_moment(q: float, c: float, slope: float, derivative: bool) -> float:
  """E[phi(u1) phi(u2)] (or of phi') for phi(x) = slope x + (1 - slope) relu(x) in closed form:
  the arc-cosine kernels (Cho & Saul 2009, degree 1 and 0) plus the linear part's cross terms."""
  theta = math.acos(min(1.0, max(-1.0, c)))
  if derivative:
    return slope + (1 - slope) ** 2 * (math.pi - theta) / (2 * math.pi)
  arccos1 = math.sqrt(max(0.0, 1 - c * c)) + (math.pi - theta) * c
  return q * (slope * c + (1 - slope) ** 2 * arccos1 / (2 * math.pi))


@dataclasses.dataclass(frozen=True)
class _Layer:
  """One layer's activation and variances: what every map reads."""

  phi: Callable
  dphi: Callable
  slope: float | None  # the leaky family's negative slope (closed forms), else None
  sigma_w2: float
  sigma_b2: float

  def moment(self, q: float, c: float = 1.0, derivative: bool = False) -> float:
    """E[g(u1) g(u2)], g = phi (or phi'), (u1, u2) ~ N(0, q [[1, c], [c, 1]])."""
    if self.slope is not None:
      return _leaky_moment(q, c, self.slope, derivative)
    g = self.dphi if derivative else self.phi
    return bivariate_mean(g, g, q, c)

  def length(self, q: float) -> float:
    return self.sigma_w2 * self.moment(q) + self.sigma_b2

  def length_slope(self, q: float) -> float:
    """dq'/dq = sigma_w2 E[u phi(u) phi'(u)] / q (Stein: chi_1 + sigma_w2 E[phi'' phi])."""
    if self.slope is not None:
      return self.sigma_w2 * (1 + self.slope**2) / 2
    if q == 0:  # q* = 0 needs phi(0) = 0, so the phi'' phi term vanishes
      return self.sigma_w2 * float(self.dphi(np.zeros(1))[0]) ** 2
    return self.sigma_w2 * gaussian_mean(lambda u: u * self.phi(u) * self.dphi(u), q) / q

  def correlation(self, c: float, q: float) -> float:
    den = self.length(q)
    if den > 0:
      return (self.sigma_w2 * self.moment(q, c) + self.sigma_b2) / den
    # q = 0 without bias: the small-signal limit (homogeneous ReLUs: their map at any q)
    return self.correlation(c, 1.0) if self.slope is not None else c

  def chi(self, q: float, c: float = 1.0) -> float:
    if math.isinf(q) and self.slope is None:
      return self.sigma_w2 * gaussian_mean(lambda u: self.dphi(u) ** 2, q)
    return self.sigma_w2 * self.moment(q, c, derivative=True)


def _layer(activation: str, sigma_w2: float, sigma_b2: float, params: dict) -> _Layer:
  act = activations.get(activation)
  defaults = dict(act.params)
  for key in params:
    if key not in defaults:
      known = ", ".join(defaults) or "none"
      raise ValueError(f"{activation} takes no parameter {key!r} (its parameters: {known})")
  for name, value, low in (("sigma_w2", sigma_w2, "> 0"), ("sigma_b2", sigma_b2, ">= 0")):
    ok = isinstance(value, numbers.Real) and math.isfinite(value)
    if not ok or (value <= 0 if name == "sigma_w2" else value < 0):
      raise ValueError(f"{name}={value!r} cannot be used: give a finite number {low}")
  values = {**defaults, **params}
  slope = None
  if activation in _CLOSED_FORMS:
    slope = float(values.get("negative_slope", 0.0))
  phi = functools.partial(act.numpy, **values)
  dphi = functools.partial(act.derivative, **values)
  return _Layer(phi, dphi, slope, float(sigma_w2), float(sigma_b2))


def length_map(
  q: float, activation: str, sigma_w2: float, sigma_b2: float = 0.0, **params
) -> float:
  """q' = sigma_w2 E[phi(u)^2] + sigma_b2, u ~ N(0, q)."""
  if not q >= 0:
    raise ValueError(f"q={q!r} cannot be used: a length is a number >= 0")
  return _layer(activation, sigma_w2, sigma_b2, params).length(q)


def _q_star(layer: _Layer, q0: float) -> float:
  """The fixed point that iterating the (increasing) length map from q0 reaches, by bracketing
  and Brent's method (iteration itself is slow near criticality); inf where the length grows
  without bound, 0 where it decays to 0 (below 1e-14)."""

  if not (isinstance(q0, numbers.Real) and 0 < q0 < math.inf):
    raise ValueError(f"q0={q0!r} cannot be used: give the starting length, a finite number > 0")

  def gap(q):
    return layer.length(q) - q

  lo = hi = q0
  if gap(q0) == 0:
    return q0  # a line of fixed points (ReLU at sigma_w2 = 2, sigma_b2 = 0): the length stays
  if gap(q0) > 0:
    while gap(hi) > 0:
      lo, hi = hi, 2 * hi
      if hi > _Q_HUGE:
        return math.inf
  else:
    while gap(lo) < 0:
      lo, hi = lo / 2, lo
      if lo < _Q_TINY:
        return 0.0
  return optimize.brentq(gap, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps)


def q_star(activation: str, sigma_w2: float, sigma_b2: float = 0.0, *, q0=1.0, **params) -> float:
  """The length map's fixed point reached from q0 (see `propagation`)."""
  return _q_star(_layer(activation, sigma_w2, sigma_b2, params), q0)


def correlation_map(
  c: float, activation: str, sigma_w2: float, sigma_b2: float = 0.0, *, q=None, **params
) -> float:
  """c' = (sigma_w2 E[phi(u1) phi(u2)] + sigma_b2) / q'(q) for two inputs of length q (q*
  when None); q'(q*) = q*, so at q* it is Schoenholz et al.'s map exactly."""
  if not -1 <= c <= 1:
    raise ValueError(f"c={c!r} cannot be used: a correlation lies in [-1, 1]")
  layer = _layer(activation, sigma_w2, sigma_b2, params)
  return layer.correlation(c, _q_star(layer, 1.0) if q is None else q)


def chi_1(activation: str, sigma_w2: float, sigma_b2: float = 0.0, **params) -> float:
  """chi_1 = sigma_w2 E[phi'(u)^2], u ~ N(0, q*)."""
  layer = _layer(activation, sigma_w2, sigma_b2, params)
  return layer.chi(_q_star(layer, 1.0))


def _c_star(layer: _Layer, q: float, chi1: float) -> float:
  """1 in the ordered phase; else the stable fixed point below 1 (Brent between -1, where
  c' - c >= 0, and the first 1 - 10^-k where c' - c < 0)."""
  if chi1 <= 1:
    return 1.0

  def gap(c):
    return layer.correlation(c, q) - c

  hi = next((1 - 10.0**-k for k in range(1, 13) if gap(1 - 10.0**-k) < 0), None)
  if hi is None:
    return 1.0  # chi_1 so close to 1 that c' - c cannot be told from 0 below 1 - 1e-12
  for lo in np.linspace(hi, -1.0, 41)[1:]:  # the largest root below 1: where iteration goes
    at_lo = gap(lo)
    if at_lo >= 0:
      return optimize.brentq(gap, lo, hi, xtol=1e-14) if at_lo > 0 else float(lo)
    hi = lo
  raise AssertionError("c' - c < 0 on [-1, 1) contradicts c' >= -1")


def _depth(slope: float) -> float:
  """-1 / ln(slope): the layers over which a deviation decays by e; inf where it does not."""
  if slope >= 1:
    return math.inf
  return 0.0 if slope <= 0 else -1.0 / math.log(slope)


@dataclasses.dataclass(frozen=True)
class Propagation:
  """The fixed points, their slopes and the depth scales of one (activation, sigma_w2, sigma_b2).

  c_star, chi_c and xi_c are nan where q* is infinite (no stationary length); at q* = 0 (an odd
  activation without bias in the ordered phase) chi_c = chi_1 = sigma_w2 phi'(0)^2 as the
  formula gives (the correlation map itself is the identity there to first order).
  """

  q_star: float
  c_star: float
  chi_1: float
  chi_c: float
  xi_q: float
  xi_c: float

  @property
  def trainable_depth(self) -> float:
    """6 xi_c: Schoenholz et al.'s empirical bound on the depth a net trains at."""
    return 6 * self.xi_c

  def jacobian_msv(self, depth: int) -> float:
    """The mean squared singular value of a depth-layer net's input-output Jacobian at q*:
    chi_1^depth (Pennington et al. 2017; Xiao et al. 2018 for CNNs)."""
    return self.chi_1**depth


def propagation(
  activation: str, sigma_w2: float, sigma_b2: float = 0.0, *, q0=1.0, **params
) -> Propagation:
  """q*, c*, chi_1, chi_c, xi_q and xi_c (Schoenholz et al. 2017), q* reached from q0."""
  layer = _layer(activation, sigma_w2, sigma_b2, params)
  q = _q_star(layer, q0)
  chi1 = layer.chi(q)
  if math.isinf(q):
    return Propagation(q, math.nan, chi1, math.nan, math.inf, math.nan)
  c = _c_star(layer, q, chi1)
  chic = chi1 if c == 1 else layer.chi(q, c)
  return Propagation(q, c, chi1, chic, _depth(layer.length_slope(q)), _depth(chic))


def critical_sigma_w2(activation: str, sigma_b2: float = 0.0, **params) -> float:
  """The sigma_w2 where chi_1 = 1 for this sigma_b2 (the order-to-chaos transition).

  ReLU and leaky ReLU: 2 / (1 + s^2) for any sigma_b2 (chi_1 does not depend on q*; for
  sigma_b2 > 0 the length diverges there). Others: the first crossing of a scan over
  sigma_w2 = 2^-4 ... 2^10, refined by Brent's method; where q* = 0 below the crossing (phi(0)
  = 0 and no bias: tanh, erf) chi_1 = sigma_w2 phi'(0)^2 there, so the crossing is
  1 / phi'(0)^2 exactly (beyond it chi_1 - 1 rises only quadratically, which Brent's method
  would resolve to ~1e-7 only).
  """
  layer = _layer(activation, 1.0, sigma_b2, params)
  if layer.slope is not None:
    return 2.0 / (1 + layer.slope**2)

  def excess(sigma_w2):
    at = dataclasses.replace(layer, sigma_w2=sigma_w2)
    return at.chi(_q_star(at, 1.0)) - 1

  lo, at_lo = 2.0**-4, excess(2.0**-4)
  for hi in 2.0 ** np.arange(-3, 11):
    at_hi = excess(hi)
    if at_lo <= 0 < at_hi:
      edge = _trivial_branch_end(layer, lo, hi)
      if edge is not None:
        return edge
      return optimize.brentq(excess, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps)
    lo, at_lo = hi, at_hi
  raise ValueError(
    f"{activation} has no critical sigma_w2 in [1/16, 1024] at sigma_b2={sigma_b2}: "
    "chi_1 - 1 keeps one sign there"
  )


def _trivial_branch_end(layer: _Layer, lo: float, hi: float) -> float | None:
  """1 / phi'(0)^2 where q* = 0 holds just below it inside [lo, hi], else None."""
  zero = np.zeros(1)
  if layer.sigma_b2 > 0 or layer.phi(zero)[0] != 0 or layer.dphi(zero)[0] == 0:
    return None
  edge = 1.0 / float(layer.dphi(zero)[0]) ** 2
  below = dataclasses.replace(layer, sigma_w2=edge * (1 - 1e-6))
  return edge if lo <= edge <= hi and _q_star(below, 1.0) == 0 else None


def critical_line(activation: str, sigma_b2s, **params) -> np.ndarray:
  """critical_sigma_w2 over a grid of sigma_b2: the phase boundary of issue #25's diagram."""
  return np.array([critical_sigma_w2(activation, float(b), **params) for b in sigma_b2s])
