"""Li et al. 2018, "Visualizing the loss landscape of neural nets": the training loss and test error
around the trained weights along random filter-normalised directions (§4-5, Figs. 5-6), and the
Hessian's extreme eigenvalues through training and its eigenvalue density (§6; the density by
stochastic Lanczos quadrature, Ghorbani et al. 2019).

It measures He et al.'s runs (the he2016 study's grid and workdirs, at the depths chosen here):
plain nets sit in sharp, chaotic minima as depth grows, ResNets in wide, convex ones.

* `landscape_study`: landscape_1d.csv/png (model, depth, seed, alpha, train_loss, test_error) and
  landscape_2d.csv/png (contours of the lowest seed);
* `hessian_study`: hessian.csv/png (lambda_max, lambda_min, ratio at step 0 and every checkpoint)
  and hessian_density.csv/png (the last checkpoint);
each figure re-drawn from its CSV.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cnn_depth import lazy_import
from cnn_depth.studies import he2016, registry

hessian_lib = lazy_import("cnn_depth.analysis.hessian")
landscape = lazy_import("cnn_depth.analysis.landscape")
plotting = lazy_import("cnn_depth.analysis.plotting")
runs = lazy_import("cnn_depth.analysis.runs")


def _key(config: dict) -> tuple[str, int, int]:
  """(model family, depth, seed) of a run: the first columns of every CSV here."""
  return config["model"]["family"], int(config["model"]["depth"]), int(config["seed"])


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
  landscape_1d(paths["landscape_1d.csv"], os.path.join(out_dir, "landscape_1d.png"), caption)
  if two:
    landscape.write_landscape_2d_csv(paths["landscape_2d.csv"], two)
    seed = min(k[2] for k in two)
    landscape_2d(
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
      op = hessian_lib.HessianOperator(
        model, variables, *_train_set(ds, train_examples), ds.mean, ds.std, batch_size
      )
      rng = jax.random.fold_in(jax.random.key(key[2]), step)
      hi, lo = hessian_lib.extreme_eigenvalues(op, op.dim, rng, num_iters)
      extremes.setdefault(key, []).append((step, hi, lo))
      if step == steps[-1] and density_draws:
        grid, density = hessian_lib.spectral_density(
          op, op.dim, rng, density_iters, density_draws, num_points=400
        )
        densities[key] = [(step, grid, density)]
  hessian_lib.write_hessian_csv(os.path.join(out_dir, "hessian.csv"), extremes)
  hessian(os.path.join(out_dir, "hessian.csv"), os.path.join(out_dir, "hessian.png"), caption)
  if densities:
    hessian_lib.write_density_csv(os.path.join(out_dir, "hessian_density.csv"), densities)
    hessian_density(
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
      f"{plotting.net_name(model, depth)} seed {seed}: train loss {losses[len(alphas) // 2]:.4f}"
      f" at alpha 0, {losses[0]:.3g} / {losses[-1]:.3g} at alpha {alphas[0]:g} / {alphas[-1]:g}"
    )
    if key in extremes:
      step, hi, lo = extremes[key][-1]
      text += f"; step {step}: lambda_max {hi:.3g}, |lambda_min/lambda_max| {abs(lo / hi):.3g}"
    lines.append(text)
  return lines


def workdirs(o: registry.Options, runs_dir: str) -> list[str]:
  """He et al.'s workdirs at these depths and seeds: seed, then depth, then plain before ResNet."""
  from cnn_depth import workdir as workdir_lib

  return [
    os.path.join(runs_dir, workdir_lib.run_name(net, depth, seed))
    for seed in o.seeds
    for depth in o.depths
    for net in ("plain", "resnet")
  ]


