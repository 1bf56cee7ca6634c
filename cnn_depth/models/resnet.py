"""Plain nets and ResNets of the depth studies: one `ResNet` class, the named families as presets.

* CIFAR ResNet (He et al. 2016, §4.2): 3x3 conv(16) -> 3 stages of n blocks with 16/32/64 channels
  on 32/16/8 maps -> global average pool -> dense. Basic blocks give depth 6n+2 (20 ... 1202),
  bottleneck blocks 9n+2 with 4x the channels out of each block (the "original" ResNet-164 of He et
  al. 2016b). Shortcut option A (parameter-free) or B (projection at dimension changes).
* Plain twins: the same nets with `residual=False` (no shortcut addition).
* Pre-activation ResNets (He et al. 2016b, "Identity mappings"): BN-ReLU-conv ordering; CIFAR basic
  (6n+2) and bottleneck (9n+2: 164, 1001) variants.
* ImageNet ResNets 18/34 (basic) and 50/101/152 (bottleneck), and their plain twins; 7x7/2 stem +
  3x3/2 max pool; option B shortcuts by default.

Blocks take their gate and gradient route as gating.py describes (residual: skip + gate * branch;
plain: gate 0 passes the option-A shortcut instead).

The fixes for depth
-------------------
The CIFAR families take the fixes for depth as options (config.model fields of the same names):
`norm` ('bn'; 'none': no normalisation, convolutions with biases; 'ws': scaled weight
standardisation with biases), `init` (models/inits.py, with `sigma_w2` and the biases' `sigma_b2`),
`activation` (models/activations.py, with `negative_slope`), `transform` ('dks' | 'tat': the
activation shaped to this net's own structure by models/shaping.py, with `dks_zeta`, `tat_eta`,
`tat_tau`) and `branch` (models/branches.py: how each branch meets its skip, with `nf_alpha` and
`shortcut_weight`). Any two combine where their papers combine them; `ResNet.fixes` refuses, in one
sentence, a combination that has no meaning (Fixup with BN, a transform without normalised sums on
a residual net, ...). The branch rules' per-block constants reach the blocks as scanned arrays,
like the gates: a stage of any depth stays one scanned block, and one compile.

Parameter paths
---------------
With `stages='unroll'` every block is `stage{s}_block{b}`. With `stages='scan'` (the default) the
first block of each stage (the one that may change shape) is `stage{s}_block0` and the identical
blocks 1..n-1 are stacked along a leading axis under `stage{s}_blocks`; `unstack_stages` /
`stack_stages` convert between the two layouts and `block_variables` addresses any (stage, block).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnn_depth import layers
from cnn_depth.layers import Conv
from cnn_depth.models import activations, blocks, branches, gating, inits, layout, registry, shaping

Dtype = Any


# --------------------------------------------------------------------------------------------------
# The network.


class ResNet(layout.Blocks, nn.Module):
  """A ResNet or its plain twin; see the module docstring for the families, gates and parameter
  paths.

  Call as `model.apply(variables, images, train=..., gates=None, grad_route=None, rngs=...)`. With
  `survival_last < 1` and `train=True`, pass `rngs={gating.DROP_RNG: key}` for the stochastic-depth
  draws.
  """

  stage_sizes: Sequence[int]
  stage_widths: Sequence[int]  # output channels of each stage's blocks
  block: str = "basic"  # 'basic' | 'bottleneck'
  preact: bool = False
  residual: bool = True
  shortcut: str = "A"  # 'A' (zero-pad) | 'B' (projection at dimension changes)
  stem: str = "cifar"  # 'cifar' (3x3 conv) | 'imagenet' (7x7/2 conv + 3x3/2 max pool)
  stem_width: int = 16
  num_classes: int = 10
  dtype: Dtype = jnp.float32
  stages: str = "scan"  # 'scan' | 'unroll'
  unroll: int = 1  # scan unroll factor; 0 = `resolve_unroll`'s measured choice for the backend
  remat: bool = False  # rematerialise each block in the backward pass (memory for compute)
  survival_last: float = 1.0  # p_L of stochastic depth; 1 disables it
  drop_mode: str = "batch"  # 'batch' (Huang et al.) | 'sample' (drop path)
  zero_init_last: bool = False
  conv_impl: str = "auto"
  bn_groups: int = 1  # > 1: per-group ("ghost", per-device) BN statistics; see layers.batch_norm
  bn_impl: str = "fused"  # 'fused' (layers.BatchNorm, hand-written backward) | 'flax' (flax's)
  bottleneck_stride: str = "1x1"  # '1x1' (the paper) | '3x3' (torchvision/timm "v1.5")
  # The fixes for depth (the module docstring; config.base() describes each field).
  norm: str = "bn"
  weight_init: str = "he"  # config.model.init (flax's Module.init is the method)
  sigma_w2: float = 2.0
  sigma_b2: float = 0.0
  activation: str = "relu"
  negative_slope: float = 0.01
  transform: str = "none"
  dks_zeta: float = 1.5
  tat_eta: float = 0.9
  tat_tau: float = 0.3
  branch: str = "identity"
  nf_alpha: float = 0.2
  shortcut_weight: float = 0.0

  def fixes(self) -> blocks.Fixes:
    """How the blocks make their layers, from the fix fields; a ValueError in one sentence naming
    the field for a combination that has no meaning."""
    return fixes_of(self)

  def branch_structure(self) -> branches.Structure:
    """The net as its branch rule sees it."""
    return branches.Structure(
      num_blocks=self.num_blocks,
      shape_changing=tuple(bool(b) for b in self.shape_changing_blocks()),
      layers_per_branch=3 if self.block == "bottleneck" else 2,
      residual=self.residual,
      preact=self.preact,
      norm=self.norm,
      shortcut=self.shortcut,
      nf_alpha=self.nf_alpha,
      shortcut_weight=self.shortcut_weight,
    )

  def shape_changing_blocks(self) -> np.ndarray:
    """True for a stage's first block where it changes the map size or the channel count."""
    widths_in = [self.stem_width] + list(self.stage_widths[:-1])
    return np.asarray(
      [
        b == 0 and (s > 0 or widths_in[0] != self.stage_widths[0])
        for s, n in enumerate(self.stage_sizes)
        for b in range(n)
      ]
    )

  def block_gates(self, train: bool, batch_size: int):
    """The stochastic-depth gates (all ones when it is off)."""
    survival = jnp.asarray(gating.survival_probabilities(self.num_blocks, self.survival_last))
    if self.survival_last >= 1.0:
      return jnp.ones((self.num_blocks,), jnp.float32)
    if not train:
      return survival
    per_sample = batch_size if self.drop_mode == "sample" else None
    return gating.stochastic_depth_gates(self.make_rng(gating.DROP_RNG), survival, per_sample)

  def stem_layers(self, x, norm, fixes: blocks.Fixes):
    conv = functools.partial(
      Conv, dtype=self.dtype, conv_impl=self.conv_impl, **fixes.conv_options()
    )
    if self.stem == "cifar":
      x = conv(self.stem_width, 3, 1, name="conv_init")(x)
      if self.preact:  # its first block applies BN-ReLU itself
        return x
      return fixes.norm_act(norm, fixes.shift(self, x, "stem_bias"), "bn_init")
    if self.stem == "imagenet":
      x = conv(self.stem_width, 7, 2, name="conv_init")(x)
      x = fixes.norm_act(norm, fixes.shift(self, x, "stem_bias"), "bn_init")
      return nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    raise ValueError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}")

  def head(self, x, fixes: blocks.Fixes):
    """Global average pool and the classifier (Fixup: its scalar bias before it, zero-init)."""
    x = fixes.shift(self, jnp.mean(x, axis=(1, 2)), "head_bias")
    zero = {"kernel_init": nn.initializers.zeros} if fixes.branch.fixup else {}
    return nn.Dense(self.num_classes, dtype=self.dtype, name="head", **zero)(x)

  @nn.compact
  def __call__(self, x, *, train: bool, gates=None, grad_route=None):
    if self.shortcut not in ("A", "B"):
      raise ValueError(f"shortcut must be 'A' or 'B', got {self.shortcut!r}")
    if self.stages not in ("scan", "unroll"):
      raise ValueError(f"stages must be 'scan' or 'unroll', got {self.stages!r}")
    norm = layers.batch_norm(train, self.dtype, self.bn_groups, self.bn_impl)
    fixes = self.fixes()
    x = self.stem_layers(x.astype(self.dtype), norm, fixes)

    g, route = gating.block_controls(gates, grad_route, self.num_blocks, "ResNet")
    survival = self.block_gates(train, x.shape[0])
    g = survival if g is None else survival * g

    block_cls = blocks.BLOCKS[(self.block, self.preact)]
    if self.remat:
      block_cls = nn.remat(block_cls, prevent_cse=self.stages == "unroll")
    make_block = functools.partial(
      block_cls,
      residual=self.residual,
      shortcut=self.shortcut,
      norm=norm,
      dtype=self.dtype,
      conv_impl=self.conv_impl,
      zero_init_last=self.zero_init_last,
      bottleneck_stride=self.bottleneck_stride,
      fixes=fixes,
    )
    coef = branches.coefficients(fixes.branch, self.branch_structure()) if self.residual else None
    coef = jax.tree_util.tree_map(jnp.asarray, coef)
    # Per block: gate, route, the branch rule's constants (None where not given).
    ctrl = lambda i: jax.tree_util.tree_map(lambda a: a[i], (g, route, coef))

    start = 0
    for s, (n, width) in enumerate(zip(self.stage_sizes, self.stage_widths)):
      stride = 1 if s == 0 else 2
      x = make_block(width, stride, name=f"stage{s}_block0")(x, *ctrl(start))
      if self.stages == "unroll" or n == 1:
        for b in range(1, n):
          x = make_block(width, 1, name=f"stage{s}_block{b}")(x, *ctrl(start + b))
      else:
        xs = ctrl(slice(start + 1, start + n))
        scan = nn.scan(
          lambda mdl, carry, xs: (mdl(carry, *xs), None),
          variable_axes={"params": 0, "batch_stats": 0},
          split_rngs={"params": True},
          length=n - 1,
          unroll=resolve_unroll(self.unroll, n - 1),
        )
        x, _ = scan(make_block(width, 1, name=f"stage{s}_blocks"), x, xs)
      start += n

    if self.preact:
      x = fixes.norm_act(norm, x, "bn_final")
    x = self.head(x, fixes)
    return x.astype(jnp.promote_types(self.dtype, jnp.float32))  # bf16 -> f32, f64 stays


