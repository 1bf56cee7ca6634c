"""Paper-style figures from workdirs, one function a figure. matplotlib only; never touches jax."""

from __future__ import annotations

import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cnn_depth.analysis.results import Run  # noqa: E402

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def _save(fig, path: str):
  os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
  stem, _ = os.path.splitext(path)
  fig.savefig(stem + ".png", dpi=150, bbox_inches="tight")
  fig.savefig(stem + ".pdf", bbox_inches="tight")
  plt.close(fig)
  return stem + ".png"


def error_curves(panels: Sequence[tuple[str, dict[str, Run]]], path: str, *,
                 train_key: str = "train_error", test_key: str = "test_error",
                 x_unit: str = "steps", ylim: tuple[float, float] | None = None,
                 caption: str | None = None) -> str:
  """He et al. 2016, Fig. 6: training error dashed (thin), test error bold, one colour a net.

  `panels` is [(title, {label: Run})]; writes PNG and PDF next to `path` and returns the PNG path.
  """
  fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), sharey=True, squeeze=False)
  for ax, (title, runs) in zip(axes[0], panels):
    for color, (label, run) in zip(_COLORS, runs.items()):
      for key, style, width, suffix in ((train_key, "--", 1.0, "train"), (test_key, "-", 2.2, "test")):
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
