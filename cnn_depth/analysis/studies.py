"""Studies of trained workdirs: open the run, measure, write the CSV, draw the figure.

The sequence the scripts (`scripts/lesion.py`, `scripts/path_gradients.py`) and the quickstart
share; each function returns what it measured, so a caller can print or record it.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cnn_depth import models
from cnn_depth.analysis import lesion, paths, plotting, runs


def net_label(config: dict) -> str:
  """The registry's name of a run's net, e.g. 'ResNet-32'."""
  model = config["model"]
  return models.registry.get(model["family"]).net_label(model["depth"], model)


def _error_function(model, variables, ds, batch_size: int):
  """The test error as a function of the gates, over an in-memory or a streamed test split."""
  batch = {"batch_size": batch_size} if batch_size else {}
  if getattr(ds, "streamed", False):
    return lesion.StreamedErrorFunction(model, variables, ds, **batch)
  return lesion.make_error_fn(
    model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std, **batch
  )


def lesion_study(
  workdirs: Sequence[str],
  out_dir: str,
  labels: Sequence[str | None] | None = None,
  *,
  multi: bool = True,
  reorder: bool = True,
  k_max: int = 0,
  samples: int = 20,
  max_swaps: int = 10,
  seed: int = 0,
  caption: str | None = None,
  data_dir: str | None = None,
  batch_size: int = 0,
) -> dict:
  """Veit et al. 2016 §4 on every workdir's test set, all nets in the same files of `out_dir`.

  Each block deleted in turn (lesion_single.csv/png, Fig. 3); with `multi`, k random blocks deleted
  for k = 1..`k_max` (0: all), `samples` sets each (lesion_multi.csv/png, Fig. 5a); with `reorder`,
  for residual nets, `samples` reorderings by up to `max_swaps` swaps of same-shape blocks
  (lesion_reorder.csv, drawn into lesion_multi.png, Fig. 5b). Returns {label: {'intact', 'errors',
  'downsampling'}}.
  """
  labels = list(labels or [None] * len(workdirs))
  if len(labels) != len(workdirs):
    raise ValueError(f"{len(labels)} labels for {len(workdirs)} workdirs")
  single, multi_rows, reorder_rows = {}, {}, {}
  for workdir, label in zip(workdirs, labels):
    model, variables, config, ds = runs.load_trained(workdir, data_dir, streamed=True)
    label = label or net_label(config)
    if label in single:
      label = f"{label} ({os.path.basename(os.path.normpath(workdir))})"
    streamed = getattr(ds, "streamed", False)  # ImageNet: its validation split, read once
    error = _error_function(model, variables, ds, batch_size)
    intact, errors = lesion.single_block_lesion(error, model.num_blocks)
    single[label] = (intact, errors, models.downsampling_blocks(model))
    if multi:
      ks = list(range(1, (min(k_max, model.num_blocks) or model.num_blocks) + 1))
      multi_rows[label] = (
        ks,
        *lesion.multi_block_lesion(error, model.num_blocks, ks, samples, seed),
      )
    # Reordering a plain net is not one of the paper's experiments; nor, here, of a streamed set.
    if reorder and model.residual and not streamed:
      reorder_rows[label] = lesion.reorder_lesion(
        model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std, max_swaps, samples, seed
      )
  lesion.write_single_csv(os.path.join(out_dir, "lesion_single.csv"), single)
  plotting.lesion_single(single, os.path.join(out_dir, "lesion_single.png"), caption=caption)
  if multi:
    lesion.write_multi_csv(os.path.join(out_dir, "lesion_multi.csv"), multi_rows)
    if reorder_rows:
      lesion.write_reorder_csv(os.path.join(out_dir, "lesion_reorder.csv"), reorder_rows)
    plotting.lesion_multi(
      multi_rows, os.path.join(out_dir, "lesion_multi.png"), reorder_rows or None, caption=caption
    )
  return {
    label: {"intact": intact, "errors": errors, "downsampling": down}
    for label, (intact, errors, down) in single.items()
  }


def path_gradient_study(
  workdir: str,
  out_dir: str,
  *,
  samples: int = 100,
  batch: int = 128,
  share: float = 0.9,
  seed: int = 0,
  caption: str | None = None,
) -> dict:
  """Veit et al. 2016 §5 on a residual workdir: the gradient magnitude at the input carried by paths
  of each length, on its first `batch` training images (path_gradients.csv/png, Fig. 6).

  Returns {'label', 'num_blocks', 'effective' (the shortest range of path lengths holding `share` of
  the total gradient), 'mean', 'std'}; a plain net raises ValueError.
  """
  model, variables, config, ds = runs.load_trained(workdir)
  ks = list(range(model.num_blocks + 1))
  rows = slice(0, batch)
  mean, std = paths.path_gradient_norms(
    model,
    variables,
    ds.train_images[rows],
    ds.train_labels[rows],
    ds.mean,
    ds.std,
    ks,
    samples=samples,
    seed=seed,
  )
  counts = paths.path_counts(model.num_blocks)
  effective = paths.effective_paths(counts, mean, share=share)
  paths.write_csv(os.path.join(out_dir, "path_gradients.csv"), ks, counts, mean, std)
  plotting.path_gradients(
    ks,
    counts,
    mean,
    std,
    effective,
    os.path.join(out_dir, "path_gradients.png"),
    caption=caption,
    samples=samples,
  )
  return {
    "label": net_label(config),
    "num_blocks": model.num_blocks,
    "effective": effective,
    "mean": np.asarray(mean),
    "std": np.asarray(std),
  }
