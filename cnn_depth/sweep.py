"""A grid of training runs: what to run, what each launch left behind, and one table of it all.

    runs = plan("configs/cifar_resnet.py", "runs/fig6", depths=[20, 56], seeds=[0, 1])
    # -> [Run("resnet_d20_s0", "runs/fig6/resnet_d20_s0", [python, scripts/train.py, ...]), ...]
    rows = grid_status("runs/fig6")      # every run of the grid, while it runs or after

A grid root holds one training workdir per run and the sweep's folder of launch records and logs;
`cnn_depth.workdir` spells every path in it (`sweep_dir`, `record_path`, `log_path`, `slurm_dir`)
and the runs' names (`run_name`). `run_for` is one run of any set of workdirs (a study's runs need
not be a grid), launched the same way.

Every run's config is built and checked before anything is launched (a dry run included): the
config file, the `--extra` overrides parsed by scripts/train.py's own parser, the fields' checks and
the model (built, not run; this imports jax and flax), so a grid with one bad run starts none.

The launch record is written by whatever runs the command (the local launcher, or the SLURM job on
its node), so the table is the same for both. No submitit here.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Sequence

from cnn_depth import config as config_lib
from cnn_depth import workdir as workdir_lib
from cnn_depth.workdir import record_path, sweep_dir  # public here too: sweep.sweep_dir(root)

TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts",
                            "train.py")  # fmt: skip
EXIT_PREEMPTED = 4  # scripts/train.py: SIGTERM, checkpoint saved, relaunch to resume


class SweepError(ValueError):
  """A bad grid or flag; the script prints it as one sentence and exits 2 before anything runs."""


class RunRefused(SweepError):
  """A run whose config scripts/train.py would refuse; `model` when its model is what fails (the
  config's fields passed)."""

  def __init__(self, message: str, model: bool = False):
    super().__init__(message)
    self.model = model


@dataclasses.dataclass(frozen=True)
class Run:
  name: str
  workdir: str
  command: tuple[str, ...]


def _join(*parts: str) -> str:
  return ",".join(p for p in parts if p)


def _accepts(module, base_args: str, key_value: str) -> bool:
  """Whether get_config takes this argument (configs raise ValueError for unknown ones)."""
  try:
    module.get_config(_join(base_args, key_value))
  except ValueError:
    return False
  return True


def _check_overrides(config, extra: Sequence[str]) -> None:
  """Each --extra item is a `--config.<field>=<value>` override naming a field of the config."""
  for item in extra:
    dotted, eq, _ = item.removeprefix("--config.").partition("=")
    if not item.startswith("--config.") or not eq:
      raise SweepError(
        f"--extra items must be --config.<field>=<value> overrides, got {item!r}; "
        "pass other scripts/train.py flags with --train_flags"
      )
    node = config
    for key in dotted.split("."):
      if not hasattr(node, "keys") or key not in node.keys():
        raise SweepError(f"--extra {item}: the config has no field {dotted!r}")
      node = node[key]


def check_run_config(config, extra: Sequence[str], name: str):
  """The config scripts/train.py would train for this run: `config` with the `extra` overrides
  applied by its parser, then checked as it checks before touching a workdir (config.check, the
  dataset's name, the model built for its family and depth; not the batch against the devices,
  which are the run's, not this host's). Raises RunRefused naming the run."""
  from cnn_depth import data, models  # jax and flax: the model is built, nothing runs

  try:
    config = config_lib.parse_overrides(config, list(extra))
  except ValueError as e:
    raise RunRefused(f"run {name} cannot start: {e}") from None
  if config.dataset.name not in data.names():
    raise RunRefused(
      f"run {name} cannot start: unknown dataset {config.dataset.name!r}; known: "
      f"{', '.join(data.names())}"
    )
  try:
    models.build_model(config.model, num_classes=10)
  except ValueError as e:
    raise RunRefused(f"run {name} cannot start: {e}", model=True) from None
  return config


def _script() -> str:
  script = os.path.relpath(TRAIN_SCRIPT)
  return TRAIN_SCRIPT if script.startswith("..") else script


def run_for(
  config_spec: str, workdir: str, extra: Sequence[str] = (), train_flags: Sequence[str] = ()
) -> Run:
  """One scripts/train.py command that trains `config_spec` ('path.py[:args]') in `workdir`, named
  by the workdir's basename; `extra` are --config.<field>=<value> overrides, `train_flags` other
  flags of scripts/train.py. Raises SweepError if the config does not load or an override names no
  field of it, and RunRefused if scripts/train.py would refuse the run's config or model
  (`check_run_config`), before anything runs."""
  try:
    config = config_lib.load_config_file(config_spec)
  except ValueError as e:
    raise SweepError(str(e)) from None
  _check_overrides(config, extra)
  command = (sys.executable, _script(), f"--config={config_spec}", f"--workdir={workdir}")
  name = os.path.basename(os.path.normpath(workdir))
  check_run_config(config, extra, name)
  return Run(name, workdir, command + tuple(extra) + tuple(train_flags))


def plan(
  config: str,
  root: str,
  depths: Sequence[int],
  seeds: Sequence[int],
  residuals: Sequence[bool] | None = None,
  extra: Sequence[str] = (),
  train_flags: Sequence[str] = (),
) -> list[Run]:
  """The runs of a depth x seed (x residual) grid, seed slowest, so an interrupted sweep has covered
  every cell of the first seeds. `residuals=None`: both values where the config takes a `residual`
  argument; a list given for a config without one is refused. Raises SweepError."""
  path, _, base_args = config.partition(":")
  try:
    module = config_lib.load_config_module(path)
  except ValueError as e:
    raise SweepError(f"bad --config: {e}") from None
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
  if _accepts(module, base_args, "residual=true"):
    residuals = [True, False] if residuals is None else residuals
  elif residuals is not None:
    raise SweepError(f"{path} takes no `residual` argument; drop --residual")
  else:
    residuals = [None]
  prefix = os.path.splitext(os.path.basename(path))[0]
  runs = []
  for seed in seeds:
    for residual in residuals:
      for depth in depths:
        res_arg = "" if residual is None else f"residual={str(residual).lower()}"
        args = _join(base_args, f"depth={depth}", res_arg, f"seed={seed}")
        family = prefix if residual is None else ("resnet" if residual else "plain")
        workdir = os.path.join(root, workdir_lib.run_name(family, depth, seed))
        try:
          runs.append(run_for(f"{path}:{args}", workdir, extra, train_flags))
        except RunRefused as e:
          if not e.model:
            raise
          # The fields passed, the model did not: the depth (the one model field a grid varies,
          # with the family `residual` picks) does not fit the family and its options.
          raise SweepError(
            f"--depths={','.join(map(str, depths))}: {e}; choose depths the family takes "
            "(nothing was started)"
          ) from None
  names = [r.name for r in runs]
  if len(set(names)) != len(names):
    raise SweepError(f"run names repeat: {names}")
  return runs


# --------------------------------------------------------------------------------------------------
# Launch records


def read_record(root: str, name: str) -> dict:
  try:
    return workdir_lib.read_json(record_path(root, name)) or {}
  except ValueError:  # half-written by hand: as if there were none
    return {}


def update_record(root: str, name: str, **fields) -> dict:
  """Merges `fields` into the run's launch record (created if missing); `time` fields are added
  by the caller as unix times."""
  os.makedirs(sweep_dir(root), exist_ok=True)
  record = {**read_record(root, name), "run": name, **fields}
  workdir_lib.write_json(record_path(root, name), record)
  return record


def run_status(workdir: str) -> dict:
  """status.json of a run, {} where there is none or it cannot be read."""
  try:
    return workdir_lib.read_status(workdir) or {}
  except (OSError, ValueError):  # unreadable or half-written by hand: treat as not done
    return {}


def is_done(workdir: str) -> bool:
  return run_status(workdir).get("status") == "done"


# --------------------------------------------------------------------------------------------------
# The table


def _last(metrics: list[dict], key: str):
  for record in reversed(metrics):
    if key in record:
      return record["step"], record[key]
  return None, None


def run_row(root: str, name: str) -> dict:
  """One row of the grid table: run, status, step, total, train/test error, exit code, job id,
  restarts (how often SLURM requeued it, from the launch record), changes (the recipe changes
  its workdir's changes.jsonl records), failed. A run whose process never wrote a status is
  'queued' (submitted), 'starting', 'failed' (ended with a non-zero exit code) or 'not started' (no
  launch record)."""
  workdir = os.path.join(root, name)
  record, status = read_record(root, name), run_status(workdir)
  config = workdir_lib.read_config(workdir) or {}
  try:
    metrics = workdir_lib.read_metrics(workdir)
  except (OSError, ValueError):
    metrics = []
  code = record.get("exit_code")
  ended = code is not None and (record.get("ended") or 0) >= (record.get("started") or 0)
  state = status.get("status")
  if state is None:  # no training process got as far as writing its status
    state = (
      ("failed" if code else "exited") if ended
      else "starting" if record.get("started") else "queued" if record.get("launched")
      else "not started"
    )  # fmt: skip
  elif state == "running" and ended and code != EXIT_PREEMPTED:
    state = "killed"  # the process ended without writing its status
  failed = state in ("failed", "diverged", "killed") or (
    ended and code not in (0, EXIT_PREEMPTED) and state != "running"
  )
  step = metrics[-1]["step"] if metrics else status.get("step")
  return {
    "run": name,
    "status": state,
    "step": step,
    "total": status.get("total_steps") or status.get("steps") or config.get("num_train_steps"),
    "train_error": _last(metrics, "train_error")[1],
    "test_error": _last(metrics, "test_error")[1],
    "exit_code": code,
    "job_id": record.get("job_id"),
    "restarts": record.get("restarts"),
    "changes": _changes(workdir),
    "failed": bool(failed),
  }


def _changes(workdir: str) -> list[dict]:
  try:
    return workdir_lib.read_changes(workdir)
  except (OSError, ValueError):  # edited by hand: the table still shows the run
    return []


def grid_runs(root: str) -> list[str]:
  """The names of the grid's runs: launch records and workdirs (with a config or status)."""
  names = set()
  if os.path.isdir(sweep_dir(root)):
    names |= {f[:-5] for f in os.listdir(sweep_dir(root)) if f.endswith(".json")}
  if os.path.isdir(root):
    for name in os.listdir(root):
      wd = os.path.join(root, name)
      if name != workdir_lib.SWEEP_DIR and any(
        os.path.exists(os.path.join(wd, f))
        for f in (workdir_lib.STATUS_FILE, workdir_lib.CONFIG_FILE)
      ):
        names.add(name)
  return sorted(names)


def grid_status(root: str, names: Sequence[str] | None = None) -> list[dict]:
  return [run_row(root, name) for name in (grid_runs(root) if names is None else names)]


def format_table(rows: list[dict]) -> str:
  """The grid as a fixed-width table, one line per run, FAILED marking the failed ones."""
  pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"
  cells = [("run", "status", "step", "train err", "test err", "exit", "job", "restarts", "changes")]
  for r in rows:
    step = "-" if r["step"] is None else f"{r['step']}/{r['total'] or '?'}"
    code = "-" if r["exit_code"] is None else str(r["exit_code"])
    restarts = "-" if r.get("restarts") is None else str(r["restarts"])
    # "2@10": two recipe changes, taking effect after step 10 (changes.jsonl says which)
    steps = sorted({int(c.get("step", 0)) for c in r.get("changes") or ()})
    changes = f"{len(r['changes'])}@{','.join(map(str, steps))}" if steps else "-"
    cells.append(
      (r["run"], r["status"], step, pct(r["train_error"]), pct(r["test_error"]), code,
       str(r["job_id"] or "-"), restarts, changes)
    )  # fmt: skip
  widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
  return "\n".join(
    line + ("  FAILED" if i and rows[i - 1]["failed"] else "") for i, line in enumerate(lines)
  )