# --------------------------------------------------------------------------------------------------
# The fixes for depth: which combine, and what the blocks make of them.

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ResNet)}  # He et al.'s net


def fixes_of(net: ResNet) -> blocks.Fixes:
  """`net`'s fixes for depth resolved for its blocks (initialisers, activation, branch rule), or a
  ValueError in one sentence naming the field for a combination that has no meaning."""
  refusal = _refusal(net)
  if refusal:
    raise ValueError(refusal)
  rule = branches.check(net.branch, net.branch_structure())
  act, params, transform = activations.get(net.activation), {}, activations.IDENTITY
  if act.params:
    params["negative_slope"] = net.negative_slope
  if net.transform != "none":
    solution = shaping.solve(
      net.activation,
      net.transform,
      _subnet(net),
      zeta=net.dks_zeta,
      eta=net.tat_eta,
      tau=net.tat_tau,
    )
    transform, params = solution.transform, {**params, **solution.params}
  elif rule.name == "nf":
    transform = activations.Transform(output_scale=branches.nf_gamma(net.activation, **params))
  fused = net.norm == "bn" and net.activation == "relu" and transform == activations.IDENTITY
  return blocks.Fixes(
    norm=net.norm,
    act=activations.make(net.activation, transform, **params),
    fused_relu=fused,
    kernel_init=inits.kernel(net.weight_init, net.sigma_w2),
    bias_init=inits.bias(net.sigma_b2),
    branch=rule,
    branch_init_scale=branches.fixup_scale(net.num_blocks, 3 if net.block == "bottleneck" else 2),
  )


