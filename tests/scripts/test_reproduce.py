"""scripts/reproduce.py and the studies' grids: every study plans runs that load, refuses bad
options and a full mode without data, prints its grid with --dry_run (here and for SLURM) without
creating anything; the quick modes, shortened, write the papers' CSVs and figures (second tier);
a toy study registered in this file runs through the script without a package file touched."""

import csv
import json
import os
from concurrent import futures

import pytest
from helpers.runner import ROOT, TESTS, run_script

from cnn_depth import studies, sweep
from cnn_depth.analysis import plotting, results
from cnn_depth.analysis import runs as runs_lib
from cnn_depth.studies import registry


def rows(path):
  with open(path) as f:
    return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------------
# A toy study, defined here: two seeds of a tiny ResNet, their final test errors in a CSV and a bar
# chart. `register_toy()` runs at import, so a process that imports this file has it.


def toy_grid(o):
  return [
    registry.RunSpec(f"toy_s{seed}", f"configs/quickstart.py:depth=8,seed={seed},steps={o.steps}")
    for seed in o.seeds
  ]


def toy_analyse(o, runs_dir, out_dir):
  errors = {
    spec.name: runs_lib.load_run(os.path.join(runs_dir, spec.name)).last("test_error")
    for spec in toy_grid(o)
  }
  results.write_table(os.path.join(out_dir, "toy.csv"), ["run", "test_error"], errors.items())
  fig, ax = plotting.plt.subplots()
  ax.bar(list(errors), list(errors.values()))
  plotting.save(fig, os.path.join(out_dir, "toy.png"))
  shown = all(0 <= e <= 1 for e in errors.values())
  return [f"toy: {len(errors)} runs, errors in [0, 1]: {'shown' if shown else 'NOT shown'}"]


def register_toy():
  return registry.register(
    registry.Study(
      name="toy",
      paper="a toy study of the extension test",
      quick={"seeds": [0, 1], "steps": 2},
      full=None,
      grid=toy_grid,
      analyse=toy_analyse,
    ),
    replace=True,
  )


register_toy()


def reproduce(*args, with_toy=False, timeout=600):
  """scripts/reproduce.py in a subprocess, one CPU device; `with_toy`: this file imported first (as
  `test_reproduce`, from its folder, with tests/ on the path for helpers/)."""
  script = os.path.join(ROOT, "scripts", "reproduce.py")
  if not with_toy:
    return run_script(script, *args, timeout=timeout)
  code = (
    "import os, runpy, sys; sys.path[:0] = sys.argv[1].split(os.pathsep); import test_reproduce; "
    "sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')"
  )
  path = os.pathsep.join([os.path.dirname(os.path.abspath(__file__)), TESTS])
  return run_script("-c", code, path, script, *args, timeout=timeout)


# --------------------------------------------------------------------------------------------------
# First tier: the grids, the options, the refusals, the dry runs.


@pytest.mark.parametrize("name", [n for n in studies.names() if n != "toy"])
def test_every_study_plans_runs_whose_configs_load(name):
  """Quick and full (with a data_dir) grids: unique names, each a train.py command whose config
  loads and whose overrides name fields of it (sweep.run_for checks both)."""
  study = studies.get(name)
  modes = [study.options(True)]
  if study.full is not None:
    modes.append(study.options(False, data_dir="/data/cifar"))
  for options in modes:
    specs = study.grid(options)
    names = [s.name for s in specs]
    assert specs and len(set(names)) == len(names)
    for spec in specs:
      run = sweep.run_for(spec.config_path(), os.path.join("/tmp/r", spec.name), spec.overrides)
      assert run.name == spec.name
      if not options.quick:
        assert "--config.dataset.data_dir=/data/cifar" in run.command


def test_he_grid_is_the_sweeps_grid():
  """he2016's quick grid is scripts/sweep.py's grid of the same flags: names, order, configs."""
  o = studies.get("he2016").options(True, seeds="0,1", depths="8,14", steps="8")
  mine = [(s.name, s.config.partition(":")[2]) for s in studies.get("he2016").grid(o)]
  theirs = sweep.plan("configs/quickstart.py:steps=8", "/tmp/r", [8, 14], [0, 1])
  assert [(r.name, r.command[2].partition(":")[2]) for r in theirs] == mine
  assert sum("1202" in name for name, _ in mine) == 0
  full = studies.get("he2016").grid(studies.get("he2016").options(False, data_dir="/d"))
  assert full[-1].name == "resnet_d1202_s0"  # the whole Table 6 when no depths are chosen


