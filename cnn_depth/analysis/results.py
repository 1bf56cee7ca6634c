"""Tables of finished runs: the quickstart summary and He et al.'s error-vs-depth table. No jax."""

from __future__ import annotations

import csv
import os
from typing import Sequence

import numpy as np

from cnn_depth.analysis.runs import Run


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
      "family": run.family,
      "depth": run.depth,
      "final_train_error": run.last("train_error"),
      "final_test_error": run.last("test_error"),
      "final_train_eval_error": run.last("train_eval_error"),
      "steps": int(steps[-1]) if len(steps) else 0,
      "status": (run.status or {}).get("status"),
    }
  return out


def as_group(runs: Run | Sequence[Run]) -> list[Run]:
  """A run, or several seeds of one net, as a list."""
  return [runs] if isinstance(runs, Run) else list(runs)


def mean_curve(runs: Run | Sequence[Run], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(steps, mean, std) of `key` over the runs (seeds of one net), at the steps every run logged;
  the std is 0 for a single run."""
  curves = [dict(zip(*r.curve(key))) for r in as_group(runs)]
  common = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
  values = np.asarray([[c[s] for s in common] for c in curves], dtype=np.float64)
  if not common:
    return np.zeros(0), np.zeros(0), np.zeros(0)
  return np.asarray(common), values.mean(0), values.std(0)


def seed_table(runs: dict[str, Run]) -> list[dict]:
  """One row per run: family, depth, seed and final errors (as in `summary`), sorted; the per-seed
  view behind `error_table`'s means, for statements of the kind "in every seed"."""
  rows = [
    {
      "family": r.family,
      "depth": r.depth,
      "seed": int(r.config.get("seed", 0)),
      "train_error": r.last("train_error"),
      "test_error": r.last("test_error"),
    }
    for r in runs.values()
  ]
  return sorted(rows, key=lambda row: (row["family"], row["depth"], row["seed"]))


def write_table(path: str, header: Sequence[str], rows) -> None:
  """A CSV of `header` and `rows` (tuples), its folder created: every study's output file."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def write_rows(path: str, rows: list[dict]) -> None:
  """`rows` (dicts with the same keys) as a CSV whose columns are the first row's keys."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)


def error_table(
  runs: dict[str, Run], params: dict[tuple[str, int], int] | None = None
) -> list[dict]:
  """He et al. 2016 Table 6 layout: one row per (family, depth), mean and std over seeds.

  Final errors as in `summary`; `params` optionally maps (family, depth) to a parameter count.
  """
  groups: dict[tuple[str, int], list[Run]] = {}
  for run in runs.values():
    groups.setdefault((run.family, run.depth), []).append(run)
  rows = []
  for (family, depth), members in sorted(groups.items()):
    row = {
      "family": family,
      "depth": depth,
      "params": (params or {}).get((family, depth)),
      "seeds": len(members),
    }
    for key in ("train_error", "test_error"):
      values = [v for v in (r.last(key) for r in members) if v is not None]
      row[key] = float(np.mean(values)) if values else None
      row[key + "_std"] = float(np.std(values)) if len(values) > 1 else None
      row[key + "_best"] = float(np.min(values)) if values else None
    rows.append(row)
  return rows


def write_error_table(rows: list[dict], csv_path: str, md_path: str) -> None:
  """CSV (family, depth, params, train_error, test_error, seeds, ...) and a Markdown table of errors
  in %, "mean ± std (best)" where there are several seeds, as He et al. report ResNet-110."""
  os.makedirs(os.path.dirname(os.path.abspath(csv_path)), exist_ok=True)
  fields = [
    "family",
    "depth",
    "params",
    "train_error",
    "test_error",
    "seeds",
    "train_error_std",
    "test_error_std",
    "train_error_best",
    "test_error_best",
  ]
  with open(csv_path, "w", newline="") as f:
    writer = csv.DictWriter(f, fields)
    writer.writeheader()
    writer.writerows(rows)

  def pct(row, key):
    if row[key] is None:
      return "-"
    text = f"{100 * row[key]:.2f}"
    if row[key + "_std"] is not None:
      text += f" ± {100 * row[key + '_std']:.2f} (best {100 * row[key + '_best']:.2f})"
    return text

  lines = [
    "| family | depth | params | train error (%) | test error (%) | seeds |",
    "|---|---|---|---|---|---|",
  ]
  for r in rows:
    params = "-" if r["params"] is None else f"{r['params'] / 1e6:.2f}M"
    lines.append(
      f"| {r['family']} | {r['depth']} | {params} | {pct(r, 'train_error')} | "
      f"{pct(r, 'test_error')} | {r['seeds']} |"
    )
  with open(md_path, "w") as f:
    f.write("\n".join(lines) + "\n")
