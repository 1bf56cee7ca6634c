"""Paper-style figures from workdirs, one function a figure. matplotlib only; never touches jax."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.lines  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from cnn_depth.analysis import results  # noqa: E402
from cnn_depth.analysis.runs import Run  # noqa: E402

Group = Run | Sequence[Run]  # one run, or the seeds of one net (drawn as mean and ± std band)

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def _save(fig, path: str):
  os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
  stem, _ = os.path.splitext(path)
  fig.savefig(stem + ".png", dpi=150, bbox_inches="tight")
  fig.savefig(stem + ".pdf", bbox_inches="tight")
  plt.close(fig)
  return stem + ".png"


def _style(linestyle: str, color: str, linewidth: float) -> dict:
  return {"linestyle": linestyle, "color": color, "linewidth": linewidth}


def _curve(ax, group: Group, key: str, x_scale: float, y_scale: float, label: str, **style) -> None:
  """The mean of `key` over the group's seeds, with a band of ± one std where there are several."""
  runs = results.as_group(group)
  steps, mean, std = results.mean_curve(runs, key)
  if not len(steps):
    return
  if len(runs) > 1:
    label = f"{label}, {len(runs)} seeds"
    band = (y_scale * (mean - std), y_scale * (mean + std))
    ax.fill_between(steps * x_scale, *band, color=style["color"], alpha=0.15, linewidth=0)
  ax.plot(steps * x_scale, y_scale * mean, label=label, **style)


def error_curves(
  panels: Sequence[tuple[str, dict[str, Group]]],
  path: str,
  *,
  train_key: str = "train_error",
  test_key: str = "test_error",
  x_unit: str = "steps",
  ylim: tuple[float, float] | None = None,
  caption: str | None = None,
) -> str:
  """He et al. 2016, Fig. 6: training error dashed (thin), test error bold, one colour a net.

  `panels` is [(title, {label: Run or its seeds})]; several seeds are drawn as their mean with a
  band of ± one std. Writes PNG and PDF next to `path` and returns the PNG path.
  """
  fig, axes = plt.subplots(
    1, len(panels), figsize=(5.2 * len(panels), 4.0), sharey=True, squeeze=False
  )
  for ax, (title, runs) in zip(axes[0], panels):
    for color, (label, run) in zip(_COLORS, runs.items()):
      for key, style, width, suffix in (
        (train_key, "--", 1.0, "train"),
        (test_key, "-", 2.2, "test"),
      ):
        x_scale = 1e-3 if x_unit == "kiter" else 1.0
        _curve(ax, run, key, x_scale, 100, f"{label} ({suffix})", **_style(style, color, width))
    ax.set_title(title)
    ax.set_xlabel({"kiter": "iterations (1e3)", "steps": "iterations"}[x_unit])
    ax.grid(alpha=0.3)
    if ylim:
      ax.set_ylim(*ylim)
    ax.legend(fontsize=8, frameon=False)
  axes[0][0].set_ylabel("error (%)")
  if caption:
    fig.text(0.5, -0.04, caption, ha="center", fontsize=8, wrap=True)
  fig.tight_layout()
  return _save(fig, path)


def _seeds(value) -> list:
  """One net's per-seed values: a {seed: value} mapping's values, or [value] for a single run."""
  return list(value.values()) if isinstance(value, dict) else [value]