def test_options_are_parsed_by_their_defaults_types():
  study = studies.get("veit2016")
  o = study.options(True, seeds="3,4", samples="7")
  assert (o.seeds, o.samples, o.depth, o.quick) == ([3, 4], 7, 32, True)
  for bad, message in (
    ({"foo": "1"}, "has no option 'foo'"),
    ({"samples": "many"}, "option samples must be an integer"),
    ({"seeds": ""}, "option seeds must be a comma-separated list"),
  ):
    with pytest.raises(studies.StudyError, match=message):
      study.options(True, **bad)
  with pytest.raises(studies.StudyError, match="--data_dir"):
    study.options(False)
  with pytest.raises(studies.StudyError, match="only a quick mode"):
    studies.get("quickstart").options(False)
  with pytest.raises(studies.StudyError, match="no study 'nope'"):
    studies.get("nope")


def test_the_studies_import_without_jax():
  """Importing every study (what --list and a bad option need) imports neither JAX nor matplotlib:
  the studies import their instruments lazily (registry.lazy), so those answer in 0.4 s."""
  code = (
    "import sys, cnn_depth.studies as s; heavy = {'jax', 'flax', 'matplotlib'} & set(sys.modules); "
    "print(len(s.names()), sorted(heavy))"
  )
  proc = run_script("-c", code)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.split(" ", 1)[1].strip() == "[]", proc.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path):
  """No study, an unknown one, an unknown option, a full mode without data: one `error:` line
  each, exit 2, nothing created."""
  runs = tmp_path / "runs"
  cases = [
    ([], "--study is required"),
    (["--study=nope"], "no study 'nope'"),
    (["--study=he2016", "--quick", "--set=foo=1"], "has no option 'foo'"),
    (["--study=veit2016", "--quick", "--set=samples"], "--set takes key=value"),
    (["--study=he2016"], "--data_dir"),
    (["--study=he2016", "--quick", "--launcher=pbs"], "--launcher must be local or slurm"),
    (["--study=he2016", "--quick", "--depths=9"], "run resnet_d9_s0 cannot start: depth 9"),
  ]
  with futures.ThreadPoolExecutor(3) as pool:
    procs = list(pool.map(lambda c: reproduce(*c[0], f"--runs={runs}"), cases))
  for (args, message), proc in zip(cases, procs):
    assert proc.returncode == 2, (args, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1], (args, lines)
    assert "Traceback" not in proc.stderr
  assert not runs.exists()


# Every study's --dry_run, here and for SLURM, in ONE process: reproduce.py's own main() called once
# per command line with its flags parsed again (a process a call took 2 CPU-s of imports each, 19
# of them with the fixes studies).
DRY_RUNS = """
import contextlib, io, json, runpy, sys
from absl import flags
main = runpy.run_path("scripts/reproduce.py", run_name="reproduce")["main"]
for argv in json.loads(sys.argv[1]):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["reproduce.py", *argv])
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = main(["reproduce.py"])
  print(json.dumps([code, out.getvalue(), err.getvalue()]))
"""


@pytest.mark.slow
def test_dry_run_of_every_study_prints_its_grid_here_and_for_slurm(tmp_path):
  calls = [
    (name, launcher, {})
    for name in studies.names()
    if name != "toy"
    for launcher in ("local", "slurm")
    if not (name == "quickstart" and launcher == "slurm")
  ]
  calls.append(("fixes_why", "local", {"variants": "fixup,skipinit"}))  # a list through --set
  argvs = [
    [f"--study={n}", "--quick", "--dry_run", f"--launcher={k}", f"--runs={tmp_path / f'{n}_{k}'}"]
    + [f"--set={key}={value}" for key, value in given.items()]
    for n, k, given in calls
  ]
  proc = run_script("-c", DRY_RUNS, json.dumps(argvs))
  assert proc.returncode == 0, proc.stderr[-3000:]
  results = [json.loads(line) for line in proc.stdout.splitlines()]
  assert len(results) == len(calls)
  for (name, launcher, given), (code, stdout, stderr) in zip(calls, results):
    assert code == 0, (name, launcher, stderr[-2000:])
    study = studies.get(name)
    specs = study.grid(study.options(True, **given))
    commands = (stdout if launcher == "local" else stderr).strip().splitlines()
    commands = [c for c in commands if "scripts/train.py" in c]
    assert len(commands) == len(specs), (name, launcher)
    for spec, command in zip(specs, commands):
      assert f"--workdir={tmp_path / f'{name}_{launcher}' / spec.name}" in command
    if launcher == "slurm":
      assert f"#SBATCH --array=0-{len(specs) - 1}" in stdout
  assert not list(tmp_path.iterdir())  # a dry run creates nothing
  # The command line itself, once each way.
  for launcher in ("local", "slurm"):
    runs = tmp_path / launcher
    proc = reproduce(
      "--study=he2016", "--quick", "--dry_run", f"--launcher={launcher}", f"--runs={runs}"
    )
    assert proc.returncode == 0 and "scripts/train.py" in proc.stdout + proc.stderr, proc.stderr
    assert not runs.exists()


