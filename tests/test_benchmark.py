"""scripts/benchmark.py: the records the Speed issue asks for, for the bare step and the whole
loop."""

import json
import os
import subprocess
import sys

import pytest

from cnn_depth.analysis import benchmarks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = (
  "device",
  "what",
  "family",
  "depth",
  "batch",
  "dtype",
  "stages",
  "images_per_sec",
  "compile_s",
  "peak_mem_gb",
  "jax_version",
  "date",
)


def test_step_and_loop_records(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run(
    [
      sys.executable,
      "scripts/benchmark.py",
      "--what=step,loop",
      "--depths=8",
      "--width=4",
      "--batches=32",
      "--dtypes=float32",
      "--warmup=1",
      "--iters=2",
      "--repeats=1",
      "--loop_steps=6",
      "--log_every=3",
      "--eval_every=6",
      "--checkpoint_every=6",
      f"--out_dir={tmp_path}",
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  (jsonl,) = [p for p in os.listdir(tmp_path) if p.endswith(".jsonl")]
  records = [json.loads(line) for line in open(tmp_path / jsonl)]
  assert [r["what"] for r in records] == ["step", "loop"]
  for r in records:
    assert all(k in r for k in FIELDS), set(FIELDS) - set(r)
    assert (r["family"], r["depth"], r["batch"], r["dtype"], r["stages"]) == (
      "cifar_resnet",
      8,
      32,
      "float32",
      "scan",
    )
    assert r["images_per_sec"] > 0
  loop = records[1]
  # 5 timed steps of the loop (the first compiles) against the bare step of the same process.
  assert loop["loop_share"] == loop["images_per_sec"] / loop["step_images_per_sec"]
  assert 0 < loop["loop_share"] < 2
  report = open(tmp_path / jsonl.replace(".jsonl", ".md")).read()
  assert "| loop (eval /6) | cifar_resnet | 8 | 32 | float32 | scan |" in report


HLO = (
  """HloModule jit_step, entry_computation_layout={(f32[8]{0})->f32[8]{0}}

%fused_add (p: f32[8]) -> f32[8] {
  %p = f32[8]{0} parameter(0)
  ROOT %add = f32[8]{0} add(%p, %p)
}

%body (arg: (s32[], f32[8])) -> (s32[], f32[8]) {
  %arg = (s32[], f32[8]{0}) parameter(0)
  %i = s32[] get-tuple-element(%arg), index=0
  %x = f32[8]{0} get-tuple-element(%arg), index=1
  %f1 = f32[8]{0} fusion(%x), kind=kLoop, calls=%fused_add
  %f2 = (f32[8]{0}, f32[]) fusion(%f1), kind=kInput, calls=%fused_add
  %g = f32[8]{0} get-tuple-element(%f2), index=0
  ROOT %t = (s32[], f32[8]{0}) tuple(%i, %g)
}

%cond (arg.1: (s32[], f32[8])) -> pred[] {
  %arg.1 = (s32[], f32[8]{0}) parameter(0)
  %j = s32[] get-tuple-element(%arg.1), index=0
  %c = s32[] constant(3)
  ROOT %lt = pred[] compare(%j, %c), direction=LT
}

ENTRY %main (x.1: f32[8]) -> f32[8] {
  %x.1 = f32[8]{0} parameter(0)
  %conv = (f32[8]{0}, u8[0]{0}) custom-call(%x.1), custom_call_target="__cudnn$convForward"
  %y = f32[8]{0} get-tuple-element(%conv), index=0
  %z = f32[8]{0} copy(%y)
  %b = f32[8]{0} bitcast(%z)
  %zero = s32[] constant(0)
  %init = (s32[], f32[8]{0}) tuple(%zero, %b)
  %w = (s32[], f32[8]{0}) while(%init), condition=%cond, body=%body, """
  """backend_config={"known_trip_count":{"n":"3"}}
  ROOT %out = f32[8]{0} get-tuple-element(%w), index=1
}
"""
)


def test_count_kernels_of_an_hlo_module():
  counts = benchmarks.count_kernels(HLO)
  # conv + copy in the entry, 2 fusions x 3 iterations; 4 condition evaluations sync the host
  assert counts == {
    "kernels": 8,
    "loop_syncs": 4,
    "kernels_by_kind": {"conv": 1, "copy": 1, "fusion_kLoop": 3, "fusion_kInput": 3},
  }


def test_count_kernels_of_a_compiled_scanned_step():
  """The parser reads XLA's real output: the CPU-compiled train step of a scanned ResNet-20."""
  import re

  import jax

  from cnn_depth import models, optim, steps
  from cnn_depth import state as state_lib

  model = models.cifar_resnet(20, width=4, unroll=1)
  tx = optim.sgd(0.1)
  state = state_lib.create_train_state(model, tx, jax.random.key(0), (8, 8, 3))
  batch = {
    "image": jax.numpy.zeros((4, 8, 8, 3), jax.numpy.uint8),
    "label": jax.numpy.zeros((4,), jax.numpy.int32),
  }
  text = (
    steps.compile_train_step(model, tx, (0, 0, 0), (1, 1, 1))
    .lower(state, batch)
    .compile()
    .as_text()
  )
  counts = benchmarks.count_kernels(text)
  trips = [int(n) for n in re.findall(r' while\(.*"known_trip_count":\{"n":"(\d+)"', text)]
  # the scans of 2 blocks, forward and backward in each of the 3 stages (XLA:CPU also rolls the
  # random-bits hash into loops of 5)
  assert trips.count(2) == 6
  assert counts["loop_syncs"] == sum(n + 1 for n in trips)
  assert counts["kernels"] > 50 and sum(counts["kernels_by_kind"].values()) == counts["kernels"]


def test_kernels_mode_on_the_local_device(tmp_path):
  """--target_config=local compiles for the device present (the CPU here) and records its count,
  of the bare step or of the loop's program (gather, step with block norms, metric sums)."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  common = [
    sys.executable,
    "scripts/benchmark.py",
    "--what=kernels",
    "--target_config=local",
    "--depths=8",
    "--width=4",
    "--batches=8",
    f"--out_dir={tmp_path}",
  ]
  for extra in (["--bn_impls=fused,flax"], ["--loop_program", "--log_block_norms"]):
    proc = subprocess.run(
      common + extra, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
  records = [json.loads(l) for l in open(tmp_path / "kernels_cpu.jsonl")]
  assert [(r["bn_impl"], r["loop_program"]) for r in records] == [
    ("fused", False),
    ("flax", False),
    ("fused", True),
  ]
  for r in records:
    assert r["what"] == "kernels" and r["device"] == "cpu" and r["kernels"] > 0
    assert r["kernels"] == sum(r["kernels_by_kind"].values())
  assert records[2]["kernels"] > records[0]["kernels"]  # the loop's program does more than the step
  report = open(tmp_path / "kernels_cpu.md").read()
  assert "# Kernels per train step: cpu" in report and "compiled for the device itself" in report
  assert "| step | cifar_resnet | 8 | 8 | bfloat16 | scan flax-bn |" in report
  assert "| loop | cifar_resnet | 8 | 8 | bfloat16 | scan | yes |" in report


def test_kernels_mode_needs_the_cuda_plugin_or_counts(tmp_path):
  """Without the jax CUDA plugin: exit 2 and one line saying what to install. With it: records."""
  import importlib.util

  has_plugin = (
    importlib.util.find_spec("jax_plugins") is not None
    and importlib.util.find_spec("jax_plugins.xla_cuda12") is not None
  )
  proc = subprocess.run(
    [
      sys.executable,
      "scripts/benchmark.py",
      "--what=kernels",
      "--depths=8",
      "--width=4",
      "--batches=8",
      f"--out_dir={tmp_path}",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  if not has_plugin:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "jax-cuda12-plugin" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)
    return
  assert proc.returncode == 0, proc.stderr[-3000:]
  (record,) = [json.loads(l) for l in open(tmp_path / "kernels_h100_sxm.jsonl")]
  assert record["what"] == "kernels" and record["kernels"] > 0 and "H100" in record["device"]


VS_TORCH = os.path.join(ROOT, "scripts", "benchmark_vs_torch.py")
DIGITS_SPEC = dict(depth=8, image_size=8, in_channels=1, classes=10, batch=16, warmup=1)


def test_vs_torch_without_pytorch_says_so_in_one_sentence(tmp_path):
  r = subprocess.run(
    [sys.executable, VS_TORCH, "--torch_python=/nonexistent/python", f"--out_dir={tmp_path}"],
    capture_output=True,
    text=True,
  )
  assert r.returncode == 2
  assert r.stderr.strip().splitlines() == [
    "error: the PyTorch side needs torch: pip install -e '.[torch]', or pass "
    "--torch_python=/path/to/python of an environment that has it"
  ]
  assert not os.listdir(tmp_path)


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
  r = subprocess.run(
    [sys.executable, VS_TORCH, f"--torch_python={python}", "--inputs=digits", "--depths=8"]
    + ["--families=cifar_resnet,cifar_plain", "--batch=16", "--repeats=2"]
    + ["--repeat_seconds=0.05", f"--out_dir={tmp_path}", "--tag=test"],
    capture_output=True,
    text=True,
  )
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