def lesion_single(
  results: dict[str, tuple[float, Sequence[float], Sequence[bool]] | dict[int, tuple]],
  path: str,
  caption: str | None = None,
) -> str:
  """Veit et al. 2016, Fig. 3: test error after deleting each single block, one panel per net.

  `results` maps a label to (intact error, error per deleted block, downsampling flag per block),
  or to {seed: that tuple} for the seeds of one net; the intact net's error is the dashed line,
  downsampling blocks are hatched. Several seeds are drawn as their mean, with error bars of ± one
  std over seeds, and the intact error's mean.
  """
  import numpy as np

  fig, axes = plt.subplots(
    1, len(results), figsize=(5.2 * len(results), 3.6), sharey=True, squeeze=False
  )
  for ax, color, (label, value) in zip(axes[0], _COLORS, results.items()):
    seeds = _seeds(value)
    intact = float(np.mean([s[0] for s in seeds]))
    errors, down = 100 * np.asarray([s[1] for s in seeds], np.float64), seeds[0][2]
    n = len(seeds)
    spread = {"yerr": errors.std(0), "capsize": 2, "ecolor": "black"} if n > 1 else {}
    blocks = range(errors.shape[1])
    bars = ax.bar(blocks, errors.mean(0), color=color, alpha=0.8, **spread)
    for bar, d in zip(bars, down):
      if d:
        bar.set_hatch("//")
        bar.set_edgecolor("black")
    ax.axhline(100 * intact, color="black", linestyle="--", linewidth=1.2)
    ax.set_title(label)
    ax.set_xlabel("deleted block (stage-major index; hatched = downsampling)")
    ax.set_xticks(list(blocks))
    ax.set_ylim(0, 130)  # room above 100% for the legend
    ax.set_yticks(range(0, 101, 20))
    ax.grid(alpha=0.3, axis="y")
    handles = [
      matplotlib.lines.Line2D([], [], color="black", linestyle="--", linewidth=1.2),
      matplotlib.patches.Patch(facecolor=color, alpha=0.8),
      matplotlib.patches.Patch(facecolor=color, alpha=0.8, hatch="//", edgecolor="black"),
    ]
    texts = [f"intact net ({100 * intact:.1f}%)", "one block deleted", "downsampling block deleted"]
    if n > 1:
      texts[0] = f"intact net (mean {100 * intact:.1f}%)"
      texts[1] = f"one block deleted (mean ± std, {n} seeds)"
    ax.legend(handles, texts, fontsize=8, frameon=False, loc="upper left", ncol=2)
  axes[0][0].set_ylabel("test error (%)")
  if caption:
    fig.text(0.5, -0.05, caption, ha="center", fontsize=8, wrap=True)
  fig.tight_layout()
  return _save(fig, path)


def _gradient_bars(means, std, samples: int | None) -> tuple:
  """(yerr, legend text) of Fig. 6b: ± one std over seeds where `means` has a row per seed; else
  the s.e.m. over `samples` sampled paths, or the std over them drawn upwards only."""
  import numpy as np

  seeds = len(means)
  if seeds > 1:
    each = f", {samples} sampled paths per length each" if samples else ""
    return means.std(0), f"mean ± std over {seeds} seeds{each}"
  if samples:
    return std / np.sqrt(samples), f"mean ± s.e.m. over {samples} sampled paths per length"
  return np.stack([np.zeros_like(std), std]), "mean + std over the sampled paths"


