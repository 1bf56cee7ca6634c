"""Balduzzi et al. 2017, "The shattered gradients problem": the correlation of input gradients
along lines of inputs decays with depth like white noise in plain nets, slowly in ResNets (Figs.
2-3), at initialisation and after training.

It measures He et al.'s runs (the he2016 study's grid and workdirs). `shattered_study` writes
gradient_correlation.csv (model, depth, seed, trained, lag, correlation) and
gradient_correlation.png, re-drawn from the CSV.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cnn_depth import lazy_import
from cnn_depth.studies import he2016, li2018, registry

plotting = lazy_import("cnn_depth.analysis.plotting")
runs = lazy_import("cnn_depth.analysis.runs")
shattered = lazy_import("cnn_depth.analysis.shattered")


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
      results[(*li2018._key(config), trained)] = mean
  csv_path = os.path.join(out_dir, "gradient_correlation.csv")
  shattered.write_correlation_csv(csv_path, results)
  gradient_correlation(
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
    lines.append(f"{plotting.net_name(model, depth)} {state}: lag {lag} {mean:.3f} ({each})")
  return lines


def analyse(o: registry.Options, runs_dir: str, out_dir: str) -> list[str]:
  data, test = (
    (f"embedded digits, width 16, batch 128, {o.steps} steps", "test digits") if o.quick
    else ("CIFAR-10, He et al.'s recipe (64k iterations)", "test images")
  )  # fmt: skip
  seeds = ",".join(str(s) for s in o.seeds)
  caption = (
    f"{data}; gradient of the predicted class's logit w.r.t. the input at {o.points} points of a "
    f"line through each of {o.lines} {test} (±{o.radius:g} per-pixel std, a random direction), "
    f"correlation of gradients k points apart, mean over lines; seeds {seeds}; {registry.when()}"
  )
  results = shattered_study(
    li2018.workdirs(o, runs_dir), out_dir, num_lines=o.lines, num_points=o.points,
    radius=o.radius, caption=caption, data_dir=o.data_dir or None,
  )  # fmt: skip
  return summarize_correlation(results, 8) + [shattering_shown(results, 8)]


def shattering_shown(results: dict, lag: int) -> str:
  """The phenomenon: at initialisation the ResNet's gradient correlation at `lag` is above its
  plain twin's at every depth, in every seed (gradients of plain nets shatter)."""
  at = {key: float(np.asarray(curve)[lag]) for key, curve in results.items()}
  pairs = [
    (at[("cifar_resnet", d, s, False)], at[("cifar_plain", d, s, False)])
    for (m, d, s, t) in at
    if m == "cifar_plain" and not t and ("cifar_resnet", d, s, False) in at
  ]
  shown = bool(pairs) and all(r > p for r, p in pairs)
  return (
    f"shattering at initialisation (the ResNet's lag-{lag} correlation above its plain twin's, "
    f"{len(pairs)} depth x seed pairs): {'shown' if shown else 'NOT shown'}"
  )


def gradient_correlation(csv_path: str, path: str, lag: int = 8, caption: str | None = None) -> str:
  """Balduzzi et al. 2017, Figs. 2-3 in our setting: (a, b) the correlation of input gradients k
  points apart along a line of inputs, at initialisation and after training, one colour a depth
  (ResNets solid, plain nets dashed); (c) the correlation at lag `lag` against depth."""
  rows = plotting.read_rows(csv_path)
  curves = plotting.seed_means(rows, ("trained", "model", "depth"), "lag", "correlation")
  colors = plotting.depth_colors(rows)
  fig, axes = plotting.plt.subplots(1, 3, figsize=(15, 3.9))
  for ax, trained, title in ((axes[0], 0, "(a) at initialisation"), (axes[1], 1, "(b) trained")):
    for (t, model, depth), (x, mean, std, n) in curves.items():
      if t == trained:
        style = {
          "color": colors[depth],
          "linestyle": plotting.CIFAR_STYLE.get(model, ":"),
          "linewidth": 1.6,
        }
        plotting.band(ax, x, mean, std, n, plotting.net_name(model, depth), **style)
    ax.set(
      title=title, xlabel="lag k (points along the line)", ylabel="correlation", ylim=(-0.1, 1)
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, ncol=2)
  c = axes[2]
  at_lag = plotting.seed_means(
    [r for r in rows if r["lag"] == lag], ("trained", "model"), "depth", "correlation"
  )
  for (trained, model), (x, mean, std, n) in at_lag.items():
    style = {"color": plotting.COLORS[0 if model == "cifar_resnet" else 1], "marker": "os"[trained]}
    style.update(linestyle=plotting.CIFAR_STYLE.get(model, ":"), linewidth=1.4)
    plotting.band(
      c,
      x,
      mean,
      std,
      n,
      f"{plotting.CIFAR_NAME.get(model, model)}, {['init', 'trained'][trained]}",
      **style,
    )
  c.set(title=f"(c) correlation at lag {lag} vs depth", xlabel="depth", ylabel="correlation")
  c.grid(alpha=0.3)
  c.legend(fontsize=7, frameon=False)
  return plotting.finish(fig, path, caption)


STUDY = registry.register(
  registry.Study(
    name="balduzzi2017",
    paper="Balduzzi et al. 2017, The shattered gradients problem (Figs. 2-3)",
    quick={"seeds": [0, 1, 2], "depths": [8, 20, 32, 44], "steps": 800, "lines": 6,
           "points": 128, "radius": 1.0},
    full={"seeds": [0, 1, 2], "depths": [20, 32, 44, 56, 110], "steps": 0, "lines": 6,
          "points": 128, "radius": 1.0},
    grid=he2016.grid,
    analyse=analyse,
    runs_dir="he2016",
  )
)  # fmt: skip
