r"""Run (or print) a depth x seed grid of scripts/train.py runs, one sub-workdir per run.

  python scripts/sweep.py --config=configs/cifar_resnet.py --workdir=runs/fig6 \
      --depths=20,32,44,56 --seeds=0,1 --extra=--config.dataset.data_dir=/data/cifar
  python scripts/sweep.py --config=configs/cifar_resnet.py --workdir=runs/fig6 \
      --dry_run   # print only

Each grid point becomes one command

  <python> scripts/train.py --config=<config>:depth=D[,residual=R],seed=S \
      --workdir=<root>/<name>_dD_sS <--extra ...> <--train_flags ...>

run one after another (not in parallel). The grid arguments are appended to any arguments already
given after the config path (`--config=configs/cifar_resnet.py:shortcut=B`). `<name>` is `resnet` /
`plain` for configs that take a `residual` argument (each value of --residual is a separate run; a
config's arguments are found by calling its get_config), else the config file's name (e.g.
`stochastic_depth_d110_s0`). Order: seed, then residual, then depth, so an
interrupted sweep has covered every cell of the first seeds.

Resumable: a run whose workdir's status.json says 'done' is skipped (note: even if --extra changed
since; use --rerun_done or a new --workdir). Any other run is (re)started and scripts/train.py
resumes it from its latest checkpoint. A failing run does not stop the sweep; at the end a table of
run / exit code / status is printed and the exit status is 1 if any run failed (non-zero exit or not
'done').

--dry_run prints the commands that would run, one per line on stdout (shell-quoted), and exits 0;
the runs it would skip are named on stderr.

--extra and --train_flags take comma-separated lists; a comma splits only where the next item
starts with '-', so `--extra=--config.lr_boundaries=(100,200),--config.seed=1` is two items.
Both may also be repeated.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys

from absl import app, flags

from cnn_depth import workdir as workdir_lib

_CONFIG = flags.DEFINE_string("config", None, "A configs/*.py file, optionally with ':args'.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Root directory; each run goes to a sub-directory.")
_DEPTHS = flags.DEFINE_list("depths", ["20", "32", "44", "56"], "Depths to run.")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds to run.")
_RESIDUAL = flags.DEFINE_list(
  "residual",
  ["true", "false"],
  "Values of the config's `residual` argument (only for configs that take one; ignored otherwise).",
)
_EXTRA = flags.DEFINE_multi_string(
  "extra",
  [],
  "Overrides passed to every run, e.g. "
  "--extra=--config.num_train_steps=100,--config.batch_size=64.",
)
_TRAIN_FLAGS = flags.DEFINE_multi_string(
  "train_flags",
  [],
  "Other scripts/train.py flags passed to "
  "every run, e.g. --train_flags=--compilation_cache=.jax_cache.",
)
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands, one per line, and exit.")
_RERUN_DONE = flags.DEFINE_bool("rerun_done", False, "Also start runs whose status is 'done'.")
flags.mark_flags_as_required(["config", "workdir"])


class SweepError(ValueError):
  """A bad grid or flag; main prints it as one sentence and exits 2 before anything runs."""


TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def split_list(values: list[str]) -> list[str]:
  """Comma-separated items, split only before a '-' (values may contain commas)."""
  return [item for v in values for item in re.split(r",(?=-)", v) if item]


def load_config_module(path: str):
  spec = importlib.util.spec_from_file_location("sweep_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def accepts(module, base_args: str, key_value: str) -> bool:
  """Whether get_config takes this argument (configs raise ValueError for unknown ones)."""
  try:
    module.get_config(join_args(base_args, key_value))
  except ValueError:
    return False
  return True


def join_args(*parts: str) -> str:
  return ",".join(p for p in parts if p)


def _ints(name: str, values: list[str]) -> list[int]:
  try:
    out = [int(v) for v in values]
  except ValueError:
    raise SweepError(
      f"--{name} must be a comma-separated list of integers, got {','.join(values)!r}"
    ) from None
  if not out:
    raise SweepError(f"--{name} is empty")
  return out


def _bools(values: list[str]) -> list[bool]:
  out = []
  for v in values:
    if v.lower() not in _TRUE + _FALSE:
      raise SweepError(f"--residual values must be true or false, got {v!r}")
    out.append(v.lower() in _TRUE)
  return out


def plan(config: str, root: str, depths, seeds, residuals, extra, train_flags):
  """[(run name, workdir, command)] for the grid; raises SweepError for a bad grid or flag."""
  path, _, base_args = config.partition(":")
  if not os.path.isfile(path):
    raise SweepError(f"--config {path} is not a file")
  module = load_config_module(path)
  try:
    module.get_config(base_args or None)
  except ValueError as e:
    raise SweepError(f"--config {config}: {e}") from None
  given = {item.partition("=")[0] for item in base_args.split(",") if item}
  if given & {"depth", "seed", "residual"}:
    raise SweepError(
      f"--config sets {sorted(given & {'depth', 'seed', 'residual'})}; the sweep "
      f"sets them (use --depths, --seeds, --residual)"
    )
  has_residual = accepts(module, base_args, "residual=true")
  if not has_residual:
    if flags.FLAGS["residual"].present:
      raise SweepError(f"{path} takes no `residual` argument; drop --residual")
    residuals = [None]
  bad = [e for e in extra if not e.startswith("--config.")]
  if bad:
    raise SweepError(
      f"--extra items must be --config.<field>=<value> overrides, got {bad}; "
      f"pass other scripts/train.py flags with --train_flags"
    )
  prefix = os.path.splitext(os.path.basename(path))[0]
  script = os.path.relpath(TRAIN_SCRIPT)
  if script.startswith(".."):
    script = TRAIN_SCRIPT
  runs = []
  for seed in seeds:
    for residual in residuals:
      for depth in depths:
        res_arg = "" if residual is None else f"residual={str(residual).lower()}"
        args = join_args(base_args, f"depth={depth}", res_arg, f"seed={seed}")
        try:
          module.get_config(args)
        except ValueError as e:
          raise SweepError(f"{path}:{args}: {e}") from None
        fam = prefix if residual is None else ("resnet" if residual else "plain")
        run = f"{fam}_d{depth}_s{seed}"
        workdir = os.path.join(root, run)
        cmd = [
          sys.executable,
          script,
          f"--config={path}:{args}",
          f"--workdir={workdir}",
          *extra,
          *train_flags,
        ]
        runs.append((run, workdir, cmd))
  names = [r[0] for r in runs]
  if len(set(names)) != len(names):
    raise SweepError(f"run names repeat: {names}")
  return runs


def _status(workdir: str) -> dict:
  try:
    return workdir_lib.read_status(workdir) or {}
  except (OSError, ValueError):  # unreadable or half-written by hand: treat as not done
    return {}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    runs = plan(
      _CONFIG.value,
      _WORKDIR.value,
      _ints("depths", _DEPTHS.value),
      _ints("seeds", _SEEDS.value),
      _bools(_RESIDUAL.value),
      split_list(_EXTRA.value),
      split_list(_TRAIN_FLAGS.value),
    )
  except SweepError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  done = lambda wd: not _RERUN_DONE.value and _status(wd).get("status") == "done"

  if _DRY_RUN.value:
    for run, workdir, cmd in runs:
      if done(workdir):
        print(f"skip {run}: {workdir}/status.json says done", file=sys.stderr)
      else:
        print(shlex.join(cmd))
    return 0

  rows, interrupted = [], False
  for i, (run, workdir, cmd) in enumerate(runs, 1):
    if done(workdir):
      print(f"=== [{i}/{len(runs)}] {run}: done, skipped", flush=True)
      rows.append((run, "skipped", "done", False))
      continue
    print(f"=== [{i}/{len(runs)}] {run}: {shlex.join(cmd)}", flush=True)
    try:
      rc = subprocess.run(cmd).returncode
    except KeyboardInterrupt:
      rows.append((run, "interrupted", _status(workdir).get("status", "-"), True))
      interrupted = True
      break
    status = _status(workdir).get("status", "-")
    rows.append((run, str(rc), status, rc != 0 or status != "done"))

  width = max([len(r[0]) for r in rows] + [3])
  print(f"\n{'run':{width}s}  {'exit':11s}  status")
  for run, code, status, failed in rows:
    print(f"{run:{width}s}  {code:11s}  {status}{'  FAILED' if failed else ''}")
  if interrupted:
    print(f"interrupted; {len(runs) - len(rows)} runs not started", flush=True)
    return 130
  n_failed = sum(r[3] for r in rows)
  print(
    f"{len(rows)} runs: {sum(r[1] == 'skipped' for r in rows)} skipped, {n_failed} failed",
    flush=True,
  )
  return 1 if n_failed else 0


if __name__ == "__main__":
  app.run(main)