def analyse(o: registry.Options, runs_dir: str, out_dir: str) -> list[str]:
  data = (
    f"embedded digits, width 16, batch 128, {o.steps} steps" if o.quick
    else "CIFAR-10, He et al.'s recipe (64k iterations)"
  )  # fmt: skip
  seeds = ",".join(str(s) for s in o.seeds)
  caption = (
    f"{data}; BN in inference mode; landscapes over all training images, directions "
    f"filter-normalised and drawn per seed; Hessian of the loss on {o.hessian_examples} training "
    f"images (Lanczos, 16 steps); seeds {seeds}; {registry.when()}"
  )
  dirs, common = workdirs(o, runs_dir), {"caption": caption, "data_dir": o.data_dir or None}
  one = landscape_study(dirs, out_dir, points_2d=o.points_2d, plane_seeds=o.seeds[:1], **common)
  extremes = hessian_study(
    dirs, out_dir, train_examples=o.hessian_examples, num_iters=16, density_iters=24,
    density_draws=1, **common,
  )  # fmt: skip
  return summarize_landscape(one, extremes) + [sharpness_shown(extremes)]


def sharpness_shown(extremes: dict) -> str:
  """The phenomenon: at the deepest depth the plain net's last-step lambda_max is above its ResNet
  twin's, in every seed (plain nets sit in sharper minima)."""
  depth = max((d for _, d, _ in extremes), default=None)
  seeds = sorted({s for m, d, s in extremes if d == depth})
  last = lambda m, s: extremes[(m, depth, s)][-1][1]
  pairs = [
    (last("cifar_plain", s), last("cifar_resnet", s))
    for s in seeds
    if ("cifar_plain", depth, s) in extremes and ("cifar_resnet", depth, s) in extremes
  ]
  shown = bool(pairs) and all(p > r for p, r in pairs)
  return (
    f"sharpness at depth {depth} (plain lambda_max above the ResNet's at the last step, "
    f"{len(pairs)} seeds): {'shown' if shown else 'NOT shown'}"
  )