def path_gradients(
  ks: Sequence[int],
  counts: Sequence[int],
  grad_mean: Sequence[float] | Sequence[Sequence[float]],
  grad_std: Sequence[float] | Sequence[Sequence[float]],
  effective: tuple[int, int],
  path: str,
  caption: str | None = None,
  samples: int | None = None,
) -> str:
  """Veit et al. 2016, Fig. 6: (a) path-length distribution, (b) gradient magnitude per path length
  (log scale), (c) total gradient per path length = magnitude x number of paths, with the range of
  "effective paths" shaded.

  `grad_mean` and `grad_std` (over the sampled block sets) are aligned with `ks`, or have one row
  per seed of the net: then (b) and (c) draw the mean over seeds, the bars in (b) ± one std over
  seeds of the per-seed means. For one seed the bars in (b) are the standard error of the mean over
  the `samples` block sets per length where `samples` is given; else the standard deviation (which,
  larger than the mean, would reach to 0 on the log axis, so it is drawn upwards only).
  """
  import numpy as np

  ks = np.asarray(ks)
  counts = np.asarray(counts, dtype=np.float64)
  means, std = np.atleast_2d(grad_mean), np.atleast_2d(grad_std)[0]
  mean, seeds = means.mean(0), len(means)
  n = int(ks.max())
  fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 3.8))
  a.bar(ks, counts / counts.sum(), color=_COLORS[0])
  yerr, bars = _gradient_bars(means, std, samples)
  b.errorbar(ks, mean, yerr=yerr, fmt="o-", color=_COLORS[1], markersize=3, capsize=2, label=bars)
  b.set_yscale("log")
  total = counts * mean
  c.plot(ks, total / total.sum(), "o-", color=_COLORS[2], markersize=3)
  lo, hi = effective
  span = f"effective paths: lengths {lo}-{hi}" + (f", mean of {seeds} seeds" if seeds > 1 else "")
  c.axvspan(lo - 0.5, hi + 0.5, color=_COLORS[2], alpha=0.15, label=span)
  panels = (
    (a, f"(a) path lengths ({n} blocks, 2^{n} paths)", "share of paths"),
    (b, "(b) gradient magnitude per path", "|d loss / d input| (mean per example)"),
    (c, "(c) total gradient per path length", "share of total gradient magnitude"),
  )
  for ax, title, ylabel in panels:
    ax.set(title=title, xlabel="path length k", ylabel=ylabel)
    ax.grid(alpha=0.3)
  for ax in (b, c):
    ax.legend(fontsize=8, frameon=False)
  if caption:
    fig.text(0.5, -0.05, caption, ha="center", fontsize=8, wrap=True)
  fig.tight_layout()
  return _save(fig, path)


def gradient_flow(
  runs: dict[str, Run], path: str, key: str = "block_grad_norms", caption: str | None = None
) -> str:
  """Per-block gradient norm (log10, colour) over training steps, one panel per run on one colour
  scale: the vanishing-gradient picture of plain nets next to their residual twins."""
  import numpy as np

  data = {}
  for label, run in runs.items():
    rows = [(r["step"], r[key]) for r in run.metrics if key in r]
    if rows:
      steps, norms = zip(*rows)
      data[label] = (np.asarray(steps), np.log10(np.maximum(np.asarray(norms, float), 1e-12)).T)
  if not data:
    raise ValueError(f"no '{key}' in the metrics of {list(runs)}: train with log_block_norms=True")
  lo = min(float(v.min()) for _, v in data.values())
  hi = max(float(v.max()) for _, v in data.values())
  fig, axes = plt.subplots(
    1,
    len(data),
    figsize=(5.2 * len(data) + 1.2, 3.6),
    squeeze=False,
    sharey=True,
    layout="constrained",
  )
  for ax, (label, (steps, grid)) in zip(axes[0], data.items()):
    im = ax.imshow(
      grid,
      aspect="auto",
      origin="lower",
      cmap="viridis",
      vmin=lo,
      vmax=hi,
      extent=(steps[0], steps[-1], -0.5, grid.shape[0] - 0.5),
      interpolation="nearest",
    )
    ax.set(title=label, xlabel="iteration")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  axes[0][0].set_ylabel("block (input side at the bottom)")
  fig.colorbar(im, ax=axes[0].tolist(), label="log10 ‖gradient of block parameters‖")
  if caption:
    fig.get_layout_engine().set(h_pad=0.1)
    fig.supxlabel(caption, fontsize=8, wrap=True)
  return _save(fig, path)


