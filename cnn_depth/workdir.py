"""The files of a workdir, for machines: `config.json`, `metrics.jsonl`, `status.json`; and the one
place every path inside a workdir and a sweep root, and a grid's run names, are spelled.

    workdir/
      config.json     the run's config (sorted keys) as first launched: what was run
      changes.jsonl   the recipe changes a relaunch made with --allow_changes, or an extension
                      (num_train_steps up), one JSON line each: {"step": S, "field": ..., "old":
                      ..., "new": ..., "time": ...}; S is the checkpoint step it resumed from, so
                      steps 1..S ran with "old" and steps after S with "new" (values as run:
                      lr_boundaries and warmup in steps, num_train_steps the run's length)
      metrics.jsonl   one JSON object a line, `step` first: what happened
      status.json     running | done | diverged | failed | preempted, with a timestamp: how it ended
      checkpoints/    checkpoint_dir(workdir): orbax checkpoints (cnn_depth.checkpoint)
      analysis/       analysis_dir(workdir): where analyses write their CSVs and figures by default

    root/                  a sweep root (cnn_depth.sweep, cnn_depth.launchers)
      <run>/               one workdir per run, named run_name(family, depth, seed) in a grid
      sweep/<run>.json     record_path(root, run): the launch record (command, job id, exit code)
      sweep/<run>.log      log_path(root, run): console output of a run started N at a time
      sweep/slurm/         slurm_dir(root): submitit's folder (sbatch scripts, job logs, pickles)

Pure Python: no jax, no numpy, so plotting and result collection can read workdirs anywhere. Arrays
and numpy/jax scalars are accepted wherever values are written (anything with `.tolist()`) and
stored as floats or lists of floats. NaN and infinities are written as `NaN`/`Infinity`, which
Python's `json` reads back (a diverged run's last loss must survive the round trip).

Resuming: the metrics written after the last checkpoint would be written again, so a resumed run
first drops them with `truncate_metrics(workdir, restored_step)` (or `MetricsWriter(workdir,
truncate_after=restored_step)`). A relaunch whose recipe differs from the run's (config.json with
changes.jsonl applied) is refused by `check_recipe` unless each changed field is allowed; the
allowed changes are appended to changes.jsonl (`record_changes`) and config.json stays as it was.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from typing import Any, Mapping, Sequence

CONFIG_FILE = "config.json"
CHANGES_FILE = "changes.jsonl"
METRICS_FILE = "metrics.jsonl"
STATUS_FILE = "status.json"
STATUSES = ("running", "done", "diverged", "failed", "preempted")
CHECKPOINT_DIR = "checkpoints"
ANALYSIS_DIR = "analysis"
SWEEP_DIR = "sweep"
SLURM_DIR = "slurm"


class WorkdirError(ValueError):
  """The workdir cannot be used for this run; the message says why and what to do."""


# --------------------------------------------------------------------------------------------------
# Paths and names


def checkpoint_dir(workdir: str | os.PathLike) -> str:
  """The folder of a run's orbax checkpoints, `<workdir>/checkpoints`."""
  return os.path.join(os.fspath(workdir), CHECKPOINT_DIR)


def analysis_dir(workdir: str | os.PathLike) -> str:
  """Where an analysis of a run writes its CSVs and figures unless told otherwise."""
  return os.path.join(os.fspath(workdir), ANALYSIS_DIR)


def run_name(family: str, depth: int, seed: int) -> str:
  """The name (and workdir basename) of a grid's run: run_name('resnet', 8, 0) == 'resnet_d8_s0'."""
  return f"{family}_d{depth}_s{seed}"


def sweep_dir(root: str | os.PathLike) -> str:
  """The sweep's own folder in a sweep root, beside the runs' workdirs."""
  return os.path.join(os.fspath(root), SWEEP_DIR)


def record_path(root: str | os.PathLike, name: str) -> str:
  """The launch record of run `name` (JSON: command, launcher, job id, start, end, exit code)."""
  return os.path.join(sweep_dir(root), f"{name}.json")