def landscape_1d(csv_path: str, path: str, caption: str | None = None) -> str:
  """Li et al. 2018, Fig. 5 style: training loss (log scale) and test error along a random
  filter-normalised direction around the trained weights (alpha = 0), one colour a depth."""
  rows = plotting.read_rows(csv_path)
  colors = plotting.depth_colors(rows)
  fig, (a, b) = plotting.plt.subplots(1, 2, figsize=(10.4, 3.9))
  for ax, key, scale in ((a, "train_loss", 1.0), (b, "test_error", 100.0)):
    for (model, depth), (x, mean, std, n) in plotting.seed_means(
      rows, ("model", "depth"), "alpha", key
    ).items():
      style = {
        "color": colors[depth],
        "linestyle": plotting.CIFAR_STYLE.get(model, ":"),
        "linewidth": 1.6,
      }
      plotting.band(ax, x, scale * mean, scale * std, n, plotting.net_name(model, depth), **style)
    ax.set_xlabel("alpha (step along the filter-normalised direction)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
  a.set(title="(a) training loss", ylabel="cross-entropy", yscale="log")
  b.set(title="(b) test error", ylabel="test error (%)", ylim=(0, 100))
  return plotting.finish(fig, path, caption)


def landscape_2d(csv_path: str, path: str, seed: int = 0, caption: str | None = None) -> str:
  """Li et al. 2018, Fig. 5/6 style: contours of the training loss on the plane of two random
  filter-normalised directions through the trained weights, one panel a net (seed `seed`); the
  same log-spaced levels in every panel."""
  rows = [r for r in plotting.read_rows(csv_path) if r.get("seed", 0) == seed]
  nets = sorted({(r["model"], r["depth"]) for r in rows}, key=lambda m: (m[1], m[0]))
  losses = np.asarray([r["train_loss"] for r in rows], dtype=np.float64)
  levels = np.geomspace(max(losses.min(), 1e-4), losses.max(), 20)
  fig, axes = plotting.plt.subplots(
    1, len(nets), figsize=(3.4 * len(nets) + 1.0, 3.4), squeeze=False, layout="constrained"
  )
  for ax, (model, depth) in zip(axes[0], nets):
    mine = [r for r in rows if (r["model"], r["depth"]) == (model, depth)]
    alphas, betas = sorted({r["alpha"] for r in mine}), sorted({r["beta"] for r in mine})
    grid = np.full((len(betas), len(alphas)), np.nan)
    for r in mine:
      grid[betas.index(r["beta"]), alphas.index(r["alpha"])] = r["train_loss"]
    cs = ax.contour(alphas, betas, grid, levels=levels, cmap="viridis", norm="log", linewidths=0.9)
    ax.plot([0], [0], "k+")
    ax.set(title=plotting.net_name(model, depth), xlabel="alpha", ylabel="beta", aspect="equal")
  bar = fig.colorbar(cs, ax=axes[0].tolist(), label="training loss (log levels)", shrink=0.85)
  bar.ax.yaxis.set_major_formatter(plotting.matplotlib.ticker.FormatStrFormatter("%.3g"))
  bar.ax.yaxis.set_minor_formatter(plotting.matplotlib.ticker.NullFormatter())
  if caption:
    fig.supxlabel(caption, fontsize=8, wrap=True)
  return plotting.save(fig, path)


def hessian(csv_path: str, path: str, caption: str | None = None) -> str:
  """Li et al. 2018, Fig. 7 in numbers: (a) the largest Hessian eigenvalue of the training loss
  and (b) |lambda_min / lambda_max| at checkpoints through training (step 0: the initialisation);
  a ratio near 0 is a convex-looking neighbourhood, a large one a saddle."""
  rows = plotting.read_rows(csv_path)
  for r in rows:
    r["ratio"] = abs(r["lambda_min"] / r["lambda_max"]) if r["lambda_max"] else np.nan
  colors = plotting.depth_colors(rows)
  fig, (a, b) = plotting.plt.subplots(1, 2, figsize=(10.4, 3.9))
  for ax, key in ((a, "lambda_max"), (b, "ratio")):
    for (model, depth), (x, mean, std, n) in plotting.seed_means(
      rows, ("model", "depth"), "step", key
    ).items():
      style = {
        "color": colors[depth],
        "linestyle": plotting.CIFAR_STYLE.get(model, ":"),
        "marker": "o",
      }
      plotting.band(ax, x, mean, std, n, plotting.net_name(model, depth), markersize=3, **style)
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
  a.set(title="(a) largest eigenvalue", ylabel="lambda_max", yscale="log")
  b.set(title="(b) |lambda_min / lambda_max|", ylabel="ratio", yscale="log")
  return plotting.finish(fig, path, caption)


def hessian_density(csv_path: str, path: str, caption: str | None = None) -> str:
  """Ghorbani et al. 2019, Fig. 1 style: the Hessian eigenvalue density by stochastic Lanczos
  quadrature (log scale) at the last step of each net, one panel a depth, one line a seed (each
  seed's density has its own grid)."""
  rows = plotting.read_rows(csv_path)
  curves: dict[tuple, list] = {}
  for r in rows:
    curves.setdefault((r["depth"], r["model"], r["seed"], r["step"]), []).append(r)
  depths = sorted({k[0] for k in curves})
  fig, axes = plotting.plt.subplots(1, len(depths), figsize=(5.2 * len(depths), 3.7), squeeze=False)
  for ax, depth in zip(axes[0], depths):
    named = set()
    for (d, model, seed, step), points in sorted(curves.items()):
      if d != depth:
        continue
      x = np.asarray([p["eigenvalue"] for p in points])
      y = np.maximum(np.asarray([p["density"] for p in points]), 1e-8)
      label = None if model in named else f"{plotting.net_name(model, depth)} (step {step})"
      named.add(model)
      color = plotting.COLORS[0 if model == "cifar_resnet" else 1]
      ax.plot(
        x,
        y,
        color=color,
        linestyle=plotting.CIFAR_STYLE.get(model, ":"),
        linewidth=1.1,
        label=label,
      )
    ax.set(title=f"depth {depth}: one line a seed", xlabel="eigenvalue", ylabel="density")
    ax.set(yscale="log", ylim=(1e-6, None))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
  return plotting.finish(fig, path, caption)


STUDY = registry.register(
  registry.Study(
    name="li2018",
    paper="Li et al. 2018, Visualizing the loss landscape of neural nets (Figs. 5-6, §6)",
    quick={"seeds": [0, 1, 2], "depths": [20, 44], "steps": 800, "points_2d": 15,
           "hessian_examples": 256},
    full={"seeds": [0, 1, 2], "depths": [20, 56], "steps": 0, "points_2d": 15,
          "hessian_examples": 256},
    grid=he2016.grid,
    analyse=analyse,
    runs_dir="he2016",
  )
)  # fmt: skip