def _subnet(net: ResNet):
  """The net's maximal subnetwork for DKS/TAT (shaping.subnet_for: CIFAR nets only)."""
  per_block = 3 if net.block == "bottleneck" else 2
  return shaping.subnet_for(
    sum(net.stage_sizes) * per_block + 2,
    block=net.block,
    preact=net.preact,
    residual=net.residual,
    shortcut=net.shortcut,
    shortcut_weight=net.shortcut_weight if net.residual else 0.0,
  )


def _unused(net: ResNet, field: str, where: str) -> str | None:
  """A refusal of `field` set to a non-default value where it means nothing."""
  value, default = getattr(net, field), _DEFAULTS[field]
  if value == default:
    return None
  return f"{field}={value!r} applies to {where} only: leave it out or reset it (to {default!r})"


def _refusal(net: ResNet) -> str | None:
  """Why `net`'s fix fields cannot be combined (one sentence naming a field), or None."""
  if net.norm not in ("bn", "none", "ws"):
    return f"norm={net.norm!r} is not a normalisation: choose 'bn', 'none' or 'ws'"
  for field, value, known in (
    ("init", net.weight_init, inits.INITS),
    ("activation", net.activation, activations.ACTIVATIONS),
  ):
    if value not in known:
      return f"{field}={value!r} is unknown: choose one of {', '.join(known)}"
  smooth = activations.get(net.activation).smooth
  for reason in (
    _unused(net, "negative_slope", "activation='leaky_relu' without transform='tat'")
    if net.activation != "leaky_relu" or net.transform == "tat"
    else None,
    _unused(net, "sigma_b2", "the biases of norm='none' or 'ws' (Fixup's are scalars)")
    if net.norm == "bn" or net.branch == "fixup"
    else None,
    *(
      _unused(net, f, "norm='bn'")
      for f in ("bn_groups", "bn_impl", "zero_init_last")
      if net.norm != "bn"
    ),
    _unused(net, "nf_alpha", "branch='nf'") if net.branch != "nf" else None,
    _unused(net, "shortcut_weight", "branch='normalized'") if net.branch != "normalized" else None,
    _unused(net, "dks_zeta", "transform='dks'") if net.transform != "dks" else None,
    _unused(net, "tat_eta", "transform='tat' of leaky_relu")
    if net.transform != "tat" or smooth
    else None,
    _unused(net, "tat_tau", "transform='tat' of a smooth activation")
    if net.transform != "tat" or not smooth
    else None,
  ):
    if reason:
      return reason
  return _transform_refusal(net) if net.transform != "none" else None


