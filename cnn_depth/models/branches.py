"""How a residual block's branch meets its skip: one registry entry per rule, the fixes for depth
that act where the two paths add (read by blocks.py and resnet.py).

A residual block of the CIFAR families computes

    out = skip_w * skip + gate * branch_w * m * f(input_w * x)      (post-activation: act(out))

where f is the block's branch, `gate` the per-block gate of gating.py (lesions, stochastic depth),
m a learnable scalar where the rule has one, and skip_w, branch_w, input_w per-block constants
(`coefficients`): numbers fixed at build time, passed to the blocks as scanned arrays so that a
stage of any depth stays one scanned block. The rules:

* 'identity': skip + gate * f(x), He et al. 2016 (the default).
* 'fixup': Zhang, Dauphin & Ma 2019 ("Fixup initialization"), as its CIFAR reference
  (github.com/hongyi-zhang/Fixup, cifar/models/fixup_resnet_cifar.py) builds it: a scalar bias
  before each convolution and activation of a branch and before the classifier, a scalar
  multiplier `scale` (init 1) and a scalar bias at the end of each branch, the branch's last
  convolution and the classifier zero-initialised, its other convolutions initialised as the net's
  `init` (He, fan-out, in the reference) times L^(-1/(2m-2)) (L blocks, m convolutions per
  branch). Post-activation nets without normalisation only.
* 'skipinit' (= 'rezero'): x + alpha * f(x) with a learnable scalar `alpha` per block, init 0 (De &
  Smith 2020, "Batch normalization biases residual blocks towards the identity function";
  Bachlechner et al. 2020, "ReZero is all you need").
* 'depth_mup': skip + f(x) / sqrt(L), fixed (Yang et al. 2023, "Tensor Programs VI"; Bordelon et
  al. 2023).
* 'nf': h + alpha * f(h / beta_i) (Brock, De & Smith 2021, "Characterizing signal propagation to
  close the performance gap in unnormalized ResNets"), beta_i = sqrt(Var(h_i)) from the analytic
  schedule Var(h_{i+1}) = Var(h_i) + alpha^2, reset to 1 + alpha^2 after each block that changes
  shape (whose projection shortcut reads h / beta_i too), with the activation scaled by its gamma
  (`nf_gamma`). As in the reference (deepmind-research nfnets/nf_resnet.py, NFResBlock) the input
  scale multiplies the block's activated input, activation(h) / beta_i. The reference also
  multiplies each branch by a learnable `skip_gain` initialised at 0 (SkipInit on top); ours has no
  such gain: with it every block is the identity at initialisation and the beta_i schedule no
  longer describes the signal that the paper derives it from (its Figure 2). Pre-activation nets
  with projection shortcuts, without BN.
* 'normalized': w * skip + sqrt(1 - w^2) * f(x), the normalised sums of Deep Kernel Shaping and
  TAT (Martens et al. 2021; Zhang, Botev & Martens 2022; dks/examples/haiku/modified_resnet.py),
  w = `shortcut_weight` in (0, 1), projection shortcuts.

Adding a rule is one `register(Branch(...))` call.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

from cnn_depth.models import activations


@dataclasses.dataclass(frozen=True)
class Structure:
  """What a branch rule needs to know of the net it is part of."""

  num_blocks: int
  shape_changing: tuple[bool, ...]  # per block: changes the map size or the channel count
  layers_per_branch: int  # m: convolutions on a branch (basic 2, bottleneck 3)
  residual: bool = True
  preact: bool = False
  norm: str = "bn"
  shortcut: str = "A"
  nf_alpha: float = 0.2
  shortcut_weight: float = 0.0


@dataclasses.dataclass(frozen=True)
class Branch:
  """One rule. `multiplier` is a learnable scalar on each branch, (parameter name, initial value);
  `fixup` adds Fixup's scalar biases and initialisation; `coefficients(structure)` gives the
  per-block constants ({'skip', 'branch', 'input'} -> (num_blocks,) arrays; None: none);
  `refuse(structure)` says in one sentence why the rule has no meaning for a net (None: it has)."""

  name: str
  description: str
  residual: bool = True  # needs a residual net: refused on the plain twins
  multiplier: tuple[str, float] | None = None
  fixup: bool = False
  coefficients: Callable[[Structure], dict[str, np.ndarray]] | None = None
  refuse: Callable[[Structure], str | None] | None = None


BRANCHES: dict[str, Branch] = {}


def register(branch: Branch, *, replace: bool = False) -> Branch:
  """Adds `branch` to the registry (a second one of the same name needs `replace=True`)."""
  if branch.name in BRANCHES and not replace:
    raise ValueError(f"branch rule {branch.name!r} is already registered")
  BRANCHES[branch.name] = branch
  return branch


def get(name: str) -> Branch:
  if name not in BRANCHES:
    raise ValueError(
      f"branch={name!r} is not a branch rule; choose one of {', '.join(map(repr, BRANCHES))}"
    )
  return BRANCHES[name]


def check(name: str, structure: Structure) -> Branch:
  """The rule `name`, or a ValueError saying in one sentence why it has no meaning for the net."""
  branch = get(name)
  if branch.residual and not structure.residual:
    raise ValueError(
      f"branch={name!r} has no meaning on a plain net (it acts where a residual branch meets its "
      "skip): use a residual family (cifar_resnet, cifar_preact) or branch='identity'"
    )
  reason = branch.refuse(structure) if branch.refuse else None
  if reason:
    raise ValueError(f"branch={name!r} {reason}")
  return branch


def coefficients(branch: Branch, structure: Structure) -> dict[str, np.ndarray] | None:
  """The rule's per-block constants as float32 arrays in block order, or None."""
  if branch.coefficients is None:
    return None
  return {k: np.asarray(v, np.float32) for k, v in branch.coefficients(structure).items()}


