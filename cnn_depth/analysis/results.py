"""Reading finished (or running) workdirs: config.json, metrics.jsonl, status.json. No jax."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from cnn_depth import logs


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


def load_run(workdir: str) -> Run:
  config = logs.read_config(workdir)
  if config is None:
    raise FileNotFoundError(f"{workdir} holds no config.json: is it a training workdir?")
  return Run(os.path.abspath(workdir), config, logs.read_metrics(workdir), logs.read_status(workdir))


def summary(runs: dict[str, Run]) -> dict[str, dict]:
  """The quickstart summary: per run family, depth, final train/test error and steps.

  `final_train_error` is the training-mode mini-batch error (augmentation on) over the last logging
  interval, as He et al. plot it; `final_train_eval_error`, where logged, is the error of the final
  model in inference mode on the whole training set.
  """
  out = {}
  for name, run in runs.items():
    steps, _ = run.curve("train_error")
    out[name] = {
        "family": run.family, "depth": run.depth,
        "final_train_error": run.last("train_error"),
        "final_test_error": run.last("test_error"),
        "final_train_eval_error": run.last("train_eval_error"),
        "steps": int(steps[-1]) if len(steps) else 0,
        "status": (run.status or {}).get("status"),
    }
  return out