# --------------------------------------------------------------------------------------------------
# Second tier: the quick modes, shortened, and the toy study end to end.


@pytest.mark.slow
def test_toy_study_runs_through_reproduce_without_a_package_file(tmp_path):
  """Registered in this file only: trained through the sweep's local launcher, measured, drawn;
  a second call reuses the finished runs; --train=false only draws."""
  args = ["--study=toy", "--quick", f"--runs={tmp_path / 'runs'}", f"--out={tmp_path / 'out'}"]
  proc = reproduce(*args, with_toy=True)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "toy: 2 runs, errors in [0, 1]: shown" in proc.stdout
  assert [r["run"] for r in rows(tmp_path / "out" / "toy.csv")] == ["toy_s0", "toy_s1"]
  assert os.path.getsize(tmp_path / "out" / "toy.png") > 2000
  done = os.path.getmtime(tmp_path / "runs" / "toy_s0" / "status.json")
  again = reproduce(*args, "--train=false", with_toy=True)
  assert again.returncode == 0 and "toy: 2 runs" in again.stdout, again.stderr[-3000:]
  assert os.path.getmtime(tmp_path / "runs" / "toy_s0" / "status.json") == done


@pytest.mark.slow
def test_huang_quick_mode_makes_curves(tmp_path):
  proc = reproduce(
    "--study=huang2016", "--quick", "--steps=4", "--seeds=1",
    f"--runs={tmp_path / 'runs'}", f"--out={tmp_path / 'out'}",
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-3000:]
  curves = rows(tmp_path / "out" / "curves.csv")
  assert {r["variant"] for r in curves} == {"constant depth", "stochastic depth (p_L=0.5)"}
  assert all(r["seeds"] == "1" and float(r["test_error_std"]) == 0 for r in curves)
  assert sorted(n for n in os.listdir(tmp_path / "runs") if n != "sweep") == [
    "quick_pL0.5_s1",
    "quick_pL1.0_s1",
  ]
  assert os.path.getsize(tmp_path / "out" / "curves.png") > 5000
  assert "stochastic depth: lower test error" in proc.stdout  # its phenomenon, shown or not


@pytest.fixture(scope="module")
def he_quick(tmp_path_factory):
  """He et al.'s quick mode, shortened (plain and ResNet-8 and -14, seed 0, 4 steps): the run of
  the He test, and the runs Balduzzi's and Li's quick modes reuse (their grid is He's)."""
  tmp_path = tmp_path_factory.mktemp("he2016")
  proc = reproduce(
    "--study=he2016", "--quick", "--steps=4", "--depths=8,14", "--seeds=0",
    f"--runs={tmp_path / 'runs'}", f"--out={tmp_path / 'out'}",
  )  # fmt: skip
  return tmp_path, proc


@pytest.mark.slow
def test_he_quick_mode_makes_table_and_curves(he_quick):
  tmp_path, proc = he_quick
  assert proc.returncode == 0, proc.stderr[-3000:]
  table = rows(tmp_path / "out" / "table.csv")
  assert list(table[0])[:6] == ["family", "depth", "params", "train_error", "test_error", "seeds"]
  assert [(r["family"], int(r["depth"])) for r in table] == [
    ("cifar_plain", 8),
    ("cifar_plain", 14),
    ("cifar_resnet", 8),
    ("cifar_resnet", 14),
  ]
  assert all(0 <= float(r["test_error"]) <= 1 and r["seeds"] == "1" for r in table)
  by_seed = rows(tmp_path / "out" / "table_by_seed.csv")
  assert [(r["family"], r["depth"], r["seed"]) for r in by_seed][:2] == [
    ("cifar_plain", "8", "0"),
    ("cifar_plain", "14", "0"),
  ]
  # Four checkpoints through training (steps 1-4), for the Hessian spectra of li2018.
  ckpts = tmp_path / "runs" / "resnet_d8_s0" / "checkpoints"
  assert sorted(int(n) for n in os.listdir(ckpts) if n.isdigit()) == [1, 2, 3, 4]
  for name in ("error_curves.png", "gradient_flow.png"):
    assert os.path.getsize(tmp_path / "out" / name) > 5000
  assert "depth 8: ResNet train error" in proc.stdout


