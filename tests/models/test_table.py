"""cnn_depth/models/table.py: the rows of the published nets and their Markdown (the script that
prints them: tests/scripts/test_models_table.py)."""

import json

import jax
import pytest

from cnn_depth import models, workdir
from cnn_depth.models import table


def test_rows_in_process():
  """The library's rows: ResNet-20 counted on CIFAR-10 beside Table 6's 0.27M, LeNet-5 on 32x32x1,
  in registry order."""
  family = models.FAMILIES["cifar_resnet"]
  r20 = table.row(family, family.published[0])
  assert (r20["name"], r20["params"], r20["paper_params"], r20["paper_macs"]) == (
    "ResNet-20",
    269722,
    270000,
    41_000_000,
  )
  assert (r20["block"], r20["shortcut"], r20["input_shape"], r20["num_classes"]) == (
    "basic",
    "A",
    [32, 32, 3],
    10,
  )
  assert abs(r20["macs"] - 41e6) / 41e6 < 0.03 and "Table 6" in r20["paper_params_note"]
  rows = table.table_rows(["lenet5"])
  assert [(r["name"], r["input_shape"], r["block"]) for r in rows] == [
    ("LeNet-5", [32, 32, 1], None)
  ]
  assert json.loads(table.render(["lenet5"], as_json=True)) == rows
  assert table.render(["lenet5"]) == table.markdown(rows)


def test_unknown_family_in_process():
  with pytest.raises(ValueError, match=r"unknown model families \['cifar_resnett'\]; known: cifar"):
    table.table_rows(["cifar_resnet", "cifar_resnett"])


def test_markdown_figures_and_footnotes():
  """Our counts to three significant digits, the papers' at their own precision, each source a
  footnote marker in order of first use."""
  keys = ("depth", "params", "macs", "paper_params", "paper_macs")
  keys += ("paper_params_note", "paper_macs_note")
  rows = [
    dict(zip(keys, (20, 269722, 40551040, 270000, 41_000_000, "Paper A", "Paper B"))),
    dict(zip(keys, (56, 123_456_789, 1814073344, 850000, None, "Paper A", None))),
  ]
  rows = [dict(r, family="f", name=f"Net-{r['depth']}") for r in rows]
  assert table.markdown(rows).splitlines() == [
    "| family | depth | name | params | MACs / image | paper params | paper MACs |",
    "|---|---:|---|---:|---:|---:|---:|",
    "| f | 20 | Net-20 | 0.270M | 40.6M | 0.27M [a] | 41M [b] |",
    "| f | 56 | Net-56 | 123M | 1.81G | 0.85M [a] |  |",
    "",
    "params: all trainable parameters (BN scales and offsets included); MACs: forward "
    'multiply-adds of the convolutions and the dense head per image (He et al.\'s "FLOPs").',
    "[a] Paper A",
    "[b] Paper B",
  ]


# --- the fixes for depth -------------------------------------------------------------------------


def test_the_fixes_table_lists_every_option_of_every_registry():
  from cnn_depth import optim
  from cnn_depth.models import activations, branches, inits, shaping

  rows = table.fix_rows()
  values = {}
  for r in rows:
    values.setdefault(r["field"], []).append(r["value"])
  assert values == {
    "model.norm": ["bn", "none", "ws"],
    "model.init": list(inits.INITS),
    "model.activation": list(activations.ACTIVATIONS),
    "model.transform": ["none", *shaping.METHODS],
    "model.branch": list(branches.BRANCHES),
    "grad_clip": list(optim.GRAD_CLIPS),
    "scalar_lr_scale": [0.1],
  }
  by = {(r["field"], r["value"]): r for r in rows}
  assert [k for k, r in by.items() if r["default"]] == [
    ("model.norm", "bn"),
    ("model.init", "he"),
    ("model.activation", "relu"),
    ("model.transform", "none"),
    ("model.branch", "identity"),
    ("grad_clip", "none"),
  ]
  assert by["model.branch", "nf"]["parameters"] == {"model.nf_alpha": 0.2}
  assert by["model.transform", "tat"]["parameters"] == {"model.tat_eta": 0.9, "model.tat_tau": 0.3}
  assert "Zhang et al. 2019" in by["model.branch", "fixup"]["does"]
  assert by["model.activation", "relu"]["does"] == "relu, shaped by neither DKS nor TAT"


def test_every_option_of_the_fixes_table_is_a_value_its_field_accepts():
  """Each row's override, alone on the base config, passes the command line's parser and checks
  (a combination's rules are the model's: tests/models/test_branches.py)."""
  from cnn_depth import config as config_lib

  base = config_lib.base()
  for r in table.fix_rows():
    c = config_lib.parse_overrides(base, [f"--config.{r['field']}={r['value']}"])
    assert workdir.lookup(c, r["field"]) == r["value"]
    for field, default in r["parameters"].items():
      assert workdir.lookup(base, field) == default


def test_a_registered_initialiser_appears_in_the_fixes_table_unasked():
  from cnn_depth.models import inits

  toy = inits.Init("toy_zeros", lambda sigma_w2: jax.nn.initializers.zeros, "zeros (nobody 2024)")
  inits.register(toy)
  try:
    rows = [r for r in table.fix_rows() if r["value"] == "toy_zeros"]
  finally:
    del inits.INITS["toy_zeros"]
  assert rows == [
    dict(
      field="model.init",
      value="toy_zeros",
      does="zeros (nobody 2024)",
      default=False,
      parameters={"model.sigma_w2": 2.0},
    )
  ]


def test_fixes_markdown():
  rows = [
    dict(field="model.branch", value="identity", does="skip + f(x)", default=True, parameters={}),
    dict(
      field="grad_clip", value="agc", does="clips", default=False, parameters={"clip_lambda": 0.01}
    ),
  ]
  assert table.fixes_markdown(rows).splitlines()[:4] == [
    "| option | what it does | reads (default) |",
    "|---|---|---|",
    "| `--config.model.branch=identity` (default) | skip + f(x) |  |",
    "| `--config.grad_clip=agc` | clips | `clip_lambda` (0.01) |",
  ]
