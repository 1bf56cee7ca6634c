"""scripts/benchmark.py and cnn_depth/analysis/speed.py: the records the Speed issue asks for, for
the bare step and the whole loop, and the kernels of one step."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from cnn_depth.analysis import benchmarks, speed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = "device what family depth batch dtype stages images_per_sec compile_s peak_mem_gb".split()
FIELDS += ["jax_version", "date"]
ONE_DEVICE = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")


def run_benchmark(args: str, out_dir, env=None):
  """scripts/benchmark.py as a user runs it, with `args` (space-separated) and --out_dir."""
  return subprocess.run(
    [sys.executable, "scripts/benchmark.py", *args.split(), f"--out_dir={out_dir}"],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )


def has_cuda_plugin():
  import importlib.util

  return (
    importlib.util.find_spec("jax_plugins") is not None
    and importlib.util.find_spec("jax_plugins.xla_cuda12") is not None
  )


def test_step_and_loop_records(tmp_path):
  args = "--what=step,loop --depths=8 --width=4 --batches=32 --dtypes=float32 --warmup=1 --iters=2"
  args += " --repeats=1 --loop_steps=6 --log_every=3 --eval_every=6 --checkpoint_every=6"
  proc = run_benchmark(args, tmp_path, ONE_DEVICE)
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


# The settings scripts/benchmark.py records, as its flags give them (tiny values).
SETTINGS = dict(unroll=1, remat=False, width=4, warmup=1, iters=2, repeat_seconds=1.0, repeats=1)
SETTINGS.update(tag="t", loop_steps=6, log_every=3, eval_every=6, checkpoint_every=6)
SETTINGS.update(target_config="local", log_block_norms=False, loop_program=False, hlo_dir="")
# A one-net grid, as the flags give it (lists of strings).
GRID = dict(what=["step"], families=["cifar_resnet"], depths=["8"], batches=["8"], stages=["scan"])
GRID.update(dtypes=["float32"], bn_impls=["fused"], max_unroll_depth=110, settings=SETTINGS)


def grid(**changes):
  """speed.configurations of GRID with `changes`."""
  return speed.configurations(**{**GRID, **changes})


def test_configurations_nest_skip_deep_unrolls_and_record_their_settings():
  runs = grid(what=["step", "kernels"], depths=["8", "1202"], stages=["scan", "unroll"])
  assert [(r["what"], r["depth"], r["stages"]) for r in runs] == [
    ("step", 8, "scan"),
    ("step", 8, "unroll"),
    ("step", 1202, "scan"),  # unroll above max_unroll_depth is left out
    ("kernels", 8, "scan"),
    ("kernels", 8, "unroll"),
    ("kernels", 1202, "scan"),
  ]
  head = "what family depth batch dtype stages bn_impl unroll remat width warmup iters".split()
  head += "repeat_seconds repeats tag loop_steps log_every eval_every checkpoint_every".split()
  assert list(runs[0]) == head  # the records' fields, in this order (results/benchmarks/*.jsonl)
  assert list(runs[-1]) == head + "target_config log_block_norms loop_program hlo_dir".split()
  assert runs[0]["batch"] == 8 and runs[0]["tag"] == "t"
  with pytest.raises(ValueError, match="--what takes step, loop and/or kernels, got 'stepx'"):
    grid(what=["step", "stepx"])


# A stand-in for scripts/benchmark.py --single: a record from the configuration's JSON, a crash for
# depth 99, and the missing-plugin sentence for depth 98 (what target_device raises).
CHILD = f"""
import json, sys
cfg = json.loads(sys.argv[1])
if cfg["depth"] == 99:
  sys.exit("Traceback: it broke")
if cfg["depth"] == 98:
  sys.exit("error: {speed.NO_PLUGIN} and needs the jax-cuda12-plugin")
print("noise")
print("RECORD " + json.dumps(dict(cfg, device="Fake GPU", jax_version="0", date="d",
  images_per_sec=1000.0, step_ms=8.0, compile_s=1.5, peak_mem_gb=None)))
"""


def test_run_all_runs_each_configuration_in_a_child_and_keeps_its_records(tmp_path, capsys):
  runs = grid(depths=["8", "99", "20"])
  records = speed.run_all(runs, str(tmp_path), [sys.executable, "-c", CHILD])
  assert [r["depth"] for r in records] == [8, 20]
  out = capsys.readouterr().out.splitlines()
  assert out[0] == benchmarks.HEADER.splitlines()[0]
  assert out[2] == "| step | cifar_resnet | 8 | 8 | float32 | scan | 1,000 | 8.00 | 1.5 | - | - |"
  assert out[3] == "| cifar_resnet | 99 | 8 | float32 | scan | failed: ['Traceback: it broke'] |"
  assert sorted(os.listdir(tmp_path)) == ["fake_gpu.jsonl", "fake_gpu.md"]
  assert [json.loads(line) for line in open(tmp_path / "fake_gpu.jsonl")] == records
  assert "## t\n" in open(tmp_path / "fake_gpu.md").read()
  assert speed.run_all(runs[:1], "", [sys.executable, "-c", CHILD]) == records[:1]  # '': nowhere


def test_run_all_stops_at_a_missing_cuda_plugin_and_writes_nothing(tmp_path):
  runs = grid(what=["kernels"], depths=["98", "8"])
  with pytest.raises(speed.NoCudaPlugin, match="jax-cuda12-plugin") as e:
    speed.run_all(runs, str(tmp_path), [sys.executable, "-c", CHILD])
  assert str(e.value).startswith(speed.NO_PLUGIN)
  assert not os.listdir(tmp_path)


def test_time_steps_picks_the_iterations_from_the_warmup_pace():
  calls = []

  def step(state, batch):
    calls.append(state)
    time.sleep(0.002)
    return state + 1, {"loss_sum": np.float32(state)}

  cfg = dict(batch=4, warmup=2, iters=0, repeat_seconds=0.02, repeats=3)
  cfg2, rates, metrics = speed.time_steps(step, 0, None, cfg)
  assert cfg["iters"] == 0 and 5 <= cfg2["iters"] <= 10  # 0.02 s of ~2 ms steps, at least 5
  assert len(calls) == 2 + 3 * cfg2["iters"] and metrics["loss_sum"] == calls[-1]
  assert len(rates) == 3 and all(0 < r < 4 / 0.002 for r in rates)
  assert speed.time_steps(step, 0, None, dict(cfg, iters=1))[0]["iters"] == 1


def test_run_step_in_process():
  """The bare step's record, on the 8 fake CPU devices of the test process."""
  (cfg,) = grid(settings=dict(SETTINGS, iters=0, repeat_seconds=0.01))
  r = speed.run_step(cfg)
  assert all(k in r for k in FIELDS), set(FIELDS) - set(r)
  assert (r["what"], r["device"], r["platform"], r["num_devices"]) == ("step", "cpu", "cpu", 8)
  assert r["iters"] >= 5 and len(r["images_per_sec_all"]) == 1 and r["images_per_sec"] > 0
  assert r["step_ms"] == pytest.approx(1000 * 8 / r["images_per_sec"])
  assert np.isfinite(r["final_loss"]) and r["peak_mem_gb"] is None  # the CPU keeps no peak


