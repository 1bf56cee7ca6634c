"""Print the parameter and multiply-add counts of every model family and depth, beside the papers'
figures.

    python scripts/models_table.py                      # Markdown table, all families
    python scripts/models_table.py --families=cifar_resnet,imagenet_resnet
    python scripts/models_table.py --json               # the same rows as a JSON list

Counts come from `cnn_depth.models` (`init_shapes`, `count_params`, `multiply_adds`), all through
`jax.eval_shape`: nothing is computed, so even ResNet-1202 and ResNet-152 take seconds on a CPU.
`params` is every trainable parameter (convolutions, dense head, BN scales and offsets; BN running
statistics are not parameters); `macs` is forward multiply-adds per image of the convolutions and
the dense head, which is what He et al. call "FLOPs".

Every net is counted on the input its family was designed for (`Family.input_shape` and
`num_classes` in the registry): LeNet-5 on 32x32x1 (10 classes), the CIFAR families on CIFAR-10,
the ImageNet ones and NiN-12 on ImageNet. The GoogLeNet rows without 1x1 reductions and with the
auxiliary heads show what those options cost.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from absl import app, flags

from cnn_depth import models

_JSON = flags.DEFINE_bool(
  "json", False, "Print the rows as a JSON list instead of a Markdown table."
)
_FAMILIES = flags.DEFINE_list(
  "families",
  None,
  f"Comma-separated families to list (default: all of {', '.join(models.FAMILIES)}).",
)

CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
VGG_DEPTHS = (11, 13, 16, 19)
IMAGENET = ((224, 224, 3), 1000)  # NiN-12's input, where its family's (NiN-9's) is CIFAR-10

# (family, depth, extra config fields) for every row, in table order.
SPECS: tuple[tuple[str, int, dict], ...] = (
  *(("cifar_resnet", d, {}) for d in CIFAR_DEPTHS),
  *(("cifar_plain", d, {}) for d in CIFAR_DEPTHS),
  ("cifar_preact", 110, {"block": "basic"}),
  ("cifar_preact", 164, {"block": "bottleneck"}),
  ("cifar_preact", 1001, {"block": "bottleneck"}),
  *(("imagenet_resnet", d, {}) for d in (18, 34, 50, 101, 152)),
  *(("imagenet_plain", d, {}) for d in (18, 34)),
  ("lenet5", 5, {}),
  ("alexnet", 8, {}),
  *(
    (family, d, {}) for family in ("vgg", "vgg_bn", "cifar_vgg", "cifar_vgg_bn") for d in VGG_DEPTHS
  ),
  ("nin", 9, {}),
  ("nin", 12, {}),
  ("googlenet", 22, {}),
  ("googlenet", 22, {"reduce": False}),
  ("googlenet", 22, {"aux_heads": True}),
  ("cifar_densenet", 40, {}),
  ("cifar_densenet", 100, {}),
  ("cifar_densenet_bc", 100, {}),
  ("cifar_densenet_bc", 190, {}),
  ("imagenet_densenet", 121, {}),
)
# Options that make a row a variant of the published net: such rows get no paper figure.
VARIANT_OPTIONS = ("reduce", "aux_heads")

# Footnotes on where a reported figure comes from; keys are the markers printed next to it.
NOTES = {
  "a": 'He et al. 2016 ("Deep residual learning"), Table 6 (CIFAR-10, option A shortcuts).',
  "b": "Commonly cited figure for ResNet-20; not in the paper's table.",
  "c": 'He et al. 2016b ("Identity mappings"): conv/dense weights only; BN adds about 1.5%, '
  "which our count includes.",
  "d": 'He et al. 2016, Table 1 "FLOPs" (multiply-adds), quoted for the plain nets too.',
  "e": "Widely used reference count (torchvision); the paper does not list parameters.",
  "f": "LeCun et al. 1998, §II.B: 60,000 trainable parameters, the RBF output layer excluded "
  "(ours: exactly 60,000, plus an 850-parameter dense output layer).",
  "g": 'Krizhevsky et al. 2012: "60 million parameters" for the two-GPU original; ours is '
  "torchvision's single-stream layout.",
  "h": "Simonyan & Zisserman 2015, Table 2 (without BN).",
  "i": "Szegedy et al. 2015, Table 1 totals. Its K is 1024 (module 3a's 163,328 weights are listed "
  "as 159K) and its conv1 row (2.7K, 34M ops) undercounts the 7x7 convolution (9.4K, 118M). Its "
  "module rows agree with ours within 1% in ops but 5a (51.1M vs 54M), and within 2% in "
  "parameters but 4c (497.5K vs 463K) and 5a (1018K vs 1072K).",
  "j": "Huang et al. 2017, Table 2 (k = 12; BC L=190: k = 40), to the one decimal it gives.",
}

# (family, depth) -> (paper params, marker) and (paper multiply-adds, marker).
PAPER_PARAMS = {
  **{
    ("cifar_resnet", d): (p, "a")
    for d, p in (
      (20, 0.27e6),
      (32, 0.46e6),
      (44, 0.66e6),
      (56, 0.85e6),
      (110, 1.7e6),
      (1202, 19.4e6),
    )
  },
  ("cifar_preact", 164): (1.7e6, "c"),
  ("cifar_preact", 1001): (10.2e6, "c"),
  ("imagenet_resnet", 18): (11.7e6, "e"),
  ("imagenet_resnet", 34): (21.8e6, "e"),
  ("imagenet_resnet", 50): (25.6e6, "e"),
  ("lenet5", 5): (60e3, "f"),
  ("alexnet", 8): (60e6, "g"),
  **{
    (family, d): (p, "h")
    for family in ("vgg", "vgg_bn")
    for d, p in ((11, 133e6), (13, 133e6), (16, 138e6), (19, 144e6))
  },
  ("googlenet", 22): (6.8e6, "i"),
  ("cifar_densenet", 40): (1.0e6, "j"),
  ("cifar_densenet", 100): (7.0e6, "j"),
  ("cifar_densenet_bc", 100): (0.8e6, "j"),
  ("cifar_densenet_bc", 190): (25.6e6, "j"),
  ("imagenet_densenet", 121): (7.978856e6, "e"),
}
PAPER_MACS = {
  ("cifar_resnet", 20): (41e6, "b"),
  **{
    ("imagenet_resnet", d): (m, "d")
    for d, m in ((18, 1.8e9), (34, 3.6e9), (50, 3.8e9), (101, 7.6e9), (152, 11.3e9))
  },
  ("imagenet_plain", 18): (1.8e9, "d"),
  ("imagenet_plain", 34): (3.6e9, "d"),
  ("googlenet", 22): (1.5e9, "i"),
}


def input_of(family: str, depth: int) -> tuple[tuple[int, int, int], int]:
  """(image shape, classes) of a row: the input the family was designed for."""
  if (family, depth) == ("nin", 12):
    return IMAGENET
  entry = models.registry.get(family)
  return entry.input_shape, entry.num_classes


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
    shape, num_classes = input_of(family, depth)
    model = models.build_model(
      {"family": family, "depth": depth, "num_classes": num_classes, **extra}
    )
    params = models.count_params(models.init_shapes(model, shape)["params"])
    published = not set(extra) & set(VARIANT_OPTIONS)
    none = (None, None)
    paper_params, params_note = PAPER_PARAMS.get((family, depth), none) if published else none
    paper_macs, macs_note = PAPER_MACS.get((family, depth), none) if published else none
    resnet = isinstance(model, models.ResNet)  # the rows' block and shortcut columns
    rows.append(
      {
        "family": family,
        "depth": depth,
        "block": model.block if resnet else None,
        "shortcut": model.shortcut if resnet else None,
        "options": {k: v for k, v in extra.items() if k in VARIANT_OPTIONS},
        "name": models.registry.get(family).net_label(depth, extra),
        "num_classes": num_classes,
        "input_shape": list(shape),
        "params": params,
        "macs": models.multiply_adds(model, shape),
        "paper_params": None if paper_params is None else round(paper_params),
        "paper_macs": None if paper_macs is None else round(paper_macs),
        "paper_params_note": NOTES.get(params_note),
        "paper_macs_note": NOTES.get(macs_note),
      }
    )
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
  lines = [
    "| " + " | ".join(header) + " |",
    "|" + "|".join(["---", "---:", "---", "---:", "---:", "---:", "---:"]) + "|",
  ]
  marker = {text: key for key, text in NOTES.items()}
  used = set()
  for r in rows:
    params_note, macs_note = marker.get(r["paper_params_note"]), marker.get(r["paper_macs_note"])
    used |= {params_note, macs_note} - {None}
    paper_params = _human(r["paper_params"], "M", exact=True) + (
      f" [{params_note}]" if params_note else ""
    )
    paper_macs = _human(r["paper_macs"], exact=True) + (f" [{macs_note}]" if macs_note else "")
    cells = (
      r["family"],
      str(r["depth"]),
      r["name"],
      _human(r["params"], "M"),
      _human(r["macs"]),
      paper_params,
      paper_macs,
    )
    lines.append("| " + " | ".join(cells) + " |")
  lines.append("")
  lines.append(
    "params: all trainable parameters (BN scales and offsets included); MACs: forward "
    'multiply-adds of the convolutions and the dense head per image (He et al.\'s "FLOPs").'
  )
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
