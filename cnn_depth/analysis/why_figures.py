"""Figures of why residual connections fix depth, drawn from the studies' CSV files (so any figure
can be re-made without measuring again): loss landscapes and Hessian spectra (Li et al. 2018),
shattered gradients (Balduzzi et al. 2017). Seeds of one net are drawn as their mean with a band
of ± one std. matplotlib only; never touches jax.
"""

from __future__ import annotations

import csv
from typing import Sequence

import matplotlib.ticker
import numpy as np

from cnn_depth.analysis.plotting import _COLORS, _save, plt

_STYLE = {"cifar_resnet": "-", "cifar_plain": "--"}
_NAME = {"cifar_resnet": "ResNet", "cifar_plain": "plain"}


def read_rows(path: str) -> list[dict]:
  """A study's CSV as dicts, numbers converted (ints where they are whole)."""

  def value(text: str):
    try:
      number = float(text)
    except ValueError:
      return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text else number

  with open(path, newline="") as f:
    return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def net_name(model: str, depth: int) -> str:
  """'ResNet-20' / 'plain-20' for the CIFAR families, else 'model-depth'."""
  return f"{_NAME.get(model, model)}-{depth}"


def seed_means(
  rows: Sequence[dict], key: Sequence[str], x: str, y: str
) -> dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
  """{key values: (x, mean of y over seeds, std over seeds, number of seeds)}, x sorted; only the x
  values every seed has."""
  groups: dict[tuple, dict[int, dict]] = {}
  for r in rows:
    groups.setdefault(tuple(r[k] for k in key), {}).setdefault(r.get("seed", 0), {})[r[x]] = r[y]
  out = {}
  for k, seeds in sorted(groups.items()):
    xs = sorted(set.intersection(*(set(s) for s in seeds.values())))
    values = np.asarray([[s[v] for v in xs] for s in seeds.values()], dtype=np.float64)
    out[k] = (np.asarray(xs, dtype=np.float64), values.mean(0), values.std(0), len(seeds))
  return out


def _band(ax, x, mean, std, n, label, **style) -> None:
  if n > 1:
    ax.fill_between(x, mean - std, mean + std, color=style["color"], alpha=0.15, linewidth=0)
    label = f"{label} ({n} seeds)"
  ax.plot(x, mean, label=label, **style)


def _colors(rows: Sequence[dict]) -> dict[int, str]:
  return {d: c for d, c in zip(sorted({r["depth"] for r in rows}), _COLORS)}


def _finish(fig, path: str, caption: str | None):
  if caption:
    fig.text(0.5, -0.04, caption, ha="center", fontsize=8, wrap=True)
  fig.tight_layout()
  return _save(fig, path)


def gradient_correlation(csv_path: str, path: str, lag: int = 8, caption: str | None = None) -> str:
  """Balduzzi et al. 2017, Figs. 2-3 in our setting: (a, b) the correlation of input gradients k
  points apart along a line of inputs, at initialisation and after training, one colour a depth
  (ResNets solid, plain nets dashed); (c) the correlation at lag `lag` against depth."""
  rows = read_rows(csv_path)
  curves = seed_means(rows, ("trained", "model", "depth"), "lag", "correlation")
  colors = _colors(rows)
  fig, axes = plt.subplots(1, 3, figsize=(15, 3.9))
  for ax, trained, title in ((axes[0], 0, "(a) at initialisation"), (axes[1], 1, "(b) trained")):
    for (t, model, depth), (x, mean, std, n) in curves.items():
      if t == trained:
        style = {"color": colors[depth], "linestyle": _STYLE.get(model, ":"), "linewidth": 1.6}
        _band(ax, x, mean, std, n, net_name(model, depth), **style)
    ax.set(
      title=title, xlabel="lag k (points along the line)", ylabel="correlation", ylim=(-0.1, 1)
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, ncol=2)
  c = axes[2]
  at_lag = seed_means(
    [r for r in rows if r["lag"] == lag], ("trained", "model"), "depth", "correlation"
  )
  for (trained, model), (x, mean, std, n) in at_lag.items():
    style = {"color": _COLORS[0 if model == "cifar_resnet" else 1], "marker": "os"[trained]}
    style.update(linestyle=_STYLE.get(model, ":"), linewidth=1.4)
    _band(c, x, mean, std, n, f"{_NAME.get(model, model)}, {['init', 'trained'][trained]}", **style)
  c.set(title=f"(c) correlation at lag {lag} vs depth", xlabel="depth", ylabel="correlation")
  c.grid(alpha=0.3)
  c.legend(fontsize=7, frameon=False)
  return _finish(fig, path, caption)


