"""scripts/make_figures.py on the folder of the shared tiny workdirs (conftest.py) as its runs dir:
the table of both nets and the figures."""

import csv
import os

from helpers.runner import run_script


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_make_figures_script(tiny_workdirs, tmp_path):
  root = os.path.dirname(tiny_workdirs[True])
  proc = run_script("scripts/make_figures.py", f"--runs_dir={root}", f"--out_dir={tmp_path}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  table = rows(tmp_path / "table.csv")
  assert [(r["family"], r["depth"], r["seeds"]) for r in table] == [
    ("cifar_plain", "14", "1"),
    ("cifar_resnet", "14", "1"),
  ]
  assert int(table[0]["params"]) == int(table[1]["params"]) > 0  # plain twin: same count
  assert "| cifar_resnet | 14 |" in (tmp_path / "table.md").read_text()
  for name in ("error_curves.png", "gradient_flow.png"):
    assert os.path.getsize(tmp_path / name) > 5000
