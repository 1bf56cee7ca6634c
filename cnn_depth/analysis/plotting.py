"""Paper-style figures, one function a figure, and the drawing every study shares (a CSV read
back, seeds as mean ± std bands, captions). A figure drawn by one study only lives in its module
(cnn_depth/studies/). matplotlib only; never touches jax."""

from __future__ import annotations

import csv
import os
from typing import Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.lines  # noqa: E402
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from cnn_depth import workdir as workdir_lib  # noqa: E402
from cnn_depth.analysis import results  # noqa: E402
from cnn_depth.analysis.runs import Run  # noqa: E402

Group = Run | Sequence[Run]  # one run, or the seeds of one net (drawn as mean and ± std band)

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def save(fig, path: str):
  os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
  stem, _ = os.path.splitext(path)
  fig.savefig(stem + ".png", dpi=150, bbox_inches="tight")
  fig.savefig(stem + ".pdf", bbox_inches="tight")
  plt.close(fig)
  return stem + ".png"


def line_style(linestyle: str, color: str, linewidth: float) -> dict:
  return {"linestyle": linestyle, "color": color, "linewidth": linewidth}


def curve(ax, group: Group, key: str, x_scale: float, y_scale: float, label: str, **style) -> None:
  """The mean of `key` over the group's seeds, with a band of ± one std where there are several."""
  runs = results.as_group(group)
  steps, mean, std = results.mean_curve(runs, key)
  if not len(steps):
    return
  if len(runs) > 1:
    label = f"{label}, {len(runs)} seeds"
    band = (y_scale * (mean - std), y_scale * (mean + std))
    ax.fill_between(steps * x_scale, *band, color=style["color"], alpha=0.15, linewidth=0)
  if len(steps) == 1:  # a line through one point draws nothing: a marker shows it
    style = {"marker": "o", "markersize": 4, **style}
  ax.plot(steps * x_scale, y_scale * mean, label=label, **style)
  # A recipe change (--allow_changes, an extension; changes.jsonl): a dotted line at its step
  changed = {
    c["step"] for run in runs if run.workdir for c in workdir_lib.read_changes(run.workdir)
  }
  for step in sorted(changed):
    ax.axvline(step * x_scale, color=style["color"], linestyle=":", linewidth=1.0, alpha=0.8)


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
    for color, (label, run) in zip(COLORS, runs.items()):
      for key, style, width, suffix in (
        (train_key, "--", 1.0, "train"),
        (test_key, "-", 2.2, "test"),
      ):
        x_scale = 1e-3 if x_unit == "kiter" else 1.0
        curve(ax, run, key, x_scale, 100, f"{label} ({suffix})", **line_style(style, color, width))
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
  return save(fig, path)


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
  for ax, color, (label, value) in zip(axes[0], COLORS, results.items()):
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
  return save(fig, path)


def _gradient_bars(means, std, samples: int | None) -> tuple:
  """(yerr, legend text) of Fig. 6b, each the spread path_gradients.csv holds: ± its
  grad_norm_seed_std (the std over seeds of the per-seed means) where `means` has a row per seed;
  else + its grad_norm_std (the std over the sampled paths), drawn upwards only: it is often larger
  than the mean, and the log axis has no room below 0."""
  import numpy as np

  seeds = len(means)
  each = f",\n{samples} sampled paths per length each" if samples else ""
  if seeds > 1:
    return means.std(0), f"mean ± std over {seeds} seeds (grad_norm_seed_std){each}"
  over = f"the {samples} sampled paths per length" if samples else "the sampled paths"
  return np.stack([np.zeros_like(std), std]), f"mean + std (grad_norm_std) over\n{over}"


