"""cnn_depth/models/table.py: the rows of the published nets and their Markdown (the script that
prints them: tests/scripts/test_models_table.py)."""

import json

import pytest

from cnn_depth import models
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