def _transform_refusal(net: ResNet) -> str | None:
  """DKS and TAT as their papers define them: shaped activations in nets without normalisation,
  whose layers keep each unit's q (SUO or fan-in Gaussian weights, sigma_w2 = 1, zero biases) and
  whose branches meet in normalised sums."""
  t = f"transform={net.transform!r}"
  if net.transform not in shaping.METHODS:
    return f"{t} is not a kernel-shaping method: choose 'none', 'dks' or 'tat'"
  if net.transform not in activations.get(net.activation).transforms:
    able = [a.name for a in activations.ACTIVATIONS.values() if net.transform in a.transforms]
    paper = {"dks": "Martens et al. 2021", "tat": "Zhang et al. 2022"}[net.transform]
    return (
      f"{t} does not apply to activation={net.activation!r} ({paper}): choose one of "
      f"{', '.join(able)}"
    )
  if net.norm != "none":
    return f"{t} shapes nets without normalisation layers (Martens et al. 2021): set norm='none'"
  if net.residual and net.branch != "normalized":
    return (
      f"{t} needs normalised sums where a residual branch meets its skip: set "
      "branch='normalized' and shortcut_weight"
    )
  if net.weight_init not in ("suo", "gaussian") or net.sigma_w2 != 1.0 or net.sigma_b2 != 0.0:
    return (
      f"{t} assumes layers that keep each unit's q (Martens et al. 2021): set init='suo' (DKS's "
      "scaled uniform orthogonal) or 'gaussian', sigma_w2=1 and sigma_b2=0"
    )
  if net.stem != "cifar" or len(set(net.stage_sizes)) != 1:
    return f"{t} knows the structure of the CIFAR families only (shaping.subnet_for)"
  return None