def lesion_multi(
  results: dict[str, tuple[Sequence[int], Sequence[float], Sequence[float]] | dict[int, tuple]],
  path: str,
  reorder: dict[str, Sequence[tuple[float, float]] | dict[int, Sequence]] | None = None,
  caption: str | None = None,
) -> str:
  """Veit et al. 2016, Fig. 5: (a) test error vs number of deleted blocks (mean ± std over the
  sampled sets), one line a net; (b) test error vs Kendall tau of random block reorderings, if
  given.

  A net's value may be {seed: value} for its seeds: (a) then draws the mean over seeds of the
  per-seed means, with a band of ± one std over seeds of those means; (b) pools every seed's
  reorderings.
  """
  import numpy as np

  ncols = 2 if reorder else 1
  fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 3.8), squeeze=False)
  a = axes[0][0]
  for color, (label, value) in zip(_COLORS, results.items()):
    seeds = _seeds(value)
    ks, means = seeds[0][0], 100 * np.asarray([s[1] for s in seeds], np.float64)
    if len(seeds) > 1:
      mean, std = means.mean(0), means.std(0)
      label = f"{label} (mean ± std, {len(seeds)} seeds)"
    else:
      mean, std = means[0], 100 * np.asarray(seeds[0][2])
    a.plot(ks, mean, "o-", color=color, markersize=3, label=label)
    a.fill_between(ks, mean - std, mean + std, color=color, alpha=0.2)
  a.set(
    title="(a) deleting k blocks",
    xlabel="number of deleted blocks k",
    ylabel="test error (%)",
    ylim=(0, 100),
  )
  a.grid(alpha=0.3)
  a.legend(fontsize=8, frameon=False)
  if reorder:
    b = axes[0][1]
    for color, (label, value) in zip(_COLORS, reorder.items()):
      seeds = _seeds(value)
      pairs = [p for pairs in seeds for p in pairs]
      taus, errs = zip(*pairs) if pairs else ((), ())
      label = f"{label} ({len(seeds)} seeds pooled)" if len(seeds) > 1 else label
      b.scatter(taus, 100 * np.asarray(errs), s=10, color=color, label=label)
    b.set(
      title="(b) reordering blocks",
      xlabel="Kendall tau of the block order",
      ylabel="test error (%)",
      ylim=(0, 100),
    )
    b.invert_xaxis()
    b.grid(alpha=0.3)
    b.legend(fontsize=8, frameon=False)
  if caption:
    fig.text(0.5, -0.05, caption, ha="center", fontsize=8, wrap=True)
  fig.tight_layout()
  return _save(fig, path)


def stochastic_depth_curves(
  runs: dict[str, Group], path: str, steps_per_epoch: int | None = None, caption: str | None = None
) -> str:
  """Huang et al. 2016, Fig. 3: test error (bold) and training loss (dashed, right axis) over
  training, constant depth vs stochastic depth, each variant's seeds as mean ± std. The x axis is
  in epochs when `steps_per_epoch` is given."""
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  loss_ax = ax.twinx()
  for color, (label, run) in zip(_COLORS, runs.items()):
    scale = 1.0 / steps_per_epoch if steps_per_epoch else 1.0
    _curve(ax, run, "test_error", scale, 100, f"{label} (test error)", **_style("-", color, 2.2))
    _curve(
      loss_ax, run, "train_loss", scale, 1, f"{label} (training loss)", **_style("--", color, 1.0)
    )
  ax.set_xlabel("epoch" if steps_per_epoch else "iteration")
  ax.set_ylabel("test error (%)")
  loss_ax.set_ylabel("training loss")
  ax.grid(alpha=0.3)
  lines = ax.get_legend_handles_labels()
  more = loss_ax.get_legend_handles_labels()
  ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, frameon=False)
  if caption:
    fig.text(0.5, -0.04, caption, ha="center", fontsize=8, wrap=True)
  fig.tight_layout()
  return _save(fig, path)


def write_curves_csv(runs: dict[str, Group], path: str, steps_per_epoch: int) -> None:
  """`variant,epoch,test_error,test_error_std,seeds` rows: each variant's test error at every
  evaluation, mean and std over its seeds (the Huang et al. reproduction's machine-readable
  output)."""
  rows = []
  for label, group in runs.items():
    steps, mean, std = results.mean_curve(group, "test_error")
    seeds = len(results.as_group(group))
    rows += [
      {
        "variant": label,
        "epoch": float(s) / steps_per_epoch,
        "test_error": float(m),
        "test_error_std": float(d),
        "seeds": seeds,
      }
      for s, m, d in zip(steps, mean, std)
    ]
  results.write_rows(path, rows)
