"""cnn_depth/analysis/speed.py in-process: the grid of configurations, each run in a child that
prints its record, the timing of steps, the bare step, the loop and the kernels of one step, and the
GPU targets (scripts/benchmark.py end to end: tests/scripts/test_benchmark.py)."""

import json
import os
import sys
import time

import numpy as np
import pytest
from helpers.runner import ROOT, has_cuda_plugin

from cnn_depth.analysis import benchmarks, speed

# The fields every record has (tests/scripts/test_benchmark.py checks them in the script's files).
FIELDS = "device what family depth batch dtype stages images_per_sec compile_s peak_mem_gb".split()
FIELDS += ["jax_version", "date"]


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