# --------------------------------------------------------------------------------------------------
# The rules' numbers.


def fixup_scale(num_blocks: int, layers_per_branch: int) -> float:
  """L^(-1/(2m-2)): Fixup's factor on a branch's convolutions but the last (Zhang et al. 2019,
  rule 2; L^(-1/2) for basic blocks, L^(-1/4) for bottlenecks)."""
  return float(num_blocks) ** (-1.0 / (2 * layers_per_branch - 2))


def nf_betas(shape_changing, alpha: float) -> np.ndarray:
  """beta_i = sqrt(expected Var(h_i)) for each block's input (Brock, De & Smith 2021, section 4):
  Var(h_0) = 1, Var(h_{i+1}) = Var(h_i) + alpha^2, and 1 + alpha^2 after a block that changes
  shape. As nfnets/nf_resnet.py's `expected_std` (which resets at each stage's first block, the one
  with the projection there)."""
  var, betas = 1.0, []
  for changes in shape_changing:
    betas.append(math.sqrt(var))
    var = (1.0 if changes else var) + alpha**2
  return np.asarray(betas)


# NFNets' gamma per activation, measured by its authors so that Var(gamma * phi(z)) = 1 for
# z ~ N(0, 1) (deepmind-research nfnets/base.py, `nonlinearities`); leaky ReLU's is for slope 0.01.
NF_GAMMA = {
  "relu": 1.7139588594436646,
  "leaky_relu": 1.70590341091156,
  "gelu": 1.7015043497085571,
  "elu": 1.2716004848480225,
  "selu": 1.0008515119552612,
  "sigmoid": 4.803835391998291,
  "swish": 1.7881293296813965,
  "softplus": 1.9203323125839233,
  "tanh": 1.5939117670059204,
}


