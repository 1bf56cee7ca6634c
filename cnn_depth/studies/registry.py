"""A study: the runs a paper's reproduction trains, what it measures on them, its CSVs and figures.

    study = studies.get("he2016")
    options = study.options(quick=True, seeds="0,1")   # the quick mode's defaults, overridden
    runs = study.grid(options)                          # [RunSpec("resnet_d8_s0", ...), ...]
    lines = study.analyse(options, runs_dir, out_dir)   # CSVs + figures; one line per finding

A new study is one module that calls `register(Study(...))`, imported in `studies/__init__.py`
(or, for a toy, in a test file). `scripts/reproduce.py --study=NAME` trains its grid through the
sweep's launchers (here N at a time, or a SLURM job array), then analyses the workdirs.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import types
from typing import Any, Callable, Mapping, Sequence

# The repository root: configs/ lies here.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class StudyError(ValueError):
  """A bad study name or option; the script prints it as one sentence and exits 2."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One training run of a study: its workdir's name under the study's runs folder, the config
  (`configs/<file>.py[:args]`, relative to the repository) and `--config.<field>=<value>`
  overrides."""

  name: str
  config: str
  overrides: tuple[str, ...] = ()

  def config_path(self) -> str:
    """The config argument with the file made absolute, so any working directory can run it."""
    path, sep, args = self.config.partition(":")
    return os.path.join(ROOT, path) + sep + args


Options = types.SimpleNamespace


@dataclasses.dataclass(frozen=True)
class Study:
  """A paper's reproduction.

  `quick` and `full` are the options' defaults in each mode (the same keys; `seeds` and `depths`
  are lists of ints, the others ints, floats or strings, by their default's type). The full mode
  trains on data the user downloads (`data_dir`); the quick mode on the embedded digits.
  `grid(options)` lists the runs; `analyse(options, runs_dir, out_dir)` writes the CSVs and
  figures from the workdirs (never training) and returns one line per finding, the phenomena the
  study checks among them. `runs_dir`: the default folder of the workdirs (another study's, where
  this one measures that study's runs).
  """

  name: str
  paper: str
  quick: Mapping[str, Any]
  full: Mapping[str, Any] | None
  grid: Callable[[Options], list[RunSpec]]
  analyse: Callable[[Options, str, str], list[str]]
  runs_dir: str | None = None

  def __post_init__(self):
    if self.full is not None and set(self.quick) != set(self.full):
      raise ValueError(f"study {self.name}: the quick and full options differ")

  def default_runs_dir(self) -> str:
    return os.path.join("runs", self.runs_dir or self.name)

  def default_out_dir(self) -> str:
    return os.path.join("results", self.name)

  def options(self, quick: bool, data_dir: str | None = None, **given: str) -> Options:
    """The mode's defaults with `given` (strings, as typed on the command line) parsed by each
    default's type. Raises StudyError naming an unknown option or a value that does not parse, or
    a full mode without `data_dir`."""
    if not quick and self.full is None:
      raise StudyError(f"study {self.name} has only a quick mode: pass --quick")
    defaults = dict(self.quick if quick else self.full)
    values = dict(defaults)
    for key, text in given.items():
      if key not in defaults:
        known = ", ".join(sorted(defaults))
        raise StudyError(f"study {self.name} has no option {key!r}; its options: {known}")
      values[key] = parse_option(key, text, defaults[key])
    if not quick and not data_dir:
      raise StudyError(
        f"the full mode of {self.name} needs --data_dir=DIR holding its dataset (see README, "
        "Data); --quick runs on the embedded digits"
      )
    return Options(quick=quick, data_dir=data_dir or "", **values)


def parse_option(key: str, text: str, default: Any) -> Any:
  """`text` as the type of `default`: a list of ints for lists, else int, float, bool or str."""
  kind = (
    "a comma-separated list of integers" if isinstance(default, (list, tuple))
    else "true or false" if isinstance(default, bool)
    else f"{'an integer' if isinstance(default, int) else 'a number'}"
    if isinstance(default, (int, float)) else None
  )  # fmt: skip
  try:
    if isinstance(default, (list, tuple)):
      value = [int(v) for v in text.split(",") if v.strip()]
      if not value:
        raise ValueError
      return value
    if isinstance(default, bool):
      if text.lower() not in ("true", "false"):
        raise ValueError
      return text.lower() == "true"
    if isinstance(default, int):
      return int(text)
    if isinstance(default, float):
      return float(text)
  except ValueError:
    raise StudyError(f"option {key} must be {kind}, got {text!r}") from None
  return text


_STUDIES: dict[str, Study] = {}


def register(study: Study, *, replace: bool = False) -> Study:
  if study.name in _STUDIES and not replace:
    raise ValueError(f"study {study.name!r} is already registered")
  _STUDIES[study.name] = study
  return study


def unregister(name: str) -> None:
  _STUDIES.pop(name, None)


def names() -> list[str]:
  return list(_STUDIES)


def get(name: str) -> Study:
  if name not in _STUDIES:
    raise StudyError(f"no study {name!r}; the studies: {', '.join(_STUDIES)}")
  return _STUDIES[name]


def when() -> str:
  """The date and machine a figure's caption ends with: '2026-12-06, host (2 cores)'."""
  return f"{datetime.date.today().isoformat()}, {platform.node()} ({os.cpu_count()} cores)"


def seeds_note(seeds: Sequence[int]) -> str:
  """'seed 0', or 'seeds 0,1,2 (mean ± std over the 3 seeds)'."""
  text = ",".join(str(s) for s in seeds)
  return (
    f"seeds {text} (mean ± std over the {len(seeds)} seeds)" if len(seeds) > 1 else f"seed {text}"
  )


def workdirs(runs_dir: str, specs: Sequence[RunSpec]) -> list[str]:
  """The workdir of each run spec under `runs_dir`."""
  return [os.path.join(runs_dir, spec.name) for spec in specs]


def train_here(specs: Sequence[RunSpec], runs_dir: str) -> None:
  """Trains each run in this process, one after another (finished runs are reused, interrupted
  ones resume): the quickstart's way, which saves a process start and jax import per run. Runs
  with overrides go through `scripts/reproduce.py` instead."""
  from cnn_depth import config as config_lib
  from cnn_depth import train

  for spec in specs:
    if spec.overrides:
      raise StudyError(f"run {spec.name} has overrides; train it with scripts/reproduce.py")
    print(f"=== {spec.name} ===", flush=True)
    train.train_and_evaluate(
      config_lib.load_config_file(spec.config_path()), os.path.join(runs_dir, spec.name)
    )
