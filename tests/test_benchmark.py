"""scripts/benchmark.py: the records the Speed issue asks for, for the bare step and the whole loop."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ("device", "what", "family", "depth", "batch", "dtype", "stages", "images_per_sec",
          "compile_s", "peak_mem_gb", "jax_version", "date")


def test_step_and_loop_records(tmp_path):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  proc = subprocess.run(
      [sys.executable, "scripts/benchmark.py", "--what=step,loop", "--depths=8", "--width=4",
       "--batches=32", "--dtypes=float32", "--warmup=1", "--iters=2", "--repeats=1", "--loop_steps=6",
       "--log_every=3", "--eval_every=6", "--checkpoint_every=6", f"--out_dir={tmp_path}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  (jsonl,) = [p for p in os.listdir(tmp_path) if p.endswith(".jsonl")]
  records = [json.loads(line) for line in open(tmp_path / jsonl)]
  assert [r["what"] for r in records] == ["step", "loop"]
  for r in records:
    assert all(k in r for k in FIELDS), set(FIELDS) - set(r)
    assert (r["family"], r["depth"], r["batch"], r["dtype"], r["stages"]) == (
        "cifar_resnet", 8, 32, "float32", "scan")
    assert r["images_per_sec"] > 0
  loop = records[1]
  # 5 timed steps of the loop (the first compiles) against the bare step of the same process.
  assert loop["loop_share"] == loop["images_per_sec"] / loop["step_images_per_sec"]
  assert 0 < loop["loop_share"] < 2
  report = open(tmp_path / jsonl.replace(".jsonl", ".md")).read()
  assert "| loop (eval /6) | cifar_resnet | 8 | 32 | float32 | scan |" in report