def nf_gamma(activation: str, negative_slope: float = 0.01) -> float:
  """gamma with Var(gamma * phi(z)) = 1, z ~ N(0, 1): NFNets' constant where it has one (what its
  reference computes with), else the analytic value (leaky ReLU's closed form; Gauss-Hermite
  quadrature of order 200 for smooth activations)."""
  if activation in NF_GAMMA and not (activation == "leaky_relu" and negative_slope != 0.01):
    return NF_GAMMA[activation]
  if activation == "leaky_relu":  # E[phi^2] = (1 + s^2) / 2, E[phi] = (1 - s) / sqrt(2 pi)
    s = negative_slope
    return 1.0 / math.sqrt((1 + s * s) / 2 - (1 - s) ** 2 / (2 * math.pi))
  z, w = np.polynomial.hermite_e.hermegauss(200)
  w = w / w.sum()
  phi = activations.get(activation).numpy(z)
  return float(1.0 / np.sqrt(w @ phi**2 - (w @ phi) ** 2))


# --------------------------------------------------------------------------------------------------
# The entries.


def _fixup_refuse(s: Structure) -> str | None:
  if s.norm != "none":
    return (
      f"replaces normalisation (Zhang et al. 2019) and cannot be used with norm={s.norm!r}: set "
      "norm='none'"
    )
  if s.preact:
    return (
      "is defined for post-activation ResNets (its reference is Zhang et al.'s CIFAR ResNet): use "
      "family cifar_resnet"
    )
  return None


def _nf_refuse(s: Structure) -> str | None:
  if s.norm == "bn":
    return "is the normaliser-free ResNet and cannot be used with norm='bn': set norm='ws'"
  if not s.preact:
    return (
      "needs pre-activation blocks, whose skip path carries the signal beta_i tracks (Brock et al. "
      "2021): use family cifar_preact"
    )
  if s.shortcut != "B":
    return _NEEDS_PROJECTION
  return None


def _normalized_refuse(s: Structure) -> str | None:
  if not 0.0 < s.shortcut_weight < 1.0:
    return (
      f"needs shortcut_weight in (0, 1), got {s.shortcut_weight!r} (0 removes the skip: the plain "
      "net); set --config.model.shortcut_weight, e.g. 0.8"
    )
  if s.shortcut != "B":
    return _NEEDS_PROJECTION
  return None


_NEEDS_PROJECTION = (
  "needs projection shortcuts where a block changes shape (option A's zero channels have no "
  "variance to keep): set shortcut='B'"
)


register(Branch("identity", "skip + f(x) (He et al. 2016)", residual=False))
register(
  Branch(
    "fixup",
    "scalar biases and multiplier, zero-init last layers, L^(-1/(2m-2)) (Zhang et al. 2019)",
    multiplier=("scale", 1.0),
    fixup=True,
    refuse=_fixup_refuse,
  )
)
for _name in ("skipinit", "rezero"):
  register(
    Branch(
      _name,
      "x + alpha f(x), alpha init 0 (De & Smith 2020; Bachlechner et al. 2020)",
      multiplier=("alpha", 0.0),
    )
  )
register(
  Branch(
    "depth_mup",
    "skip + f(x) / sqrt(L) (Yang et al. 2023; Bordelon et al. 2023)",
    coefficients=lambda s: {"branch": np.full(s.num_blocks, 1.0 / math.sqrt(s.num_blocks))},
  )
)
register(
  Branch(
    "nf",
    "h + alpha f(h / beta_i), scaled WS, gamma-scaled activation (Brock, De & Smith 2021)",
    coefficients=lambda s: {
      "input": 1.0 / nf_betas(s.shape_changing, s.nf_alpha),
      "branch": np.full(s.num_blocks, s.nf_alpha),
    },
    refuse=_nf_refuse,
  )
)
register(
  Branch(
    "normalized",
    "w skip + sqrt(1 - w^2) f(x), DKS/TAT's normalised sums (Martens et al. 2021)",
    coefficients=lambda s: {
      "skip": np.full(s.num_blocks, s.shortcut_weight),
      "branch": np.full(s.num_blocks, math.sqrt(1.0 - s.shortcut_weight**2)),
    },
    refuse=_normalized_refuse,
  )
)
