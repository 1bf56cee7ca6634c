"""Opening a workdir: its config, metrics and status (`Run`, no jax), and its trained net.

`load_run` and `find_runs` read config.json, metrics.jsonl and status.json, for figures and tables
made anywhere; `load_trained` restores the latest checkpoint with its model and dataset, for the
lesion and path studies.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Sequence

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


def expand_workdirs(patterns: Sequence[str]) -> list[str]:
  """Workdirs from paths and glob patterns; a pattern keeps the matches that hold a checkpoint."""
  out = []
  for p in patterns:
    if glob.has_magic(p):
      out += [d for d in sorted(glob.glob(p)) if checkpoint_steps(d)]
    else:
      out.append(p)
  return out


def checkpoint_steps(workdir: str | os.PathLike) -> list[int]:
  """The steps of a workdir's finished checkpoints, in order."""
  ckpt_dir = workdir_lib.checkpoint_dir(workdir)
  if not os.path.isdir(ckpt_dir):
    return []
  return sorted(
    int(n) for n in os.listdir(ckpt_dir) if n.isdigit() and os.path.isdir(os.path.join(ckpt_dir, n))
  )


def data_statistics(model, variables, images, mean, std) -> dict:
  """BN statistics equal to the batch statistics train-mode BN computes on `images`, layer by
  layer: with them, inference-mode BN on `images` is train-mode BN. They come from two running-
  average updates of the same batch, from 0 and from 1 (u0 = (1-m) b, u1 = m + (1-m) b), which give
  b = u0 / (1 - (u1 - u0)) whatever the momentum m."""
  import jax
  import jax.numpy as jnp

  from cnn_depth import layers, models, steps

  def stats(variables, images):
    x = steps.normalize(images, tuple(mean), tuple(std), model.dtype)

    def update(fill):
      filled = jax.tree_util.tree_map(lambda a: jnp.full_like(a, fill), variables["batch_stats"])
      rngs = {models.gating.DROP_RNG: jax.random.key(0)}
      _, new = model.apply(
        {**variables, "batch_stats": filled}, x, train=True, mutable=["batch_stats"], rngs=rngs
      )
      return new["batch_stats"]

    u0, u1 = update(0.0), update(1.0)
    return jax.tree_util.tree_map(lambda a, b: a / (1 - (b - a)), u0, u1)

  jitted = jax.jit(stats, compiler_options=layers.compiler_options())
  return jitted(dict(variables), jnp.asarray(images))


def initial_variables(model, config: dict, image_shape, images=None, mean=None, std=None) -> dict:
  """The variables a run of `config` started from: the same draw as `train.train_and_evaluate`'s
  (`state.create_train_state` with `jax.random.key(config['seed'])`; the optimiser takes no part in
  the draw). With `images` (and the dataset's `mean`, `std`), the BN running statistics, 0 and 1
  at initialisation, are replaced by the batch statistics of those images (`data_statistics`), so
  that inference-mode BN computes what the first training step's BN did."""
  import jax
  import optax

  from cnn_depth import state

  s = state.create_train_state(model, optax.identity(), jax.random.key(config["seed"]), image_shape)
  variables = {"params": s.params, "batch_stats": s.batch_stats}
  if images is not None and variables["batch_stats"]:
    variables["batch_stats"] = data_statistics(model, variables, images, mean, std)
  return variables


INIT_STATISTICS_EXAMPLES = 500  # training images whose batch statistics BN uses at step 0


def load_trained(
  workdir: str | os.PathLike,
  data_dir: str | None = None,
  *,
  streamed=False,
  step: int | None = None,
):
  """(model, variables, config, dataset) of a training workdir, ready for the lesion and path
  studies.

  The config is the run's `config.json` (a dict); the dataset is re-read with the run's dataset
  fields and seed (from `data_dir` if given: an imported net's workdir names none), so
  `dataset.test_*` is the split the run was evaluated on (its validation split where one was held
  out); the variables ({'params', 'batch_stats'}) are from the latest checkpoint, or from the one
  of `step` (0: the initialisation the run started from, re-drawn from its seed, its BN statistics
  those of the first `INIT_STATISTICS_EXAMPLES` training images). A streamed
  dataset (ImageNet) is opened, not read, where the caller says it can stream (`streamed=True`).
  """
  from cnn_depth import checkpoint, data, models  # jax and the data libraries: only here

  workdir = os.fspath(workdir)
  config = load_run(workdir).config
  ckpt_dir = workdir_lib.checkpoint_dir(workdir)
  if step != 0 and not checkpoint_steps(workdir):
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
  if step == 0:
    if getattr(ds, "streamed", False):
      raise ValueError("step 0 of a streamed dataset: its BN statistics need in-memory images")
    images = ds.train_images[:INIT_STATISTICS_EXAMPLES]
    variables = initial_variables(model, config, ds.image_shape, images, ds.mean, ds.std)
    return model, variables, config, ds
  restored = checkpoint.load_for_analysis(ckpt_dir, step)
  variables = {"params": restored["params"], "batch_stats": restored["batch_stats"] or {}}
  return model, variables, config, ds