@pytest.mark.slow
def test_veit_quick_mode_writes_the_issue_csvs(tmp_path):
  """One seed (the grouping of several is tested in studies/test_veit2016.py and
  scripts/test_lesion.py): every net trained under its seed's name, the CSVs with their seed."""
  proc = reproduce(
    "--study=veit2016", "--quick", "--steps=4", "--seeds=1",
    "--set=depth=14,samples=2,lesion_samples=2",
    f"--runs={tmp_path / 'runs'}", f"--out={tmp_path / 'out'}",
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(n for n in os.listdir(tmp_path / "runs") if n != "sweep") == [
    "plain14_s1",
    "resnet14_s1",
    "vgg16_s1",
  ]
  out = tmp_path / "out"
  single = rows(out / "lesion_single.csv")
  assert list(single[0]) == ["model", "seed", "block", "downsampling", "test_error"]
  for model, blocks in (("ResNet-14", 6), ("plain-14", 6), ("VGG-16", 13)):
    mine = [r for r in single if r["model"] == model]
    assert [int(r["block"]) for r in mine] == list(range(-1, blocks))
    assert {r["seed"] for r in mine} == {"1"}
  multi = rows(out / "lesion_multi.csv")
  assert list(multi[0]) == ["model", "seed", "k", "test_error_mean", "test_error_std"]
  assert {r["model"] for r in multi} == {"ResNet-14", "plain-14", "VGG-16"}
  assert {r["seed"] for r in rows(out / "lesion_reorder.csv")} == {"1"}
  paths = rows(out / "path_gradients.csv")
  assert list(paths[0])[:5] == ["k", "num_paths", "grad_norm_mean", "grad_norm_std", "total_grad"]
  assert [int(r["num_paths"]) for r in paths] == [1, 6, 15, 20, 15, 6, 1]
  assert {r["seeds"] for r in paths} == {"1"}
  for name in ("lesion_single.png", "lesion_multi.png", "path_gradients.png"):
    assert os.path.getsize(out / name) > 5000
  assert "resilience to single deletions (ResNet-14's mean error below plain-14, VGG-16's" in (
    proc.stdout
  )


@pytest.mark.slow
def test_balduzzi_and_li_quick_modes_share_he_runs(he_quick, tmp_path):
  """Balduzzi et al. and Li et al. measure He et al.'s nets (plain and ResNet-8, 4 steps, 4
  checkpoints), reusing the He test's finished runs (no training), and write the issue's CSVs."""
  assert he_quick[1].returncode == 0, he_quick[1].stderr[-3000:]
  runs = he_quick[0] / "runs"
  trained = os.path.getmtime(runs / "resnet_d8_s0" / "status.json")
  common = ["--quick", "--steps=4", "--depths=8", "--seeds=0", f"--runs={runs}"]
  proc = reproduce(
    "--study=balduzzi2017", *common, "--set=lines=1,points=40", f"--out={tmp_path / 'b'}"
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.getmtime(runs / "resnet_d8_s0" / "status.json") == trained
  assert "shattering at initialisation" in proc.stdout
  corr = rows(tmp_path / "b" / "gradient_correlation.csv")
  assert {(r["model"], r["depth"], r["trained"]) for r in corr} == {
    (m, "8", t) for m in ("cifar_plain", "cifar_resnet") for t in ("0", "1")
  }
  proc = reproduce(
    "--study=li2018", *common, "--set=points_2d=2,hessian_examples=16", f"--out={tmp_path / 'l'}"
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert os.path.getmtime(runs / "resnet_d8_s0" / "status.json") == trained
  assert "sharpness at depth 8" in proc.stdout
  hessian = rows(tmp_path / "l" / "hessian.csv")
  assert sorted({int(r["step"]) for r in hessian}) == [0, 1, 2, 3, 4]
  assert {r["model"] for r in rows(tmp_path / "l" / "landscape_1d.csv")} == {
    "cifar_plain",
    "cifar_resnet",
  }
  for name in ("landscape_1d.png", "landscape_2d.png", "hessian.png", "hessian_density.png"):
    assert os.path.getsize(tmp_path / "l" / name) > 5000
