"""The main job (`make quickstart`): plain nets and ResNets at two depths on the embedded digits,
He et al.'s degradation in minutes on a laptop, and Veit et al.'s lesions and path gradients on
the deep pair.

Trains plain-8, plain-32, ResNet-8 and ResNet-32 (configs/quickstart.py) into <runs>/{plain8,
plain32,resnet8,resnet32}, then writes <runs>/error_curves.png (He et al. Fig. 6 style: train
dashed, test bold), <runs>/analysis/ (gradient flow, single-block lesions, path gradients),
summary.json and summary_details.json, and says whether the degradation ordering showed: the deeper
plain net ends with a higher training error than the shallower one, and the deeper ResNet with a
lower or equal one than the deeper plain net.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import sys
import time

import numpy as np

from cnn_depth import workdir as workdir_lib
from cnn_depth.studies import registry, veit2016

# What `--results_dir` (or reproduce.py's --out) receives, relative to the runs folder.
RESULT_FILES = (
  "error_curves.png", "error_curves.pdf", "summary.json", "summary_details.json",
  "analysis/lesion_single.png", "analysis/lesion_single.csv", "analysis/path_gradients.png",
  "analysis/path_gradients.csv", "analysis/gradient_flow.png",
)  # fmt: skip


def grid(o: registry.Options) -> list[registry.RunSpec]:
  return [
    registry.RunSpec(
      f"{family}{depth}",
      f"configs/quickstart.py:depth={depth},residual={family == 'resnet'},seed={o.seeds[0]},"
      f"steps={o.steps}",
    )
    for family in ("plain", "resnet")
    for depth in o.depths
  ]


def degradation_shown(summary: dict, shallow: int, deep: int) -> bool:
  err = lambda fam, d: summary[f"{fam}{d}"]["final_train_error"]
  return err("plain", deep) > err("plain", shallow) and err("resnet", deep) <= err("plain", deep)


def veit(o: registry.Options, runs_dir: str, caption: str) -> dict:
  """Veit et al. on the deep nets: single-block lesions (ResNet and plain) and path gradients
  (ResNet), into <runs>/analysis."""
  deep, out = o.depths[-1], workdir_lib.analysis_dir(runs_dir)
  lesions = veit2016.lesion_study(
    [os.path.join(runs_dir, f"resnet{deep}"), os.path.join(runs_dir, f"plain{deep}")],
    out, [f"ResNet-{deep}", f"plain-{deep}"], multi=False, reorder=False, caption=caption,
  )  # fmt: skip
  grads = veit2016.path_gradient_study(
    os.path.join(runs_dir, f"resnet{deep}"), out, samples=o.path_samples, batch=128, share=0.9,
    caption=caption,
  )  # fmt: skip
  return {
    "lesion_single": {
      label: {
        "intact": float(r["intact"]),
        "max_single_block": float(np.max(r["errors"])),
        "mean_single_block": float(np.mean(r["errors"])),
      }
      for label, r in lesions.items()
    },
    "effective_paths_90": list(grads["effective"]),
  }


def draw(runs: dict, runs_dir: str, shallow: int, deep: int, caption: str) -> str:
  """The error curves (He et al. Fig. 6) and the gradient-flow heat map; the curves' PNG path."""
  from cnn_depth.analysis import plotting

  fig = plotting.error_curves(
    [
      ("plain nets", {f"plain-{d}": runs[f"plain{d}"] for d in (shallow, deep)}),
      ("ResNets", {f"ResNet-{d}": runs[f"resnet{d}"] for d in (shallow, deep)}),
    ],
    os.path.join(runs_dir, "error_curves.png"),
    ylim=(0, 40),
    caption=caption,
  )
  plotting.gradient_flow(
    {f"plain-{deep}": runs[f"plain{deep}"], f"ResNet-{deep}": runs[f"resnet{deep}"]},
    os.path.join(workdir_lib.analysis_dir(runs_dir), "gradient_flow.png"),
    caption="per-block gradient norms logged every 25 steps",
  )
  return fig


