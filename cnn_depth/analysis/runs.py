"""Opening a workdir: its config, metrics and status (`Run`, no jax), and its trained net.

`load_run` and `find_runs` read config.json, metrics.jsonl and status.json, for figures and tables
made anywhere; `load_trained` restores the latest checkpoint with its model and dataset, for the
lesion and path studies.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from cnn_depth import workdir as workdir_lib


@dataclasses.dataclass
class Run:
  workdir: str
  config: dict
  metrics: list[dict]
  status: dict | None

  @property
  def family(self) -> str:
    return self.config["model"]["family"]

  @property
  def depth(self) -> int:
    return int(self.config["model"]["depth"])

  def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of every metrics record that has `key`."""
    rows = [(r["step"], r[key]) for r in self.metrics if key in r]
    if not rows:
      return np.zeros(0), np.zeros(0)
    steps, values = zip(*rows)
    return np.asarray(steps), np.asarray(values, dtype=np.float64)

  def last(self, key: str) -> float | None:
    steps, values = self.curve(key)
    return float(values[-1]) if len(values) else None

  @property
  def steps_per_epoch(self) -> int | None:
    """Steps per epoch, from a logged (step, epoch) pair (None before the first log)."""
    for record in self.metrics:
      if record.get("epoch"):
        return round(record["step"] / record["epoch"])
    return None


def load_run(workdir: str) -> Run:
  config = workdir_lib.read_config(workdir)
  if config is None:
    raise FileNotFoundError(f"{workdir} holds no config.json: is it a training workdir?")
  return Run(
    os.path.abspath(workdir),
    config,
    workdir_lib.read_metrics(workdir),
    workdir_lib.read_status(workdir),
  )


def find_runs(root: str) -> dict[str, Run]:
  """Every workdir (a folder with config.json) under `root`, by its path relative to `root`."""
  runs = {}
  for dirpath, _, files in sorted(os.walk(root)):
    if workdir_lib.CONFIG_FILE in files:
      runs[os.path.relpath(dirpath, root)] = load_run(dirpath)
  return runs


def _has_checkpoint(directory: str) -> bool:
  """True if `directory` holds a finished orbax step (a folder named by its step number)."""
  if not os.path.isdir(directory):
    return False
  return any(
    name.isdigit() and os.path.isdir(os.path.join(directory, name))
    for name in os.listdir(directory)
  )


def load_trained(workdir: str | os.PathLike, data_dir: str | None = None, *, streamed=False):
  """(model, variables, config, dataset) of a training workdir, ready for the lesion and path
  studies.

  The config is the run's `config.json` (a dict); the dataset is re-read with the run's dataset
  fields and seed (from `data_dir` if given: an imported net's workdir names none), so
  `dataset.test_*` is the split the run was evaluated on (its validation split where one was held
  out); the variables ({'params', 'batch_stats'}) are from the latest checkpoint. A streamed
  dataset (ImageNet) is opened, not read, where the caller says it can stream (`streamed=True`).
  """
  from cnn_depth import checkpoint, data, models  # jax and the data libraries: only here

  workdir = os.fspath(workdir)
  config = load_run(workdir).config
  ckpt_dir = os.path.join(workdir, "checkpoints")
  if not _has_checkpoint(ckpt_dir):
    raise ValueError(f"no checkpoint in {ckpt_dir}: train it first")
  dcfg = config["dataset"]
  data_dir = data_dir or dcfg.get("data_dir") or None
  if data.get(dcfg["name"]).streamed:
    if not streamed:
      raise ValueError(
        f"{dcfg['name']} is streamed: load the checkpoint with checkpoint.load_for_analysis "
        "and stream the test split with data.open_dataset(...).batches"
      )
    ds = data.open_dataset(dcfg["name"], data_dir, seed=config["seed"])
  else:
    ds = data.load_dataset(
      dcfg["name"], data_dir, validation_size=dcfg.get("validation_size", 0), seed=config["seed"]
    )
  model = models.build_model(config["model"], num_classes=ds.num_classes)
  restored = checkpoint.load_for_analysis(ckpt_dir)
  variables = {"params": restored["params"], "batch_stats": restored["batch_stats"] or {}}
  return model, variables, config, ds