def test_run_loop_sets_up_the_training_run_and_its_share(monkeypatch):
  """run_loop's config and arithmetic, with the bare step and the training run stood in for
  (test_step_and_loop_records runs both for real)."""
  from cnn_depth import train

  seen = {}

  def fake_train(config, workdir):
    seen.update(config=config, workdir=workdir, existed=os.path.isdir(workdir))
    return {"timed_steps": 5, "timed_seconds": 0.5, "train_loss": 2.0}

  monkeypatch.setattr(speed, "run_step", lambda cfg: dict(cfg, images_per_sec=200.0))
  monkeypatch.setattr(train, "train_and_evaluate", fake_train)
  (cfg,) = grid(what=["loop"], bn_impls=["flax"])
  r = speed.run_loop(cfg)
  c = seen["config"]
  assert seen["existed"] and not os.path.exists(seen["workdir"])  # a temporary workdir
  run = (c.dataset.name, c.batch_size, c.num_train_steps, c.keep_checkpoints)
  assert run == ("synthetic", 8, 6, 1)
  assert (c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps) == (3, 6, 6)
  assert (c.model.depth, c.model.width, c.model.bn_impl, c.model.dtype) == (8, 4, "flax", "float32")
  assert r["what"] == "loop" and r["images_per_sec"] == 5 * 8 / 0.5 == r["images_per_sec_all"][0]
  assert (r["step_images_per_sec"], r["loop_share"], r["final_loss"]) == (200.0, 0.4, 2.0)
  assert r["step_ms"] == 100.0 and r["loop_wall_s"] >= 0


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
  common = "--what=kernels --target_config=local --depths=8 --width=4 --batches=8 "
  for extra in ("--bn_impls=fused,flax", "--loop_program --log_block_norms"):
    proc = run_benchmark(common + extra, tmp_path, ONE_DEVICE)
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
  proc = run_benchmark("--what=kernels --depths=8 --width=4 --batches=8", tmp_path)
  if not has_cuda_plugin():
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "jax-cuda12-plugin" in proc.stderr and "Traceback" not in proc.stderr
    assert not os.listdir(tmp_path)
    return
  assert proc.returncode == 0, proc.stderr[-3000:]
  (record,) = [json.loads(l) for l in open(tmp_path / "kernels_h100_sxm.jsonl")]
  assert record["what"] == "kernels" and record["kernels"] > 0 and "H100" in record["device"]


def test_run_kernels_in_process_of_the_step_and_of_the_loop_program(tmp_path):
  """speed.run_kernels for the device present (the CPU here): the loop's program (gather, step
  with block norms, metric sums) launches more than the bare step; --hlo_dir keeps the HLO."""
  (step,) = grid(what=["kernels"], settings=dict(SETTINGS, hlo_dir=str(tmp_path)))
  loop = dict(step, loop_program=True, log_block_norms=True)
  records = [speed.run_kernels(cfg) for cfg in (step, loop)]
  for r in records:
    assert (r["what"], r["device"], r["target"]) == ("kernels", "cpu", "cpu")
    assert r["kernels"] == sum(r["kernels_by_kind"].values()) > 0 and r["loop_syncs"] > 0
  assert records[1]["kernels"] > records[0]["kernels"]
  names = [f"cifar_resnet8_b8_float32_scan{norms}.hlo.txt" for norms in ("", "_norms")]
  assert sorted(os.listdir(tmp_path)) == names


def test_a_gpu_target_needs_the_cuda_plugin_or_gives_its_device():
  import jax

  target = os.path.join(ROOT, "benchmarks", "gpu_specs", "h100_sxm.txtpb")
  platforms = jax.config.jax_platforms  # target_device sets it to cpu: the host compiles
  try:
    if not has_cuda_plugin():
      with pytest.raises(speed.NoCudaPlugin, match="jax-cuda12-plugin and jax-cuda12-pjrt"):
        speed.target_device(target)
    else:
      assert "H100" in speed.target_device(target).device_kind
  finally:
    jax.config.update("jax_platforms", platforms)


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