def landscape_1d(csv_path: str, path: str, caption: str | None = None) -> str:
  """Li et al. 2018, Fig. 5 style: training loss (log scale) and test error along a random
  filter-normalised direction around the trained weights (alpha = 0), one colour a depth."""
  rows = read_rows(csv_path)
  colors = _colors(rows)
  fig, (a, b) = plt.subplots(1, 2, figsize=(10.4, 3.9))
  for ax, key, scale in ((a, "train_loss", 1.0), (b, "test_error", 100.0)):
    for (model, depth), (x, mean, std, n) in seed_means(
      rows, ("model", "depth"), "alpha", key
    ).items():
      style = {"color": colors[depth], "linestyle": _STYLE.get(model, ":"), "linewidth": 1.6}
      _band(ax, x, scale * mean, scale * std, n, net_name(model, depth), **style)
    ax.set_xlabel("alpha (step along the filter-normalised direction)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
  a.set(title="(a) training loss", ylabel="cross-entropy", yscale="log")
  b.set(title="(b) test error", ylabel="test error (%)", ylim=(0, 100))
  return _finish(fig, path, caption)


def landscape_2d(csv_path: str, path: str, seed: int = 0, caption: str | None = None) -> str:
  """Li et al. 2018, Fig. 5/6 style: contours of the training loss on the plane of two random
  filter-normalised directions through the trained weights, one panel a net (seed `seed`); the
  same log-spaced levels in every panel."""
  rows = [r for r in read_rows(csv_path) if r.get("seed", 0) == seed]
  nets = sorted({(r["model"], r["depth"]) for r in rows}, key=lambda m: (m[1], m[0]))
  losses = np.asarray([r["train_loss"] for r in rows], dtype=np.float64)
  levels = np.geomspace(max(losses.min(), 1e-4), losses.max(), 20)
  fig, axes = plt.subplots(
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
    ax.set(title=net_name(model, depth), xlabel="alpha", ylabel="beta", aspect="equal")
  bar = fig.colorbar(cs, ax=axes[0].tolist(), label="training loss (log levels)", shrink=0.85)
  bar.ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.3g"))
  bar.ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  if caption:
    fig.supxlabel(caption, fontsize=8, wrap=True)
  return _save(fig, path)


def hessian(csv_path: str, path: str, caption: str | None = None) -> str:
  """Li et al. 2018, Fig. 7 in numbers: (a) the largest Hessian eigenvalue of the training loss
  and (b) |lambda_min / lambda_max| at checkpoints through training (step 0: the initialisation);
  a ratio near 0 is a convex-looking neighbourhood, a large one a saddle."""
  rows = read_rows(csv_path)
  for r in rows:
    r["ratio"] = abs(r["lambda_min"] / r["lambda_max"]) if r["lambda_max"] else np.nan
  colors = _colors(rows)
  fig, (a, b) = plt.subplots(1, 2, figsize=(10.4, 3.9))
  for ax, key in ((a, "lambda_max"), (b, "ratio")):
    for (model, depth), (x, mean, std, n) in seed_means(
      rows, ("model", "depth"), "step", key
    ).items():
      style = {"color": colors[depth], "linestyle": _STYLE.get(model, ":"), "marker": "o"}
      _band(ax, x, mean, std, n, net_name(model, depth), markersize=3, **style)
    ax.set_xlabel("training step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
  a.set(title="(a) largest eigenvalue", ylabel="lambda_max", yscale="log")
  b.set(title="(b) |lambda_min / lambda_max|", ylabel="ratio", yscale="log")
  return _finish(fig, path, caption)


def hessian_density(csv_path: str, path: str, caption: str | None = None) -> str:
  """Ghorbani et al. 2019, Fig. 1 style: the Hessian eigenvalue density by stochastic Lanczos
  quadrature (log scale) at the last step of each net, one panel a depth, one line a seed (each
  seed's density has its own grid)."""
  rows = read_rows(csv_path)
  curves: dict[tuple, list] = {}
  for r in rows:
    curves.setdefault((r["depth"], r["model"], r["seed"], r["step"]), []).append(r)
  depths = sorted({k[0] for k in curves})
  fig, axes = plt.subplots(1, len(depths), figsize=(5.2 * len(depths), 3.7), squeeze=False)
  for ax, depth in zip(axes[0], depths):
    named = set()
    for (d, model, seed, step), points in sorted(curves.items()):
      if d != depth:
        continue
      x = np.asarray([p["eigenvalue"] for p in points])
      y = np.maximum(np.asarray([p["density"] for p in points]), 1e-8)
      label = None if model in named else f"{net_name(model, depth)} (step {step})"
      named.add(model)
      color = _COLORS[0 if model == "cifar_resnet" else 1]
      ax.plot(x, y, color=color, linestyle=_STYLE.get(model, ":"), linewidth=1.1, label=label)
    ax.set(title=f"depth {depth}: one line a seed", xlabel="eigenvalue", ylabel="density")
    ax.set(yscale="log", ylim=(1e-6, None))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False)
  return _finish(fig, path, caption)
