"""scripts/train.py's inputs end to end: every mistyped flag or config value is one `error:` line,
exit 2, and nothing created or changed (a workdir that did not exist still does not; the current
directory is untouched by an empty --workdir), checked before any data is read or directory made.

The cases of tests/test_train.py's BAD_INPUTS that need a trained workdir run in the slow tier;
these need none, so they run in the first tier, several subprocesses at a time. The fuzz of
tests/test_configs.py checks the same validation in-process; a sample of it comes through here.
"""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

from helpers.runner import CACHE, ROOT, run_script

from cnn_depth import config as config_lib

QUICKSTART = str(Path(ROOT) / "configs" / "quickstart.py")

# (flags after --config=quickstart, text the error line must hold); {workdir} is a path that does
# not exist, {tmp} the test's folder.
CASES = [
  (["--workdir="], "--workdir='' is empty"),
  (["--workdir={workdir}", "--config.num_train_steps=0"], "num_train_steps=0 cannot be used"),
  (["--workdir={workdir}", "--config.batch_size=0"], "batch_size=0 cannot be used"),
  (["--workdir={workdir}", "--config.batch_size=-8"], "batch_size=-8 cannot be used"),
  (["--workdir={workdir}", "--config.keep_checkpoints=0"], "keep_checkpoints=0 cannot be used"),
  (["--workdir={workdir}", "--config.learning_rate=-0.1"], "learning_rate=-0.1 cannot be used"),
  (
    [
      "--workdir={workdir}",
      "--config.dataset.name=cifar10",
      "--config.dataset.data_dir={tmp}/no_cifar",
    ],
    "does not exist",
  ),
  (["--workdir={workdir}", "--config.dataset.validation_size=5000"], "validation_size=5000"),
  (["--workdir={workdir}", "--config.batch_size=4096"], "batch_size=4096 exceeds the 1500"),
  ([], "--workdir is required"),
  (["--workdir={workdir}", "--nosuchflag=1"], "--nosuchflag is not a flag of scripts/train.py"),
  (["--workdir={workdir}", "stray"], "takes only flags, got 'stray'"),
  (["--workdir={workdir}", "--config.batch_size=1.5"], "--config.batch_size=1.5 is not a value"),
]


def train(args, cwd, devices=1):
  """scripts/train.py on the quickstart config with `args`, from `cwd` (subprocess)."""
  return run_script(
    "scripts/train.py",
    f"--config={QUICKSTART}",
    f"--compilation_cache={CACHE}",
    *args,
    env={"JAX_PLATFORMS": "cpu"},
    cwd=cwd,
    devices=devices,
    timeout=300,
  )


def files_of(path: Path) -> dict | None:
  """Every file under `path` with its bytes (None if `path` does not exist)."""
  if not path.exists():
    return None
  return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def assert_refused(cases, tmp_path, exact=False, devices=1):
  """Runs each (args, expected text) from a fresh current directory (holding one file) with a
  workdir that does not exist: exit 2, one `error:` line holding the text (`exact`: being
  'error: <text>'), no traceback, the workdir still absent and the directory unchanged."""
  runs = []
  for i, (args, expect) in enumerate(cases):
    cwd, workdir = tmp_path / f"cwd{i}", tmp_path / f"run{i}"
    cwd.mkdir()
    (cwd / "keep.txt").write_text("untouched\n")
    runs.append(
      ([a.format(workdir=workdir, tmp=tmp_path) for a in args], expect, cwd, workdir, files_of(cwd))
    )
  with futures.ThreadPoolExecutor(3) as pool:
    procs = list(pool.map(lambda r: train(r[0], r[2], devices), runs))
  for (args, expect, cwd, workdir, before), proc in zip(runs, procs):
    assert proc.returncode == 2, (args, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, (args, proc.stderr[-3000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], (args, errors)
    assert errors[0] == f"error: {expect}" if exact else expect in errors[0], (args, errors[0])
    assert not workdir.exists(), args
    assert files_of(cwd) == before, args


def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path):
  assert_refused(CASES, tmp_path)


def test_a_sample_of_fuzzed_overrides_gets_the_in_process_message(tmp_path):
  """Eight overrides drawn by the fuzz of tests/test_configs.py that the in-process checks refuse
  (parse_overrides + train.check_config on the quickstart config): the command line refuses each
  with the same line, exit 2, nothing created."""
  from helpers.overrides import override
  from hypothesis import HealthCheck, given, settings

  from cnn_depth import sharding, train

  quickstart, mesh, sample = config_lib.load_config_file(QUICKSTART), sharding.data_mesh(), []

  @settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
  )
  @given(override())
  def draw(text):
    if len(sample) < 8:
      try:
        train.check_config(config_lib.parse_overrides(quickstart, [text]), mesh)
      except ValueError as e:
        sample.append((["--workdir={workdir}", text.replace("{", "{{").replace("}", "}}")], str(e)))

  draw()
  assert len(sample) == 8
  assert_refused(sample, tmp_path, exact=True, devices=8)
