"""scripts/benchmark.py end to end: the records of the bare step and the whole loop, the kernels of
one step on the local device, and without jax's CUDA plugin one sentence (the library behind it:
tests/analysis/test_speed.py, tests/analysis/test_benchmarks.py)."""

import json
import os

import pytest
from helpers.runner import has_cuda_plugin, run_script

# The fields every record has (tests/analysis/test_speed.py checks them in-process).
FIELDS = "device what family depth batch dtype stages images_per_sec compile_s peak_mem_gb".split()
FIELDS += ["jax_version", "date"]


def run_benchmark(args: str, out_dir, devices=1):
  """scripts/benchmark.py as a user runs it, with `args` (space-separated) and --out_dir."""
  return run_script("scripts/benchmark.py", *args.split(), f"--out_dir={out_dir}", devices=devices)


@pytest.mark.slow
def test_step_and_loop_records(tmp_path):
  args = "--what=step,loop --depths=8 --width=4 --batches=32 --dtypes=float32 --warmup=1 --iters=2"
  args += " --repeats=1 --loop_steps=6 --log_every=3 --eval_every=6 --checkpoint_every=6"
  proc = run_benchmark(args, tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  (jsonl,) = [p for p in os.listdir(tmp_path) if p.endswith(".jsonl")]
  records = [json.loads(line) for line in open(tmp_path / jsonl)]
  assert [r["what"] for r in records] == ["step", "loop"]
  for r in records:
    assert all(k in r for k in FIELDS), set(FIELDS) - set(r)
    net = (r["family"], r["depth"], r["batch"], r["dtype"], r["stages"])
    assert net == ("cifar_resnet", 8, 32, "float32", "scan")
    assert r["images_per_sec"] > 0
  loop = records[1]
  # 5 timed steps of the loop (the first compiles) against the bare step of the same process.
  assert loop["loop_share"] == loop["images_per_sec"] / loop["step_images_per_sec"]
  assert 0 < loop["loop_share"] < 2
  report = open(tmp_path / jsonl.replace(".jsonl", ".md")).read()
  assert "| loop (eval /6) | cifar_resnet | 8 | 32 | float32 | scan |" in report


@pytest.mark.slow
def test_kernels_mode_on_the_local_device(tmp_path):
  """--target_config=local compiles for the device present (the CPU here) and records its count,
  of the bare step or of the loop's program (gather, step with block norms, metric sums)."""
  common = "--what=kernels --target_config=local --depths=8 --width=4 --batches=8 "
  for extra in ("--bn_impls=fused,flax", "--loop_program --log_block_norms"):
    proc = run_benchmark(common + extra, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
  records = [json.loads(l) for l in open(tmp_path / "kernels_cpu.jsonl")]
  programs = [(r["bn_impl"], r["loop_program"]) for r in records]
  assert programs == [("fused", False), ("flax", False), ("fused", True)]
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
  proc = run_benchmark("--what=kernels --depths=8 --width=4 --batches=8", tmp_path, devices=8)
  if not has_cuda_plugin():
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "jax-cuda12-plugin" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)
    return
  assert proc.returncode == 0, proc.stderr[-3000:]
  (record,) = [json.loads(l) for l in open(tmp_path / "kernels_h100_sxm.jsonl")]
  assert record["what"] == "kernels" and record["kernels"] > 0 and "H100" in record["device"]
