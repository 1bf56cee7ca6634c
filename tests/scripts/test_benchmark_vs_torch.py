"""scripts/benchmark_vs_torch.py: one sentence without PyTorch, the two step servers it times in
turns (cnn_depth/analysis/benchmarks.py's Server and alternate, cnn_depth's own step on both sides),
and where PyTorch is installed a record against the PyTorch reference."""

import json
import os
import subprocess
import sys

import pytest
from helpers.runner import ROOT, run_script

from cnn_depth.analysis import benchmarks

VS_TORCH = os.path.join(ROOT, "scripts", "benchmark_vs_torch.py")
DIGITS_SPEC = dict(depth=8, image_size=8, in_channels=1, classes=10, batch=16, warmup=1)


def test_vs_torch_without_pytorch_says_so_in_one_sentence(tmp_path):
  r = run_script(VS_TORCH, "--torch_python=/nonexistent/python", f"--out_dir={tmp_path}")
  assert r.returncode == 2
  assert r.stderr.strip().splitlines() == [
    "error: the PyTorch side needs torch: pip install -e '.[torch]', or pass "
    "--torch_python=/path/to/python of an environment that has it"
  ]
  assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_two_real_step_servers_are_timed_in_turns():
  """The protocol --vs_torch's sides speak, with cnn_depth's own step on both sides."""
  sides = {
    name: benchmarks.Server(
      [sys.executable, VS_TORCH, f"--serve={json.dumps(dict(DIGITS_SPEC, family=family))}"]
    )
    for name, family in (("resnet", "cifar_resnet"), ("plain", "cifar_plain"))
  }
  try:
    assert sides["resnet"].ready["params"] == sides["plain"].ready["params"]  # same layers
    assert sides["resnet"].ready["compiler_options"] is not None  # the CPU options are used
    rates = benchmarks.alternate(sides, batch=16, warmup=1, repeats=2, seconds=0.05)
  finally:
    for side in sides.values():
      side.close()
  assert {k: len(v) for k, v in rates.items()} == {"resnet": 2, "plain": 2}
  summary = benchmarks.ratio_summary(rates["resnet"], rates["plain"])
  assert summary["ratio_min"] <= summary["ratio_max"]
  assert summary["ratio"] * summary["torch_images_per_sec"] == pytest.approx(
    summary["images_per_sec"]
  )
  assert all(side.proc.returncode == 0 for side in sides.values())


def _torch_python():
  """An interpreter with PyTorch: $CNN_DEPTH_TORCH_PYTHON, or this one if it has torch."""
  candidate = os.environ.get("CNN_DEPTH_TORCH_PYTHON", sys.executable)
  has = subprocess.run([candidate, "-c", "import torch"], capture_output=True).returncode == 0
  return candidate if has else None


def test_vs_torch_record_against_the_pytorch_reference(tmp_path):
  python = _torch_python()
  if python is None:
    pytest.skip("no PyTorch here (set CNN_DEPTH_TORCH_PYTHON to a python that has it)")
  r = run_script(
    VS_TORCH, f"--torch_python={python}", "--inputs=digits", "--depths=8",
    "--families=cifar_resnet,cifar_plain", "--batch=16", "--repeats=2",
    "--repeat_seconds=0.05", f"--out_dir={tmp_path}", "--tag=test", devices=8,
  )  # fmt: skip
  assert r.returncode == 0, r.stderr[-2000:]
  records = [json.loads(x) for x in open(tmp_path / "cpu_vs_torch.jsonl")]
  assert [(x["family"], x["params"]) for x in records] == [
    ("cifar_resnet", records[0]["params"]),
    ("cifar_plain", records[0]["params"]),
  ]
  for x in records:
    assert len(x["images_per_sec_all"]) == len(x["torch_images_per_sec_all"]) == 2
    assert x["torch_version"] and x["ratio"] > 0
  report = open(tmp_path / "cpu_vs_torch.md").read()
  assert "| ResNet-8 | digits | 16 |" in report and "| plain-8 | digits | 16 |" in report
