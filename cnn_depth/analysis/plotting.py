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

from cnn_depth.analysis.runs import Run  # noqa: E402

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def _save(fig, path: str):
  os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
  stem, _ = os.path.splitext(path)
  fig.savefig(stem + ".png", dpi=150, bbox_inches="tight")
  fig.savefig(stem + ".pdf", bbox_inches="tight")
  plt.close(fig)
  return stem + ".png"


def error_curves(
  panels: Sequence[tuple[str, dict[str, Run]]],
  path: str,
  *,
  train_key: str = "train_error",
  test_key: str = "test_error",
  x_unit: str = "steps",
  ylim: tuple[float, float] | None = None,
  caption: str | None = None,
) -> str:
  """He et al. 2016, Fig. 6: training error dashed (thin), test error bold, one colour a net.

  `panels` is [(title, {label: Run})]; writes PNG and PDF next to `path` and returns the PNG path.
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
        steps, err = run.curve(key)
        if not len(steps):
          continue
        x = steps / 1000.0 if x_unit == "kiter" else steps
        ax.plot(x, 100 * err, style, color=color, linewidth=width, label=f"{label} ({suffix})")
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


def lesion_single(
  results: dict[str, tuple[float, Sequence[float], Sequence[bool]]],
  path: str,
  caption: str | None = None,
) -> str:
  """Veit et al. 2016, Fig. 3: test error after deleting each single block, one panel per net.

  `results` maps a label to (intact error, error per deleted block, downsampling flag per block);
  the intact net's error is the dashed line, downsampling blocks are hatched.
  """
  fig, axes = plt.subplots(
    1, len(results), figsize=(5.2 * len(results), 3.6), sharey=True, squeeze=False
  )
  for ax, color, (label, (intact, errors, down)) in zip(axes[0], _COLORS, results.items()):
    blocks = range(len(errors))
    bars = ax.bar(blocks, [100 * e for e in errors], color=color, alpha=0.8)
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
    ax.legend(
      handles,
      [f"intact net ({100 * intact:.1f}%)", "one block deleted", "downsampling block deleted"],
      fontsize=8,
      frameon=False,
      loc="upper left",
      ncol=2,
    )
  axes[0][0].set_ylabel("test error (%)")
  if caption:
    fig.text(0.5, -0.05, caption, ha="center", fontsize=8, wrap=True)
  fig.tight_layout()
  return _save(fig, path)


def path_gradients(
  ks: Sequence[int],
  counts: Sequence[int],
  grad_mean: Sequence[float],
  grad_std: Sequence[float],
  effective: tuple[int, int],
  path: str,
  caption: str | None = None,
  samples: int | None = None,
) -> str:
  """Veit et al. 2016, Fig. 6: (a) path-length distribution, (b) gradient magnitude per path length
  (log scale), (c) total gradient per path length = magnitude x number of paths, with the range of
  "effective paths" shaded.

  The bars in (b) are the standard error of the mean over the `samples` block sets per length where
  `samples` is given; else the standard deviation (which, larger than the mean, would reach to 0 on
  the log axis, so it is drawn upwards only).
  """
  import numpy as np

  ks = np.asarray(ks)
  counts = np.asarray(counts, dtype=np.float64)
  mean, std = np.asarray(grad_mean), np.asarray(grad_std)
  n = int(ks.max())
  fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 3.8))
  a.bar(ks, counts / counts.sum(), color=_COLORS[0])
  if samples:
    yerr, bars = std / np.sqrt(samples), f"mean ± s.e.m. over {samples} sampled paths per length"
  else:
    yerr, bars = np.stack([np.zeros_like(std), std]), "mean + std over the sampled paths"
  b.errorbar(ks, mean, yerr=yerr, fmt="o-", color=_COLORS[1], markersize=3, capsize=2, label=bars)
  b.set_yscale("log")
  total = counts * mean
  c.plot(ks, total / total.sum(), "o-", color=_COLORS[2], markersize=3)
  lo, hi = effective
  c.axvspan(
    lo - 0.5, hi + 0.5, color=_COLORS[2], alpha=0.15, label=f"effective paths: lengths {lo}-{hi}"
  )
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
  results: dict[str, tuple[Sequence[int], Sequence[float], Sequence[float]]],
  path: str,
  reorder: dict[str, Sequence[tuple[float, float]]] | None = None,
  caption: str | None = None,
) -> str:
  """Veit et al. 2016, Fig. 5: (a) test error vs number of deleted blocks (mean ± std over the
  sampled sets), one line a net; (b) test error vs Kendall tau of random block reorderings, if
  given."""
  import numpy as np

  ncols = 2 if reorder else 1
  fig, axes = plt.subplots(1, ncols, figsize=(5.2 * ncols, 3.8), squeeze=False)
  a = axes[0][0]
  for color, (label, (ks, mean, std)) in zip(_COLORS, results.items()):
    mean, std = 100 * np.asarray(mean), 100 * np.asarray(std)
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
    for color, (label, pairs) in zip(_COLORS, reorder.items()):
      taus, errs = zip(*pairs) if pairs else ((), ())
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
  runs: dict[str, Run], path: str, steps_per_epoch: int | None = None, caption: str | None = None
) -> str:
  """Huang et al. 2016, Fig. 3: test error (bold) and training loss (dashed, right axis) over
  training, constant depth vs stochastic depth. The x axis is in epochs when `steps_per_epoch` is
  given."""
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  loss_ax = ax.twinx()
  for color, (label, run) in zip(_COLORS, runs.items()):
    steps, err = run.curve("test_error")
    lsteps, loss = run.curve("train_loss")
    scale = 1.0 / steps_per_epoch if steps_per_epoch else 1.0
    ax.plot(
      steps * scale, 100 * err, "-", color=color, linewidth=2.2, label=f"{label} (test error)"
    )
    loss_ax.plot(
      lsteps * scale, loss, "--", color=color, linewidth=1.0, label=f"{label} (training loss)"
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


def write_curves_csv(runs: dict[str, Run], path: str, steps_per_epoch: int) -> None:
  """`variant,epoch,test_error` rows (the Huang et al. reproduction's machine-readable output)."""
  import csv

  os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(("variant", "epoch", "test_error"))
    for label, run in runs.items():
      steps, err = run.curve("test_error")
      w.writerows((label, float(s) / steps_per_epoch, float(e)) for s, e in zip(steps, err))