def write_summaries(runs_dir: str, summary: dict, details: dict) -> None:
  """summary.json (final errors per run) and summary_details.json (everything measured)."""
  keep = ("family", "depth", "final_train_error", "final_test_error", "steps")
  out = {name: {k: v for k, v in s.items() if k in keep} for name, s in summary.items()}
  with open(os.path.join(runs_dir, "summary.json"), "w") as f:
    json.dump(out, f, indent=2)
  with open(os.path.join(runs_dir, "summary_details.json"), "w") as f:
    json.dump(
      {
        "runs": summary,
        **details,
        "command": " ".join(sys.argv),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()} ({os.cpu_count()} cores)",
      },
      f,
      indent=2,
    )


def analyse(o: registry.Options, runs_dir: str, out_dir: str, seconds: float = 0.0) -> list[str]:
  """Figures, lesions, path gradients and the summaries into `runs_dir`; copied to `out_dir` where
  it is another folder. `seconds`: the training time, for summary_details.json."""
  from cnn_depth.analysis import results
  from cnn_depth.analysis import runs as runs_lib

  t0 = time.time()
  shallow, deep = o.depths
  runs = {s.name: runs_lib.load_run(os.path.join(runs_dir, s.name)) for s in grid(o)}
  summary = results.summary(runs)
  shown = degradation_shown(summary, shallow, deep)
  caption = (
    f"Embedded digits (1,500 train / 297 test, 8x8), batch 128, {o.steps} steps, seed "
    f"{o.seeds[0]}; train error = training-mode mini-batch error (1-px crop augmentation), "
    f"test error bold. {datetime.date.today().isoformat()}, {platform.node()}"
  )
  fig = draw(runs, runs_dir, shallow, deep, caption)
  analysis = veit(o, runs_dir, caption.split(";")[0])
  lines = [f"analysis (lesions + path gradients) {time.time() - t0:.0f} s: {analysis}"]
  details = {
    "degradation_shown": shown,
    "analysis": analysis,
    "seconds": seconds + time.time() - t0,
  }
  write_summaries(runs_dir, summary, details)
  lines.append("\nrun        family        depth  train err  test err")
  for name, s in summary.items():
    lines.append(
      f"{name:10s} {s['family']:13s} {s['depth']:5d}  {100 * s['final_train_error']:8.2f}%  "
      f"{100 * s['final_test_error']:7.2f}%"
    )
  lines.append(
    f"\ndegradation ordering (plain-{deep} trains worse than plain-{shallow}; ResNet-{deep} no "
    f"worse than plain-{deep}): {'shown' if shown else 'NOT shown'}"
  )
  lines.append(f"figure: {fig}\nsummary: {os.path.join(runs_dir, 'summary.json')}")
  if os.path.abspath(out_dir) != os.path.abspath(runs_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name in RESULT_FILES:
      shutil.copy(os.path.join(runs_dir, name), out_dir)
  return lines


def run(o: registry.Options, runs_dir: str, out_dir: str | None = None) -> list[str]:
  """The main job in this process: train the four nets (finished runs reused), then `analyse`."""
  t0 = time.time()
  registry.train_here(grid(o), runs_dir)
  lines = analyse(o, runs_dir, out_dir or runs_dir, seconds=time.time() - t0)
  return lines + [f"total {time.time() - t0:.0f} s"]


def check(o: registry.Options) -> registry.Options:
  if len(o.depths) != 2:
    raise registry.StudyError(f"option depths takes a shallow and a deep depth, got {o.depths}")
  return o


STUDY = registry.register(
  registry.Study(
    name="quickstart",
    paper="the main job: He et al. 2016's degradation and Veit et al. 2016's lesions, in minutes",
    quick={"seeds": [0], "depths": [8, 32], "steps": 800, "path_samples": 20},
    full=None,
    grid=lambda o: grid(check(o)),
    analyse=lambda o, runs_dir, out_dir: analyse(check(o), runs_dir, out_dir),
  )
)
