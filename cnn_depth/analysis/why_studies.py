"""Why residual connections fix depth, measured on trained workdirs: open each run (at its
initialisation and its checkpoints), measure, write the CSV, draw the figure from the CSV.

* `shattered_study`: Balduzzi et al. 2017, the correlation of input gradients along lines of inputs,
  at initialisation and after training (gradient_correlation.csv/png).
* `landscape_study`: Li et al. 2018, the training loss and test error around the trained weights
  along random filter-normalised directions (landscape_1d.csv/png, landscape_2d.csv/png).
* `hessian_study`: the extreme Hessian eigenvalues at every checkpoint and the eigenvalue density
  at the last (hessian.csv/png, hessian_density.csv/png).

The scripts (`scripts/shattered_gradients.py`, `scripts/loss_landscape.py`) are thin wrappers; each
function returns what it measured so a caller can print it. Every net of a study goes into the same
files, one row a (net, seed); seeds are the runs' own (`config['seed']`).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cnn_depth.analysis import hessian, landscape, runs, shattered, why_figures


def _key(config: dict) -> tuple[str, int, int]:
  """(model family, depth, seed) of a run: the first columns of every CSV here."""
  return config["model"]["family"], int(config["model"]["depth"]), int(config["seed"])


def shattered_study(
  workdirs: Sequence[str],
  out_dir: str,
  *,
  num_lines: int = 8,
  num_points: int = 256,
  radius: float = 1.0,
  max_lag: int = 32,
  lag: int = 8,
  caption: str | None = None,
  data_dir: str | None = None,
) -> dict:
  """Balduzzi et al. 2017 on every workdir: the input-gradient correlation per lag along
  `num_lines` lines of `num_points` inputs through test images (`shattered.correlation_study`,
  the logit of the class predicted at the line's centre), at initialisation (step 0, re-drawn from
  the run's seed) and with the trained weights. Lines and directions are drawn from the run's seed,
  the same for both. Writes gradient_correlation.csv (model, depth, seed, trained, lag,
  correlation) and gradient_correlation.png; returns {(model, depth, seed, trained): curve}.
  """
  results = {}
  for workdir in workdirs:
    for trained, step in ((False, 0), (True, None)):
      model, variables, config, ds = runs.load_trained(workdir, data_dir, step=step)
      mean, _ = shattered.correlation_study(
        model,
        variables,
        ds.test_images,
        ds.mean,
        ds.std,
        num_lines=num_lines,
        num_points=num_points,
        radius=radius,
        max_lag=max_lag,
        seed=int(config["seed"]),
      )
      results[(*_key(config), trained)] = mean
  csv_path = os.path.join(out_dir, "gradient_correlation.csv")
  shattered.write_correlation_csv(csv_path, results)
  why_figures.gradient_correlation(
    csv_path,
    os.path.join(out_dir, "gradient_correlation.png"),
    lag=min(lag, max_lag),
    caption=caption,
  )
  return results


def summarize_correlation(results: dict, lag: int) -> list[str]:
  """One line per (net, trained): the correlation at `lag`, mean and per seed."""
  groups: dict[tuple, list[tuple[int, float]]] = {}
  for (model, depth, seed, trained), curve in sorted(results.items()):
    groups.setdefault((model, depth, trained), []).append((seed, float(np.asarray(curve)[lag])))
  lines = []
  for (model, depth, trained), values in groups.items():
    each = ", ".join(f"{v:.3f}" for _, v in values)
    mean = np.mean([v for _, v in values])
    state = "trained" if trained else "init"
    lines.append(f"{why_figures.net_name(model, depth)} {state}: lag {lag} {mean:.3f} ({each})")
  return lines


def _train_set(ds, examples: int):
  """The first `examples` training images and labels (0: all)."""
  n = examples or len(ds.train_labels)
  return ds.train_images[:n], ds.train_labels[:n]


def landscape_study(
  workdirs: Sequence[str],
  out_dir: str,
  *,
  span: float = 1.0,
  points_1d: int = 41,
  points_2d: int = 21,
  plane_seeds: Sequence[int] | None = None,
  train_examples: int = 0,
  batch_size: int = 500,
  caption: str | None = None,
  data_dir: str | None = None,
) -> dict:
  """Li et al. 2018 on every trained workdir: the training loss and test error along a random
  filter-normalised direction d1 (alpha in [-span, span], `points_1d` points), and the training
  loss on the plane of d1 and a second direction d2 (`points_2d` x `points_2d`; 0 skips it; only
  the runs of `plane_seeds` where given, as it is the costly part), BN in inference mode with the
  trained statistics. The directions are drawn from the run's seed. The training loss is over the
  first `train_examples` training images (0: all). Writes landscape_1d.csv/png and
  landscape_2d.csv/png; returns {(model, depth, seed): (alphas, train losses, test errors)}.
  """
  import jax

  alphas = np.linspace(-span, span, points_1d)
  grid = np.linspace(-span, span, points_2d)
  one, two = {}, {}
  for workdir in workdirs:
    model, variables, config, ds = runs.load_trained(workdir, data_dir)
    key = _key(config)
    d1, d2 = (
      landscape.filter_normalized_direction(k, variables["params"])
      for k in jax.random.split(jax.random.key(key[2]))
    )
    train = landscape.LossSurface(
      model, variables, *_train_set(ds, train_examples), ds.mean, ds.std, batch_size
    )
    test = landscape.LossSurface(
      model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std, batch_size
    )
    one[key] = (alphas, train.line(d1, alphas)[0], test.line(d1, alphas)[1])
    if points_2d and (plane_seeds is None or key[2] in plane_seeds):
      two[key] = (grid, grid, train.plane(d1, d2, grid, grid)[0])
  paths = {name: os.path.join(out_dir, name) for name in ("landscape_1d.csv", "landscape_2d.csv")}
  landscape.write_landscape_1d_csv(paths["landscape_1d.csv"], one)
  why_figures.landscape_1d(
    paths["landscape_1d.csv"], os.path.join(out_dir, "landscape_1d.png"), caption
  )
  if two:
    landscape.write_landscape_2d_csv(paths["landscape_2d.csv"], two)
    seed = min(k[2] for k in two)
    why_figures.landscape_2d(
      paths["landscape_2d.csv"], os.path.join(out_dir, "landscape_2d.png"), seed, caption
    )
  return one


def hessian_study(
  workdirs: Sequence[str],
  out_dir: str,
  *,
  train_examples: int = 512,
  num_iters: int = 20,
  density_iters: int = 40,
  density_draws: int = 2,
  batch_size: int = 512,
  caption: str | None = None,
  data_dir: str | None = None,
) -> dict:
  """The Hessian of the training loss (mean cross-entropy over the first `train_examples` training
  images, BN in inference mode) at the initialisation (step 0, BN statistics of the data) and at
  every checkpoint of every workdir: lambda_max and lambda_min from `num_iters` Lanczos steps (Li et
  al. 2018 §6), and at the last checkpoint the eigenvalue density by stochastic Lanczos quadrature
  (`density_draws` starts of `density_iters` steps; Ghorbani et al. 2019). Writes hessian.csv/png
  and hessian_density.csv/png; returns {(model, depth, seed): [(step, lambda_max, lambda_min)]}.
  """
  import jax

  extremes, densities = {}, {}
  for workdir in workdirs:
    steps = [0, *runs.checkpoint_steps(workdir)]
    for step in steps:
      model, variables, config, ds = runs.load_trained(workdir, data_dir, step=step)
      key = _key(config)
      op = hessian.HessianOperator(
        model, variables, *_train_set(ds, train_examples), ds.mean, ds.std, batch_size
      )
      rng = jax.random.fold_in(jax.random.key(key[2]), step)
      hi, lo = hessian.extreme_eigenvalues(op, op.dim, rng, num_iters)
      extremes.setdefault(key, []).append((step, hi, lo))
      if step == steps[-1] and density_draws:
        grid, density = hessian.spectral_density(
          op, op.dim, rng, density_iters, density_draws, num_points=400
        )
        densities[key] = [(step, grid, density)]
  hessian.write_hessian_csv(os.path.join(out_dir, "hessian.csv"), extremes)
  why_figures.hessian(
    os.path.join(out_dir, "hessian.csv"), os.path.join(out_dir, "hessian.png"), caption
  )
  if densities:
    hessian.write_density_csv(os.path.join(out_dir, "hessian_density.csv"), densities)
    why_figures.hessian_density(
      os.path.join(out_dir, "hessian_density.csv"),
      os.path.join(out_dir, "hessian_density.png"),
      caption,
    )
  return extremes


def summarize_landscape(one: dict, extremes: dict) -> list[str]:
  """One line per (net, seed): the training loss at alpha = 0 and at the ends of the 1-D line, and
  the last step's lambda_max and |lambda_min / lambda_max|."""
  lines = []
  for key, (alphas, losses, errors) in sorted(one.items()):
    model, depth, seed = key
    text = (
      f"{why_figures.net_name(model, depth)} seed {seed}: train loss {losses[len(alphas) // 2]:.4f}"
      f" at alpha 0, {losses[0]:.3g} / {losses[-1]:.3g} at alpha {alphas[0]:g} / {alphas[-1]:g}"
    )
    if key in extremes:
      step, hi, lo = extremes[key][-1]
      text += f"; step {step}: lambda_max {hi:.3g}, |lambda_min/lambda_max| {abs(lo / hi):.3g}"
    lines.append(text)
  return lines
