"""The models table: our parameter and multiply-add counts of every family's published nets, beside
the papers' figures (`scripts/models_table.py` prints it).

The rows are the registry's: each family's `published` nets (`registry.Published`), in registry
order, counted on the input the family (or the net) was designed for, all through `jax.eval_shape`
(`counting.py`): nothing is computed, so even ResNet-1202 and ResNet-152 take seconds on a CPU.
`params` is every trainable parameter (convolutions, dense head, BN scales and offsets; BN running
statistics are not parameters); `macs` is forward multiply-adds per image of the convolutions and
the dense head, which is what He et al. call "FLOPs". A new family's `published` nets appear here
unasked.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from cnn_depth.models import counting, registry
from cnn_depth.models.resnet import ResNet


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
