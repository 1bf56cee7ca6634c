"""scripts/models_table.py: runs as a script and reports the known counts."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = "scripts/models_table.py"
# Shapes only (jax.eval_shape), so the CPU backend gives the same counts and skips accelerator probing.
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def run_script(*args, check=True):
  return subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, env=ENV, capture_output=True,
                        text=True, timeout=180, check=check)


def test_json_rows():
  out = run_script("--json", "--families=cifar_resnet,imagenet_resnet").stdout
  rows = json.loads(out)
  assert {r["family"] for r in rows} == {"cifar_resnet", "imagenet_resnet"}
  assert [r["depth"] for r in rows] == [20, 32, 44, 56, 110, 1202, 18, 34, 50, 101, 152]
  for r in rows:
    assert {"family", "depth", "num_classes", "params", "macs", "name", "paper_params", "paper_macs",
            "input_shape"} <= set(r)
    assert isinstance(r["params"], int) and isinstance(r["macs"], int)
  by_name = {r["name"]: r for r in rows}
  r20, r18 = by_name["ResNet-20"], by_name["ResNet-18 (ImageNet)"]
  assert (r20["num_classes"], r20["input_shape"]) == (10, [32, 32, 3])
  assert (r18["num_classes"], r18["input_shape"]) == (1000, [224, 224, 3])
  assert r20["params"] == 269722
  assert r18["params"] == 11689512
  assert abs(r18["macs"] - 1.8e9) / 1.8e9 < 0.02
  # Every paper figure we list is within 3% (pre-activation: BN adds ~1.5% over the paper's count).
  for r in rows:
    for ours, paper in ((r["params"], r["paper_params"]), (r["macs"], r["paper_macs"])):
      if paper is not None:
        assert abs(ours - paper) / paper < 0.03, (r["name"], ours, paper)


def test_markdown_and_bad_family():
  out = run_script("--families=imagenet_plain").stdout
  lines = out.splitlines()
  assert lines[0].startswith("| family |")
  assert "| imagenet_plain | 34 | plain-34 (ImageNet) |" in out
  bad = run_script("--families=cifar_resnett", check=False)
  assert bad.returncode != 0 and "cifar_resnett" in bad.stderr