def resolve_unroll(unroll: int, length: int) -> int:
  """The scan unroll factor for a scan of `length` blocks; `unroll=0` picks it by backend.

  Measured (benchmarks/NOTES.md, one H100, bf16, batch 128): a fully unrolled scan is fastest up to
  ResNet-110 (56: 26.0k vs 21.7k img/s at unroll 4; compile 12-20 s), and unroll 4 for ResNet-1202
  (compile ~12 s). On CPU unrolling only costs compile time (ResNet-110 unrolled: 7.5 s/step vs 3.9
  s scanned), so 'auto' keeps 1 there.
  """
  if unroll < 0:
    raise ValueError(f"unroll must be >= 1, or 0 for the backend's default; got {unroll}")
  if unroll:
    return unroll
  if jax.default_backend() == "cpu":
    return 1
  # 17: a ResNet-110 stage (18 blocks, the first outside the scan).
  return length if length <= 17 else 4


# --------------------------------------------------------------------------------------------------
# Families and depths.

IMAGENET_STAGES = {  # depth -> block, blocks per stage (He et al. 2016, Table 1)
  18: ("basic", (2, 2, 2, 2)),
  34: ("basic", (3, 4, 6, 3)),
  50: ("bottleneck", (3, 4, 6, 3)),
  101: ("bottleneck", (3, 4, 23, 3)),
  152: ("bottleneck", (3, 8, 36, 3)),
}


def blocks_per_stage(depth: int, layers_per_block: int, stages: int = 3) -> int:
  """n for a CIFAR net of depth (stages * layers_per_block) n + 2, or a ValueError naming valid
  depths."""
  step = stages * layers_per_block
  n, r = divmod(depth - 2, step)
  if r == 0 and n >= 1:
    return n
  near = [d for d in (n * step + 2 if n >= 1 else None, max(n + 1, 1) * step + 2) if d]
  kind = {2: "basic", 3: "bottleneck"}[layers_per_block]
  examples = "20, 32, 44, 56, 110, 1202" if step == 6 else "29, 56, 164, 1001"
  raise ValueError(
    f"depth {depth} is not a valid depth for a CIFAR net of {kind} blocks: it must be {step}n+2 "
    f"with n >= 1 (e.g. {examples}); nearest valid depths: {' and '.join(map(str, near))}"
  )


def cifar_resnet(
  depth: int,
  *,
  residual: bool = True,
  block: str = "basic",
  width: int = 16,
  init: str = "he",
  **kw,
) -> ResNet:
  """He et al. CIFAR net: basic blocks, depth 6n+2, 16/32/64 channels x width/16; or bottleneck
  blocks, depth 9n+2, 4x those channels out of each block (ResNet-164 of He et al. 2016b). `init`
  names the kernel initialiser (models/inits.py; ResNet's `weight_init`), the other fixes for depth
  are ResNet's fields of their config names."""
  if block not in ("basic", "bottleneck"):
    raise ValueError(f"a CIFAR ResNet's block must be 'basic' or 'bottleneck', got {block!r}")
  expansion = 4 if block == "bottleneck" else 1
  n = blocks_per_stage(depth, 3 if block == "bottleneck" else 2)
  widths = tuple(expansion * width * m for m in (1, 2, 4))
  kw.update(residual=residual, stem="cifar", stem_width=width, weight_init=init)
  net = ResNet((n,) * 3, widths, block, **kw)
  net.fixes()  # refuses fixes that do not combine, before anything is built
  return net


def cifar_preact(depth: int, *, block: str = "bottleneck", width: int = 16, **kw) -> ResNet:
  """He et al. 2016b CIFAR pre-activation ResNet: bottleneck 9n+2 (164, 1001) or basic 6n+2
  (110)."""
  kw.setdefault("shortcut", "B")
  return cifar_resnet(depth, block=block, width=width, preact=True, **kw)


