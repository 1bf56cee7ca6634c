"""The models table: our parameter and multiply-add counts of every family's published nets, beside
the papers' figures (`scripts/models_table.py` prints it); and the table of the fixes for depth,
every option the CIFAR families take (`--fixes`), from the registries that hold them.

The rows are the registry's: each family's `published` nets (`registry.Published`), in registry
order, counted on the input the family (or the net) was designed for, all through `jax.eval_shape`
(`counting.py`): nothing is computed, so even ResNet-1202 and ResNet-152 take seconds on a CPU.
`params` is every trainable parameter (convolutions, dense head, BN scales and offsets; BN running
statistics are not parameters); `macs` is forward multiply-adds per image of the convolutions and
the dense head, which is what He et al. call "FLOPs". A new family's `published` nets appear here
unasked.

The fixes table (`fix_rows`) lists each value of each fix field (config.model.norm, init,
activation, transform, branch; grad_clip, scalar_lr_scale) with what it does, its paper and the
numeric fields it reads: the initialisers, activations and branch rules from their registries
(models/inits.py, activations.py, branches.py: a new entry appears here unasked), the fields
without a registry from `NORMS`, `TRANSFORMS` and `GRAD_CLIPS` below.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from cnn_depth.models import counting, registry
from cnn_depth.models.resnet import ResNet
from cnn_depth.workdir import lookup


def render(families: Sequence[str] | None = None, as_json: bool = False) -> str:
  """The table of `families` (all if None) as Markdown, or as a JSON list of its rows. An unknown
  family name raises ValueError, naming the known ones."""
  rows = table_rows(families)
  return json.dumps(rows, indent=1) if as_json else markdown(rows)


def table_rows(families: Sequence[str] | None = None) -> list[dict[str, Any]]:
  """One dict per published net of every registered family (`Family.published`), in registry
  order, restricted to `families` if given."""
  known = registry.FAMILIES
  if families is not None:
    unknown = sorted(set(families) - set(known))
    if unknown:
      raise ValueError(f"unknown model families {unknown}; known: {', '.join(known)}")
  rows = []
  for family in known.values():
    if families is None or family.name in families:
      rows += [row(family, net) for net in family.published]
  return rows


def row(family: registry.Family, net: registry.Published) -> dict[str, Any]:
  """Our counts of `net` on its input, beside the paper's figures."""
  shape = net.input_shape or family.input_shape
  num_classes = net.num_classes or family.num_classes
  config = {"family": family.name, "depth": net.depth, "num_classes": num_classes}
  model = registry.build_model({**config, **net.options})
  resnet = isinstance(model, ResNet)  # the rows' block and shortcut columns
  paper_params, params_note = net.params or (None, None)
  paper_macs, macs_note = net.macs or (None, None)
  return {
    "family": family.name,
    "depth": net.depth,
    "block": model.block if resnet else None,
    "shortcut": model.shortcut if resnet else None,
    "options": dict(net.options),
    "name": family.net_label(net.depth, net.options),
    "num_classes": num_classes,
    "input_shape": list(shape),
    "params": counting.count_params(counting.init_shapes(model, shape)["params"]),
    "macs": counting.multiply_adds(model, shape),
    "paper_params": None if paper_params is None else round(paper_params),
    "paper_macs": None if paper_macs is None else round(paper_macs),
    "paper_params_note": params_note,
    "paper_macs_note": macs_note,
  }


def _human(n: float | None, unit: str | None = None, exact: bool = False) -> str:
  """40551040 -> '40.6M', 1814073344 -> '1.81G'; `exact` keeps a paper figure's own precision."""
  if n is None:
    return ""
  if unit is None:
    unit = "G" if n >= 1e9 else "M"
  v = n / {"M": 1e6, "G": 1e9}[unit]
  if exact:
    return f"{v:g}{unit}"
  decimals = 0 if v >= 100 else 1 if v >= 10 else 2 if v >= 1 else 3  # three significant digits
  return f"{v:.{decimals}f}{unit}"


def markdown(rows: Sequence[dict[str, Any]]) -> str:
  """The rows as a Markdown table; the sources of the paper figures as footnotes [a], [b], ... in
  order of first use."""
  header = ("family", "depth", "name", "params", "MACs / image", "paper params", "paper MACs")
  lines = [
    "| " + " | ".join(header) + " |",
    "|" + "|".join(["---", "---:", "---", "---:", "---:", "---:", "---:"]) + "|",
  ]
  notes: dict[str, str] = {}  # source -> marker

  def figure(value, source, unit=None):
    if source is not None and source not in notes:
      notes[source] = chr(ord("a") + len(notes))
    return _human(value, unit, exact=True) + (f" [{notes[source]}]" if source else "")

  for r in rows:
    paper_params = figure(r["paper_params"], r["paper_params_note"], "M")
    paper_macs = figure(r["paper_macs"], r["paper_macs_note"])
    cells = (r["family"], str(r["depth"]), r["name"], _human(r["params"], "M"), _human(r["macs"]))
    lines.append("| " + " | ".join((*cells, paper_params, paper_macs)) + " |")
  lines.append("")
  lines.append(
    "params: all trainable parameters (BN scales and offsets included); MACs: forward "
    'multiply-adds of the convolutions and the dense head per image (He et al.\'s "FLOPs").'
  )
  lines += [f"[{marker}] {source}" for source, marker in notes.items()]
  return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The fixes for depth: every option of the CIFAR families, read from the registries that hold them
