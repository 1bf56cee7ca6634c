"""Print the parameter and multiply-add counts of every model family and depth, beside the papers' figures.

    python scripts/models_table.py                      # Markdown table, all families
    python scripts/models_table.py --families=cifar_resnet,imagenet_resnet
    python scripts/models_table.py --json               # the same rows as a JSON list

Counts come from `cnn_depth.models` (`init_shapes`, `count_params`, `multiply_adds`), all through
`jax.eval_shape`: nothing is computed, so even ResNet-1202 and ResNet-152 take seconds on a CPU.
`params` is every trainable parameter (convolutions, dense head, BN scales and offsets; BN running
statistics are not parameters); `macs` is forward multiply-adds per image of the convolutions and the
dense head, which is what He et al. call "FLOPs".
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from absl import app, flags

from cnn_depth import models

_JSON = flags.DEFINE_bool("json", False, "Print the rows as a JSON list instead of a Markdown table.")
_FAMILIES = flags.DEFINE_list(
    "families", None, f"Comma-separated families to list (default: all of {', '.join(models.FAMILIES)}).")

CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_SHAPE = (32, 32, 3)
IMAGENET_SHAPE = (224, 224, 3)

# (family, depth, extra config fields) for every row, in table order.
SPECS: tuple[tuple[str, int, dict], ...] = (
    *(("cifar_resnet", d, {}) for d in CIFAR_DEPTHS),
    *(("cifar_plain", d, {}) for d in CIFAR_DEPTHS),
    ("cifar_preact", 110, {"block": "basic"}),
    ("cifar_preact", 164, {"block": "bottleneck"}),
    ("cifar_preact", 1001, {"block": "bottleneck"}),
    *(("imagenet_resnet", d, {}) for d in (18, 34, 50, 101, 152)),
    *(("imagenet_plain", d, {}) for d in (18, 34)),
)

# Footnotes on where a reported figure comes from; keys are the markers printed next to it.
NOTES = {
    "a": "He et al. 2016 (\"Deep residual learning\"), Table 6 (CIFAR-10, option A shortcuts).",
    "b": "Commonly cited figure for ResNet-20; not in the paper's table.",
    "c": "He et al. 2016b (\"Identity mappings\"): conv/dense weights only; BN adds about 1.5%, "
         "which our count includes.",
    "d": "He et al. 2016, Table 1 \"FLOPs\" (multiply-adds), quoted for the plain nets too.",
    "e": "Widely used reference count (torchvision); the paper does not list parameters.",
}

# (family, depth) -> (paper params, marker) and (paper multiply-adds, marker).
PAPER_PARAMS = {
    **{("cifar_resnet", d): (p, "a") for d, p in
       ((20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6), (110, 1.7e6), (1202, 19.4e6))},
    ("cifar_preact", 164): (1.7e6, "c"),
    ("cifar_preact", 1001): (10.2e6, "c"),
    ("imagenet_resnet", 18): (11.7e6, "e"),
    ("imagenet_resnet", 34): (21.8e6, "e"),
    ("imagenet_resnet", 50): (25.6e6, "e"),
}
PAPER_MACS = {
    ("cifar_resnet", 20): (41e6, "b"),
    **{("imagenet_resnet", d): (m, "d") for d, m in
       ((18, 1.8e9), (34, 3.6e9), (50, 3.8e9), (101, 7.6e9), (152, 11.3e9))},
    ("imagenet_plain", 18): (1.8e9, "d"),
    ("imagenet_plain", 34): (3.6e9, "d"),
}


def model_name(family: str, depth: int, block: str | None = None) -> str:
  match family:
    case "cifar_resnet":
      return f"ResNet-{depth}"
    case "cifar_plain":
      return f"plain-{depth}"
    case "cifar_preact":
      return f"PreAct ResNet-{depth}" + (" (basic)" if block == "basic" else "")
    case "imagenet_resnet":
      return f"ResNet-{depth} (ImageNet)"
    case "imagenet_plain":
      return f"plain-{depth} (ImageNet)"
  raise ValueError(f"unknown model family {family!r}")


def table_rows(families: Sequence[str] | None = None) -> list[dict[str, Any]]:
  """One dict per (family, depth) of SPECS, in table order, restricted to `families` if given."""
  if families is not None:
    unknown = sorted(set(families) - set(models.FAMILIES))
    if unknown:
      raise ValueError(f"unknown model families {unknown}; known: {', '.join(models.FAMILIES)}")
  rows = []
  for family, depth, extra in SPECS:
    if families is not None and family not in families:
      continue
    imagenet = family.startswith("imagenet")
    shape = IMAGENET_SHAPE if imagenet else CIFAR_SHAPE
    num_classes = 1000 if imagenet else 10
    model = models.build_model({"family": family, "depth": depth, "num_classes": num_classes, **extra})
    params = models.count_params(models.init_shapes(model, shape)["params"])
    paper_params, params_note = PAPER_PARAMS.get((family, depth), (None, None))
    paper_macs, macs_note = PAPER_MACS.get((family, depth), (None, None))
    rows.append({
        "family": family,
        "depth": depth,
        "block": model.block,
        "shortcut": model.shortcut,
        "name": model_name(family, depth, extra.get("block")),
        "num_classes": num_classes,
        "input_shape": list(shape),
        "params": params,
        "macs": models.multiply_adds(model, shape),
        "paper_params": None if paper_params is None else round(paper_params),
        "paper_macs": None if paper_macs is None else round(paper_macs),
        "paper_params_note": NOTES.get(params_note),
        "paper_macs_note": NOTES.get(macs_note),
    })
  return rows


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
  header = ("family", "depth", "name", "params", "MACs / image", "paper params", "paper MACs")
  lines = ["| " + " | ".join(header) + " |",
           "|" + "|".join(["---", "---:", "---", "---:", "---:", "---:", "---:"]) + "|"]
  marker = {text: key for key, text in NOTES.items()}
  used = set()
  for r in rows:
    params_note, macs_note = marker.get(r["paper_params_note"]), marker.get(r["paper_macs_note"])
    used |= {params_note, macs_note} - {None}
    paper_params = _human(r["paper_params"], "M", exact=True) + (f" [{params_note}]" if params_note else "")
    paper_macs = _human(r["paper_macs"], exact=True) + (f" [{macs_note}]" if macs_note else "")
    cells = (r["family"], str(r["depth"]), r["name"], _human(r["params"], "M"), _human(r["macs"]),
             paper_params, paper_macs)
    lines.append("| " + " | ".join(cells) + " |")
  lines.append("")
  lines.append("params: all trainable parameters (BN scales and offsets included); MACs: forward "
               "multiply-adds of the convolutions and the dense head per image (He et al.'s \"FLOPs\").")
  lines += [f"[{k}] {NOTES[k]}" for k in sorted(used)]
  return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    rows = table_rows(_FAMILIES.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  if _JSON.value:
    print(json.dumps(rows, indent=1))
  else:
    print(markdown(rows))


if __name__ == "__main__":
  app.run(main)