def imagenet_resnet(depth: int, *, residual: bool = True, width: int = 64, **kw) -> ResNet:
  """He et al. ImageNet ResNet-18/34/50/101/152 (option B by default) or its plain twin."""
  registry.only(depth, IMAGENET_STAGES, "ImageNet ResNet")
  block, sizes = IMAGENET_STAGES[depth]
  expansion = 4 if block == "bottleneck" else 1
  kw.setdefault("shortcut", "B")
  kw.setdefault("num_classes", 1000)
  widths = tuple(expansion * width * m for m in (1, 2, 4, 8))
  return ResNet(sizes, widths, block, residual=residual, stem="imagenet", stem_width=width, **kw)


# The config.model fields the ResNet families read (the ImageNet ones take their block from the
# depth).
FIELDS = ("width", "shortcut", "block", "survival_last", "drop_mode", "stages", "unroll", "remat")
FIELDS += ("zero_init_last", "bn_groups", "bn_impl", "bottleneck_stride")
# The fixes for depth: the CIFAR families read them.
FIX_FIELDS = ("norm", "init", "sigma_w2", "sigma_b2", "activation", "negative_slope", "transform")
FIX_FIELDS += ("dks_zeta", "tat_eta", "tat_tau", "branch", "nf_alpha", "shortcut_weight")
IMAGENET = {
  "fields": tuple(f for f in FIELDS if f != "block"),
  "input_shape": (224, 224, 3),
  "num_classes": 1000,
}


# The papers' figures (scripts/models_table.py lists them beside our counts).
HE_TABLE6 = 'He et al. 2016 ("Deep residual learning"), Table 6 (CIFAR-10, option A shortcuts).'
HE_TABLE1 = 'He et al. 2016, Table 1 "FLOPs" (multiply-adds), quoted for the plain nets too.'
HE_2016B = (
  'He et al. 2016b ("Identity mappings"): conv/dense weights only; BN adds about 1.5%, which our '
  "count includes."
)
CIFAR_PARAMS = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6, 1202: 19.4e6}
RESNET20_MACS = (41e6, "Commonly cited figure for ResNet-20; not in the paper's table.")
IMAGENET_MACS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}
IMAGENET_PARAMS = {18: 11.7e6, 34: 21.8e6, 50: 25.6e6}


def _published_cifar(residual: bool) -> tuple[registry.Published, ...]:
  return tuple(
    registry.Published(
      d,
      params=(p, HE_TABLE6) if residual else None,
      macs=RESNET20_MACS if residual and d == 20 else None,
    )
    for d, p in CIFAR_PARAMS.items()
  )


def _published_imagenet(residual: bool, depths) -> tuple[registry.Published, ...]:
  return tuple(
    registry.Published(
      d,
      params=(IMAGENET_PARAMS[d], registry.TORCHVISION)
      if residual and d in IMAGENET_PARAMS
      else None,
      macs=(IMAGENET_MACS[d], HE_TABLE1),
    )
    for d in depths
  )


PREACT = (
  registry.Published(110, {"block": "basic"}),
  registry.Published(164, {"block": "bottleneck"}, params=(1.7e6, HE_2016B)),
  registry.Published(1001, {"block": "bottleneck"}, params=(10.2e6, HE_2016B)),
)


def _register(name, build, label, title, fields=FIELDS + FIX_FIELDS, **more):
  registry.register(registry.Family(name, build, fields, label, title, **more))


_register(
  "cifar_resnet", cifar_resnet, "ResNet-{depth}", "ResNets", published=_published_cifar(True)
)
_register(
  "cifar_plain",
  functools.partial(cifar_resnet, residual=False),
  "plain-{depth}",
  "plain nets",
  published=_published_cifar(False),
)
_register(
  "cifar_preact",
  cifar_preact,
  lambda depth, o: f"PreAct ResNet-{depth}" + (" (basic)" if o.get("block") == "basic" else ""),
  "pre-activation ResNets",
  published=PREACT,
)
_register(
  "imagenet_resnet",
  imagenet_resnet,
  "ResNet-{depth} (ImageNet)",
  "ResNets",
  **IMAGENET,
  published=_published_imagenet(True, IMAGENET_STAGES),
)
_register(
  "imagenet_plain",
  functools.partial(imagenet_resnet, residual=False),
  "plain-{depth} (ImageNet)",
  "plain nets",
  **IMAGENET,
  published=_published_imagenet(False, (18, 34)),
)
