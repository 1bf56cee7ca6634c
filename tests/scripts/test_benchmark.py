"""scripts/benchmark.py end to end: the records of the bare step and the whole loop, the kernels of
one step on the local device, and without jax's CUDA plugin one sentence (the library behind it:
tests/analysis/test_speed.py, tests/analysis/test_benchmarks.py). Its flags for the fixes for
depth (--fixes, --model_options, --one_process) are tested in-process through the functions they
call, and end to end where the script itself refuses."""

import json
import os

import pytest
from helpers.runner import has_cuda_plugin, run_script

from cnn_depth.analysis import benchmarks, speed
from cnn_depth.models import fixes

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


@pytest.mark.slow
def test_fixes_with_model_options_in_one_process(tmp_path):
  """--fixes and --model_options end to end, both configurations compiled in the script's own
  process (--one_process) for the CPU: a record each, naming its preset and options, and its row."""
  args = "--what=kernels --target_config=local --fixes=fixup,skipinit --model_options=shortcut=B"
  proc = run_benchmark(args + " --depths=8 --width=4 --batches=8 --one_process", tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  records = [json.loads(line) for line in open(tmp_path / "kernels_cpu.jsonl")]
  assert [(r["fix"], r["model_options"]) for r in records] == [
    ("fixup", {"shortcut": "B"}),
    ("skipinit", {"shortcut": "B"}),
  ]
  assert records[0]["fix_config"]["train"] == {"scalar_lr_scale": 0.1}
  assert all(r["kernels"] > 0 for r in records)
  report = open(tmp_path / "kernels_cpu.md").read()
  assert "| step | cifar_resnet fixup shortcut=B | 8 | 8 | bfloat16 | scan | no |" in report


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


# --- the fixes for depth: --fixes, --model_options, --one_process ---------------------------------

# A one-net grid as scripts/benchmark.py's flags give it (its twin: tests/analysis/test_speed.py).
SETTINGS = dict(unroll=1, remat=False, width=4, warmup=1, iters=2, repeat_seconds=1.0, repeats=1)
SETTINGS.update(tag="", loop_steps=6, log_every=3, eval_every=6, checkpoint_every=6)
SETTINGS.update(target_config="local", log_block_norms=False, loop_program=False, hlo_dir="")
GRID = dict(what=["kernels"], families=["cifar_resnet"], depths=["20"], batches=["8"])
GRID.update(dtypes=["float32"], stages=["scan"], bn_impls=["fused"], max_unroll_depth=110)


def grid(**changes):
  return speed.configurations(**{**GRID, "settings": SETTINGS, **changes})


def test_model_options_are_typed_and_checked_as_config_overrides():
  options = speed.parse_model_options("norm=none,sigma_w2=1,zero_init_last=false,block=basic")
  assert options == dict(norm="none", sigma_w2=1.0, zero_init_last=False, block="basic")
  assert type(options["sigma_w2"]) is float and speed.parse_model_options("") == {}


@pytest.mark.parametrize(
  "spec,match",
  [
    ("depth=56", "--model_options cannot set depth: the grid's --depths sets it"),
    ("bn_impl=flax", "cannot set bn_impl: the grid's --bn_impls sets it"),
    ("normx=none", "--model_options takes field=value of config.model's fields, got 'normx=none'"),
    ("norm", "takes field=value of config.model's fields, got 'norm'; fields: .*branch"),
    ("sigma_w2=big", "--model_options sigma_w2='big' must be a float, as its default 2.0"),
    ("norm=group", "--model_options norm='group' cannot be used: it must be 'bn', 'none' or 'ws'"),
    ("sigma_w2=-1", "sigma_w2=-1.0 cannot be used: it must be a finite number > 0"),
  ],
)
def test_model_options_refused_in_one_sentence(spec, match):
  with pytest.raises(ValueError, match=match) as e:
    speed.parse_model_options(spec)
  assert "\n" not in str(e.value)


def test_fixes_replace_the_families_and_are_recorded():
  """Each preset's net at its loop depth (ResNet-20, bottlenecks 29) or at --depths, its name and
  fields in the record, and --model_options on top; the table names both."""
  runs = grid(fixes=["fixup", "nf_bottleneck"], depths=None)
  assert [(r["family"], r["depth"], r["fix"]) for r in runs] == [
    ("cifar_resnet", 20, "fixup"),
    ("cifar_preact", 29, "nf_bottleneck"),
  ]
  preset = fixes.PRESETS["fixup"]
  model = {k: v for k, v in preset.model.items() if k not in ("family", "depth")}
  assert runs[0]["fix_config"] == {"model": model, "train": {"scalar_lr_scale": 0.1}}
  assert speed.net_fields(runs[0]) == {**speed.net_fields(dict(runs[0], fix_config={})), **model}
  (run,) = grid(fixes=["nf"], depths=["56"], model_options={"nf_alpha": 0.5})
  assert speed.net_fields(run)["nf_alpha"] == 0.5 and run["depth"] == 56
  assert benchmarks.net_label(run) == "cifar_preact nf nf_alpha=0.5"
  assert [r["fix"] for r in grid(fixes=["all"], depths=None)] == list(fixes.PRESETS)
  (plain,) = grid()  # no fix, no options: the records as before
  assert "fix" not in plain and "model_options" not in plain


@pytest.mark.parametrize(
  "changes,match",
  [
    (dict(fixes=["nope"]), "--fixes: 'nope' is not a fix preset; choose from vanilla_tanh"),
    (
      dict(fixes=["fixup_bottleneck"], depths=["8"]),
      "cifar_resnet fixup_bottleneck at depth 8: depth 8 is not a valid depth .* 9n\\+2",
    ),
    (
      dict(families=["cifar_plain"], model_options={"norm": "none", "branch": "fixup"}),
      "cifar_plain norm=none,branch=fixup at depth 20: branch='fixup' has no meaning on a plain",
    ),
    (
      dict(fixes=["nf"], model_options={"norm": "bn"}),
      "cifar_preact nf norm=bn at depth 20: branch='nf' .* cannot be used with norm='bn'",
    ),
  ],
)
def test_a_net_that_refuses_its_fixes_stops_the_grid_in_one_sentence(changes, match):
  """Before anything runs: the parent builds each net (nothing compiles)."""
  with pytest.raises(ValueError, match=match) as e:
    grid(**changes)
  assert "\n" not in str(e.value)


def test_the_scripts_own_refusals(tmp_path):
  """--fixes sets the families; only kernel counts run in one process. Exit 1 before any jax."""
  for args, match in [
    ("--fixes=fixup --families=cifar_plain", "--fixes sets each net's family: leave --families"),
    ("--one_process --what=step,kernels", "--one_process: only --what=kernels runs in one process"),
  ]:
    proc = run_benchmark(args, tmp_path)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith(match)
  assert not os.listdir(tmp_path)
  with pytest.raises(ValueError, match="only --what=kernels runs in one process"):
    speed.run_all(grid(what=["step"]), str(tmp_path), None)


def test_one_process_reports_a_failed_configuration_and_goes_on(tmp_path, capsys):
  """In one process, a configuration that raises gives its row and no record, as a failed child
  does (here: a GPU description that is not there, read before any compile)."""
  runs = grid(fixes=["fixup", "skipinit"], depths=["8"])
  runs = [dict(r, target_config=str(tmp_path / "missing.txtpb")) for r in runs]
  assert speed.run_all(runs, str(tmp_path), None) == []
  out = capsys.readouterr().out
  assert '| cifar_resnet fixup | 8 | 8 | float32 | scan | failed: ["FileNotFoundError:' in out
  assert "| cifar_resnet skipinit | 8 | 8 |" in out and not os.listdir(tmp_path)