def path_gradients(
  ks: Sequence[int],
  counts: Sequence[int],
  grad_mean: Sequence[float] | Sequence[Sequence[float]],
  grad_std: Sequence[float] | Sequence[Sequence[float]],
  effective: tuple[int, int],
  path: str,
  caption: str | None = None,
  samples: int | None = None,
  *,
  net: str,
) -> str:
  """Veit et al. 2016, Fig. 6 for the net named `net` (the figure's title): (a) path-length
  distribution, (b) gradient magnitude per path length (log scale), (c) total gradient per path
  length = magnitude x number of paths, with the range of "effective paths" shaded; integer path
  lengths on every axis.

  `grad_mean` and `grad_std` (over the sampled block sets) are aligned with `ks`, or have one row
  per seed of the net: then (b) and (c) draw the mean over seeds, the bars in (b) ± one std over
  seeds of the per-seed means (path_gradients.csv's grad_norm_seed_std). For one seed the bars in
  (b) are the std over the `samples` block sets per length (the CSV's grad_norm_std), drawn upwards
  only, since it is often larger than the mean and would reach below 0 on the log axis.
  """
  import numpy as np

  ks = np.asarray(ks)
  counts = np.asarray(counts, dtype=np.float64)
  means, std = np.atleast_2d(grad_mean), np.atleast_2d(grad_std)[0]
  mean, seeds = means.mean(0), len(means)
  n = int(ks.max())
  fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 3.8))
  a.bar(ks, counts / counts.sum(), color=COLORS[0])
  yerr, bars = _gradient_bars(means, std, samples)
  b.errorbar(ks, mean, yerr=yerr, fmt="o-", color=COLORS[1], markersize=3, capsize=2, label=bars)
  b.set_yscale("log")
  total = counts * mean
  c.plot(ks, total / total.sum(), "o-", color=COLORS[2], markersize=3)
  lo, hi = effective
  span = f"effective paths: lengths {lo}-{hi}" + (f", mean of {seeds} seeds" if seeds > 1 else "")
  c.axvspan(lo - 0.5, hi + 0.5, color=COLORS[2], alpha=0.15, label=span)
  panels = (
    (a, f"(a) path lengths ({n} blocks, 2^{n} paths)", "share of paths"),
    (b, "(b) gradient magnitude per path", "|d loss / d input| (mean per example)"),
    (c, "(c) total gradient per path length", "share of total gradient magnitude"),
  )
  for ax, title, ylabel in panels:
    ax.set(title=title, xlabel="path length k", ylabel=ylabel)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
  b.legend(fontsize=8, frameon=False, loc="lower left")  # the curve falls from the upper left
  c.legend(fontsize=8, frameon=False)
  fig.suptitle(f"{net}: the gradient carried by paths of each length (Veit et al. 2016, Fig. 6)")
  if caption:
    fig.text(0.5, -0.05, caption, ha="center", fontsize=8, wrap=True)
  fig.tight_layout()
  return save(fig, path)


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
  return save(fig, path)


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
  for color, (label, value) in zip(COLORS, results.items()):
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
    for color, (label, value) in zip(COLORS, reorder.items()):
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
  return save(fig, path)


# --------------------------------------------------------------------------------------------------
# Figures drawn from a study's CSV


CIFAR_STYLE = {"cifar_resnet": "-", "cifar_plain": "--"}
CIFAR_NAME = {"cifar_resnet": "ResNet", "cifar_plain": "plain"}


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
  return f"{CIFAR_NAME.get(model, model)}-{depth}"


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


def band(ax, x, mean, std, n, label, **style) -> None:
  if n > 1:
    ax.fill_between(x, mean - std, mean + std, color=style["color"], alpha=0.15, linewidth=0)
    label = f"{label} ({n} seeds)"
  ax.plot(x, mean, label=label, **style)


def depth_colors(rows: Sequence[dict]) -> dict[int, str]:
  return {d: c for d, c in zip(sorted({r["depth"] for r in rows}), COLORS)}


def finish(fig, path: str, caption: str | None):
  """Lays the figure out, puts `caption` under it (its first line below the figure's bottom edge,
  however many lines it wraps to, so it never overlaps the axis labels) and saves it."""
  fig.tight_layout()
  if caption:
    fig.text(0.5, -0.01, caption, ha="center", va="top", fontsize=8, wrap=True)
  return save(fig, path)