def log_path(root: str | os.PathLike, name: str) -> str:
  """The console output of run `name` when the local launcher runs several at once."""
  return os.path.join(sweep_dir(root), f"{name}.log")


def slurm_dir(root: str | os.PathLike) -> str:
  """submitit's folder for the sweep's SLURM jobs (sbatch scripts, job logs, pickles)."""
  return os.path.join(sweep_dir(root), SLURM_DIR)


# --------------------------------------------------------------------------------------------------
# Helpers


def _plain(value: Any) -> Any:
  """JSON-ready: arrays and numpy/jax scalars -> float or (nested) lists of floats."""
  if hasattr(value, "to_dict"):  # ml_collections.ConfigDict
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {str(k): _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  if isinstance(value, (str, bool, int, float)) or value is None:
    return value
  if hasattr(value, "tolist"):  # numpy / jax arrays and scalars
    return _floats(value.tolist())
  raise TypeError(f"cannot write a {type(value).__name__} to JSON: {value!r}")


def _floats(value: Any) -> Any:
  if isinstance(value, list):
    return [_floats(v) for v in value]
  return float(value)


def _write_atomic(path: str, text: str) -> None:
  """Readers see the old file or the new one, never a half-written one."""
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_json(path: str, value: Any) -> None:
  """Atomically writes `value` as indented JSON (a sweep's launch records use it too)."""
  _write_atomic(path, json.dumps(_plain(value), indent=2) + "\n")


def read_json(path: str) -> Any:
  """The JSON value in `path`, or None if there is no such file."""
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None


# --------------------------------------------------------------------------------------------------
# config.json


def write_config(workdir: str, config: Mapping[str, Any]) -> None:
  """Writes `config` (a dict or ConfigDict) to `workdir/config.json`, sorted keys, indent 2."""
  text = json.dumps(_plain(config), sort_keys=True, indent=2) + "\n"
  _write_atomic(os.path.join(workdir, CONFIG_FILE), text)


def read_config(workdir: str) -> dict | None:
  """The saved config as a dict (tuples come back as lists), or None if there is none."""
  return read_json(os.path.join(workdir, CONFIG_FILE))


# --------------------------------------------------------------------------------------------------
# metrics.jsonl


def _complete_length(path: str) -> int:
  """Bytes up to and including the last newline: a process killed mid-write leaves a tail."""
  with open(path, "rb") as f:
    data = f.read()
  return data.rfind(b"\n") + 1


class MetricsWriter:
  """Appends `{"step": s, name: value, ...}` lines to `workdir/metrics.jsonl`, flushed at once.

      with MetricsWriter(workdir) as writer:
        writer.write(step, loss=loss, accuracy=acc, lr=lr)

  A half-written last line left by a killed process is removed on opening, so appended lines stay
  whole. `truncate_after=s` also drops the lines with step > s first (see `truncate_metrics`).
  """

  def __init__(self, workdir: str, *, truncate_after: int | None = None):
    self.path = os.path.join(workdir, METRICS_FILE)
    if truncate_after is not None:
      truncate_metrics(workdir, truncate_after)
    elif os.path.exists(self.path) and os.path.getsize(self.path) > _complete_length(self.path):
      truncate_metrics(workdir, None)  # keeps whole records, each ending in a newline
    self._file = open(self.path, "a")

  def write(self, step: int, **scalars: Any) -> None:
    record = {"step": int(step)}
    record.update({name: _plain(value) for name, value in scalars.items()})
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()

  def close(self) -> None:
    self._file.close()

  def __enter__(self) -> "MetricsWriter":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _parse_metrics(path: str) -> tuple[list[dict], list[str]]:
  """The records and their raw lines, without a truncated last line."""
  try:
    with open(path) as f:
      lines = f.read().split("\n")
  except FileNotFoundError:
    return [], []
  # After the split the last element is "" if the file ends with a newline; otherwise it is the
  # unterminated tail of a killed write, kept only if it happens to be a whole record.
  records, raw = [], []
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      if number == len(lines):
        break
      raise ValueError(f"{path}:{number} is not a JSON line ({e}); fix or delete that line") from e
    records.append(record)
    raw.append(line)
  return records, raw


def read_metrics(workdir: str) -> list[dict]:
  """All metrics records in file order ([] if none); a truncated last line is skipped."""
  return _parse_metrics(os.path.join(workdir, METRICS_FILE))[0]


def truncate_metrics(workdir: str, after_step: int | None) -> int:
  """Rewrites metrics.jsonl without the records with step > `after_step`; returns how many went.

  Call it when resuming from the checkpoint at `after_step`, before opening a `MetricsWriter`, so
  the steps run again are not logged twice. A truncated last line is dropped too (alone, with
  `after_step=None`).
  """
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return 0
  records, raw = _parse_metrics(path)
  kept = [
    line
    for record, line in zip(records, raw)
    if after_step is None or record.get("step", 0) <= after_step
  ]
  _write_atomic(path, "".join(line + "\n" for line in kept))
  return len(records) - len(kept)


# --------------------------------------------------------------------------------------------------
# status.json


def write_status(workdir: str, status: str, **info: Any) -> dict:
  """Atomically writes `{"status": ..., "time": ISO-8601 UTC, "unix_time": ..., **info}`.

  `status` is one of STATUSES; `info` e.g. step=..., reason="loss is nan at step 1234".
  """
  if status not in STATUSES:
    raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
  reserved = {"time", "unix_time"} & set(info)
  if reserved:
    raise ValueError(f"{sorted(reserved)} are set by write_status; pass other names")
  now = time.time()
  record = {
    "status": status,
    "time": datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat(),
    "unix_time": now,
  }
  record.update({name: _plain(value) for name, value in info.items()})
  _write_atomic(os.path.join(workdir, STATUS_FILE), json.dumps(record, indent=2) + "\n")
  return record


def read_status(workdir: str) -> dict | None:
  return read_json(os.path.join(workdir, STATUS_FILE))


# --------------------------------------------------------------------------------------------------
# Checks before training starts


def check_workdir(workdir: str) -> str:
  """Creates `workdir` if needed and checks that files can be written there; returns its absolute
  path. Raises WorkdirError (before any training time is spent) if it cannot be used."""
  path = os.path.abspath(os.fspath(workdir))
  if os.path.exists(path) and not os.path.isdir(path):
    raise WorkdirError(f"--workdir {path} is a file, not a directory; choose another path")
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise WorkdirError(
      f"cannot create --workdir {path} ({e.strerror or e}); choose a path you can write to"
    ) from e
  probe = os.path.join(path, f".write_probe.{os.getpid()}")
  try:
    with open(probe, "w") as f:
      f.write("probe")
    os.remove(probe)
  except OSError as e:
    raise WorkdirError(
      f"--workdir {path} is not writable ({e.strerror or e}); fix its permissions "
      f"or choose another path"
    ) from e
  return path


MISSING = object()  # what lookup() returns for a field a config lacks


def lookup(config: Any, dotted: str) -> Any:
  """The value at `dotted` ('model.depth') in a ConfigDict or a dict (a saved config.json), or
  MISSING."""
  value = config
  for key in dotted.split("."):
    try:
      value = value[key]
    except (KeyError, TypeError, IndexError, AttributeError):
      return MISSING
  return value


def check_resume_compatible(
  saved: Mapping[str, Any],
  current: Mapping[str, Any],
  fields: Sequence[str],
  defaults: Mapping[str, Any] | None = None,
) -> None:
  """Raises WorkdirError if a workdir's saved config differs from this run's in any of `fields`
  (dotted paths such as 'model.depth'), so a run never resumes another run's checkpoint.

  Values are compared as JSON sees them (a tuple equals the list it was saved as). `defaults` gives
  the value a field had before it existed, for saved configs written without it.
  """
  for field in fields:
    old, new = lookup(saved, field), lookup(current, field)
    if old is MISSING and field in (defaults or {}):
      old = defaults[field]
    old = "<missing>" if old is MISSING else _plain(old)
    new = "<missing>" if new is MISSING else _plain(new)
    if old != new:
      raise WorkdirError(
        f"the workdir holds a run with {field}={old!r}, but this run has {field}={new!r}; "
        f"resuming would mix two different runs. Use a new --workdir (or delete the old one)."
      )


def check_resumable(
  workdir: str,
  current: Mapping[str, Any],
  fields: Sequence[str],
  defaults: Mapping[str, Any] | None = None,
) -> None:
  """`check_resume_compatible` against the workdir's saved config, if it has one."""
  saved = read_config(workdir)
  if saved is not None:
    check_resume_compatible(saved, current, fields, defaults)


def latest_checkpoint_step(workdir: str) -> int | None:
  """The newest finished checkpoint step in `checkpoint_dir(workdir)` from a directory listing (no
  orbax, nothing created): orbax 0.12 renames `<step>.orbax-checkpoint-tmp` to `<step>` when the
  step is complete. None if there is none."""
  directory = checkpoint_dir(workdir)
  try:
    names = os.listdir(directory)
  except OSError:
    return None
  steps = [int(n) for n in names if n.isdigit() and os.path.isdir(os.path.join(directory, n))]
  return max(steps, default=None)


# --------------------------------------------------------------------------------------------------
# changes.jsonl: the recipe changes of a relaunch


def read_changes(workdir: str, upto: int | None = None) -> list[dict]:
  """The recorded recipe changes in file order, only those that took effect at or before step
  `upto` if given ([] if none)."""
  records = _parse_metrics(os.path.join(workdir, CHANGES_FILE))[0]
  return [r for r in records if upto is None or r.get("step", 0) <= upto]


def record_changes(workdir: str, step: int, changes: Sequence[Mapping[str, Any]]) -> None:
  """Drops the changes recorded after `step` (a resume from an earlier checkpoint redoes them),
  then appends `changes` ({"field", "old", "new"}) as taking effect after `step`."""
  path = os.path.join(workdir, CHANGES_FILE)
  kept = read_changes(workdir, upto=step)
  if not os.path.exists(path) and not changes:
    return
  now = datetime.datetime.now(datetime.timezone.utc).isoformat()
  new = [{"step": int(step), **{k: _plain(v) for k, v in c.items()}, "time": now} for c in changes]
  _write_atomic(path, "".join(json.dumps(r) + "\n" for r in kept + new))


def check_recipe(
  workdir: str,
  step: int,
  run: Mapping[str, Any],
  relaunch: Mapping[str, Any],
  allow: Sequence[str] = (),
) -> list[dict]:
  """The changes ({"field", "old", "new"}) from the recipe the run has (`run`: its config.json's,
  with the changes recorded up to `step` applied) to this relaunch's (`relaunch`), both as run
  (schedule in steps, `num_train_steps` the length). Raises WorkdirError naming every changed field
  with its old and new value unless each is in `allow` or lengthens the run (`num_train_steps`
  up, always allowed)."""
  run = dict(run)
  for change in read_changes(workdir, upto=step):
    run[change["field"]] = change["new"]
  changes = [
    {"field": f, "old": _plain(run.get(f)), "new": _plain(v)}
    for f, v in relaunch.items()
    if _plain(run.get(f)) != _plain(v)
  ]
  refused = [
    c
    for c in changes
    if c["field"] not in allow and not (c["field"] == "num_train_steps" and c["new"] > c["old"])
  ]
  if refused:
    listed = ", ".join(f"{c['field']} {c['old']!r} -> {c['new']!r}" for c in refused)
    raise WorkdirError(
      f"this relaunch changes the recipe of the run in {workdir}, trained {step} steps so far: "
      f"{listed}; relaunch with the values it was trained with (config.json, changes.jsonl), use "
      f"a new --workdir, or pass --allow_changes={','.join(c['field'] for c in refused)} to go on "
      f"with the new ones from step {step} (recorded in {os.path.join(workdir, CHANGES_FILE)})"
    )
  return changes