# (initialisers, activations, branch rules) and, for the fields without one, from the lists below.

# Each value of the fields that have no registry, with what it does and its paper.
NORMS = {
  "bn": "BN after each convolution (Ioffe & Szegedy 2015), as in He et al.'s nets",
  "none": (
    "no normalisation, convolutions with biases N(0, sigma_b2): the vanilla nets of the mean-field "
    "papers (Schoenholz et al. 2017; Xiao et al. 2018)"
  ),
  "ws": (
    "scaled weight standardisation with a learnable gain, and biases (Brock, De & Smith 2021; "
    "Qiao et al. 2019)"
  ),
}
TRANSFORMS = {
  "none": "the activation as it is",
  "dks": (
    "gamma (phi(alpha x + beta) + delta) solved from the net's structure so that its maximal C map "
    "has slope dks_zeta at 1 (Deep Kernel Shaping, Martens et al. 2021)"
  ),
  "tat": (
    "the same with C_f(0) = tat_eta for leaky ReLU (its slope solved) or C_f''(1) = tat_tau for "
    "smooth activations (TAT, Zhang, Botev & Martens 2022)"
  ),
}
GRAD_CLIPS = {
  "none": "the gradient as it is",
  "agc": (
    "adaptive gradient clipping: each unit's gradient to clip_lambda times its weights' norm, not "
    "the classifier's (Brock et al. 2021, NFNets; optax.adaptive_grad_clip)"
  ),
}
SCALAR_LR = (
  "the learning rate of the scalar parameters (Fixup's biases and multipliers, SkipInit's alpha) "
  "and the classifier's bias, times this: Fixup's reference trains them at lr/10 "
  "(Zhang, Dauphin & Ma 2019)"
)
# The numbers each option reads (config fields), by (field, value); '*': every value.
PARAMETERS = {
  ("model.norm", "none"): ("model.sigma_b2",),
  ("model.norm", "ws"): ("model.sigma_b2",),
  ("model.init", "*"): ("model.sigma_w2",),
  ("model.activation", "leaky_relu"): ("model.negative_slope",),
  ("model.transform", "dks"): ("model.dks_zeta",),
  ("model.transform", "tat"): ("model.tat_eta", "model.tat_tau"),
  ("model.branch", "nf"): ("model.nf_alpha",),
  ("model.branch", "normalized"): ("model.shortcut_weight",),
  ("grad_clip", "agc"): ("clip_lambda",),
}


def fix_rows() -> list[dict[str, Any]]:
  """One row per option of the fixes for depth: its config field, value, what it does (with its
  paper), whether it is the default, and the numeric fields it reads with their defaults
  (config.base())."""
  from cnn_depth import config as config_lib
  from cnn_depth.models import activations, branches, inits

  base = config_lib.base()
  options = [("model.norm", v, d) for v, d in NORMS.items()]
  options += [("model.init", e.name, e.description) for e in inits.INITS.values()]
  options += [("model.activation", a.name, _shaping(a)) for a in activations.ACTIVATIONS.values()]
  options += [("model.transform", v, d) for v, d in TRANSFORMS.items()]
  options += [("model.branch", b.name, b.description) for b in branches.BRANCHES.values()]
  options += [("grad_clip", v, d) for v, d in GRAD_CLIPS.items()]
  options += [("scalar_lr_scale", 0.1, SCALAR_LR)]
  rows = []
  for field, value, does in options:
    reads = PARAMETERS.get((field, value), PARAMETERS.get((field, "*"), ()))
    rows.append(
      dict(
        field=field,
        value=value,
        does=does,
        default=value == lookup(base, field),
        parameters={p: lookup(base, p) for p in reads},
      )
    )
  return rows


def _shaping(activation) -> str:
  """What the table says of an activation: which kernel shaping applies to it."""
  ways = " and ".join(t.upper() for t in activation.transforms) or "neither DKS nor TAT"
  return f"{activation.name}, shaped by {ways}"


def fixes_markdown(rows: Sequence[dict[str, Any]]) -> str:
  """The fix rows as a Markdown table: the override that selects each, what it does, what it
  reads."""
  lines = ["| option | what it does | reads (default) |", "|---|---|---|"]
  for r in rows:
    option = f"`--config.{r['field']}={r['value']}`" + (" (default)" if r["default"] else "")
    reads = ", ".join(f"`{p.rsplit('.', 1)[-1]}` ({v})" for p, v in r["parameters"].items())
    lines.append(f"| {option} | {r['does']} | {reads} |")
  lines += ["", "Options combine where their papers combine them; the rest are refused, one line."]
  return "\n".join(lines)


def render_fixes(as_json: bool = False) -> str:
  """The fixes for depth as Markdown, or as a JSON list of `fix_rows`."""
  rows = fix_rows()
  return json.dumps(rows, indent=1) if as_json else fixes_markdown(rows)
