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


def _run_seed(config: dict) -> int:
  """The seed a run was trained with (0 where its config names none)."""
  return int(config.get("seed", 0))


def _lesion_run(model, variables, ds, options: dict) -> tuple:
  """(single, multi, reorder) measurements of one trained net; multi and reorder None where not
  asked for (reorder: or not applicable)."""
  streamed = getattr(ds, "streamed", False)  # ImageNet: its validation split, read once
  error = _error_function(model, variables, ds, options["batch_size"])
  intact, errors = lesion.single_block_lesion(error, model.num_blocks)
  single, multi, reorder = (intact, errors, models.downsampling_blocks(model)), None, None
  samples, seed = options["samples"], options["seed"]
  if options["multi"]:
    ks = list(range(1, (min(options["k_max"], model.num_blocks) or model.num_blocks) + 1))
    multi = (ks, *lesion.multi_block_lesion(error, model.num_blocks, ks, samples, seed))
  # Reordering a plain net is not one of the paper's experiments; nor, here, of a streamed set.
  if options["reorder"] and model.residual and not streamed:
    reorder = lesion.reorder_lesion(
      model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std,
      options["max_swaps"], samples, seed,
    )  # fmt: skip
  return single, multi, reorder


def _seed_summary(by_seed: dict) -> dict:
  """{'intact', 'errors' (means over seeds), 'downsampling', 'by_seed': {seed: {'intact',
  'errors'}}} of one net's single-block lesions {seed: (intact, errors, downsampling)}."""
  intact = np.asarray([float(v[0]) for v in by_seed.values()])
  errors = np.asarray([np.asarray(v[1], np.float64) for v in by_seed.values()])
  return {
    "intact": float(intact.mean()),
    "errors": errors.mean(0),
    "downsampling": next(iter(by_seed.values()))[2],
    "by_seed": {s: {"intact": i, "errors": e} for s, i, e in zip(by_seed, intact, errors)},
  }


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
  (lesion_reorder.csv, drawn into lesion_multi.png, Fig. 5b). `seed` seeds that sampling.

  Workdirs that share a label (given, or the net's name) are seeds of one net, the seed read from
  each run's config: the CSVs hold a row per seed (their seed column), the figures the mean over
  seeds with its spread. A second run of a label with a seed already seen is a different net of the
  same name: its folder name is appended to the label. Returns {label: {'intact', 'errors' (means
  over seeds), 'downsampling', 'by_seed': {seed: {'intact', 'errors'}}}}.
  """
  labels = list(labels or [None] * len(workdirs))
  if len(labels) != len(workdirs):
    raise ValueError(f"{len(labels)} labels for {len(workdirs)} workdirs")
  options = dict(
    multi=multi, reorder=reorder, k_max=k_max, samples=samples, max_swaps=max_swaps, seed=seed,
    batch_size=batch_size,
  )  # fmt: skip
  single, multi_rows, reorder_rows = {}, {}, {}
  for workdir, label in zip(workdirs, labels):
    model, variables, config, ds = runs.load_trained(workdir, data_dir, streamed=True)
    label, run_seed = label or net_label(config), _run_seed(config)
    if run_seed in single.get(label, {}):
      label = f"{label} ({os.path.basename(os.path.normpath(workdir))})"
    measured = _lesion_run(model, variables, ds, options)
    for table, value in zip((single, multi_rows, reorder_rows), measured):
      if value is not None:
        table.setdefault(label, {})[run_seed] = value
  lesion.write_single_csv(os.path.join(out_dir, "lesion_single.csv"), single)
  plotting.lesion_single(single, os.path.join(out_dir, "lesion_single.png"), caption=caption)
  if multi:
    lesion.write_multi_csv(os.path.join(out_dir, "lesion_multi.csv"), multi_rows)
    if reorder_rows:
      lesion.write_reorder_csv(os.path.join(out_dir, "lesion_reorder.csv"), reorder_rows)
    plotting.lesion_multi(
      multi_rows, os.path.join(out_dir, "lesion_multi.png"), reorder_rows or None, caption=caption
    )
  return {label: _seed_summary(by_seed) for label, by_seed in single.items()}


def _path_gradients_by_seed(workdirs: Sequence[str], batch: int, options: dict):
  """(label, num_blocks, {seed: (mean, std)}) of the seeds of one residual net; ValueError where
  the workdirs are not seeds of one net."""
  label, num_blocks, by_seed = None, None, {}
  for workdir in workdirs:
    model, variables, config, ds = runs.load_trained(workdir)
    this, run_seed = net_label(config), _run_seed(config)
    same_net = label is None or (this, model.num_blocks) == (label, num_blocks)
    if not same_net or run_seed in by_seed:
      raise ValueError(
        f"the workdirs must be seeds of one net: {workdir} holds {this} seed {run_seed}, "
        f"after {label} seeds {list(by_seed)}"
      )
    label, num_blocks = this, model.num_blocks
    rows = slice(0, batch)
    by_seed[run_seed] = paths.path_gradient_norms(
      model, variables, ds.train_images[rows], ds.train_labels[rows], ds.mean, ds.std,
      list(range(num_blocks + 1)), **options,
    )  # fmt: skip
  return label, num_blocks, by_seed


def path_gradient_study(
  workdirs: str | Sequence[str],
  out_dir: str,
  *,
  samples: int = 100,
  batch: int = 128,
  share: float = 0.9,
  seed: int = 0,
  caption: str | None = None,
) -> dict:
  """Veit et al. 2016 §5 on a residual workdir, or the seeds of one residual net: the gradient
  magnitude at the input carried by paths of each length, on its first `batch` training images
  (path_gradients.csv/png, Fig. 6; path_gradients_by_seed.csv).

  With several seeds the CSV and figure hold the mean over seeds, and the spread over seeds
  (`paths.write_csv`). Returns {'label', 'num_blocks', 'effective' (the shortest range of path
  lengths holding `share` of the total gradient, of the mean over seeds), 'mean' (over seeds),
  'std' (over the sampled paths, within a seed), 'seed_std' (of the per-seed means), 'by_seed':
  {seed: {'mean', 'std', 'effective'}}}; a plain net, or workdirs of different nets or the same
  seed, raise ValueError.
  """
  workdirs = [workdirs] if isinstance(workdirs, (str, os.PathLike)) else list(workdirs)
  if not workdirs:
    raise ValueError("no workdir")
  label, n, by_seed = _path_gradients_by_seed(workdirs, batch, dict(samples=samples, seed=seed))
  ks, counts = list(range(n + 1)), paths.path_counts(n)
  means = np.asarray([m for m, _ in by_seed.values()], np.float64)
  stds = np.asarray([s for _, s in by_seed.values()], np.float64)
  mean, seed_std = means.mean(0), means.std(0)
  std = stds[0] if len(stds) == 1 else np.sqrt(np.mean(np.square(stds), 0))
  effective = paths.effective_paths(counts, mean, share=share)
  paths.write_csv(
    os.path.join(out_dir, "path_gradients.csv"), ks, counts, mean, std, seed_std, len(by_seed)
  )
  paths.write_seed_csv(os.path.join(out_dir, "path_gradients_by_seed.csv"), ks, counts, by_seed)
  plotting.path_gradients(
    ks, counts, means, stds, effective, os.path.join(out_dir, "path_gradients.png"),
    caption=caption, samples=samples,
  )  # fmt: skip
  return {
    "label": label,
    "num_blocks": n,
    "effective": effective,
    "mean": mean,
    "std": std,
    "seed_std": seed_std,
    "by_seed": {
      s: {"mean": m, "std": d, "effective": paths.effective_paths(counts, m, share=share)}
      for s, m, d in zip(by_seed, means, stds)
    },
  }
