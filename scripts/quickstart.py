r"""The main job: plain nets and ResNets at two depths on the embedded digits, their curves and
summary.

  python scripts/quickstart.py --workdir=runs/quickstart            # what `make quickstart` runs

Trains plain-8, plain-32, ResNet-8 and ResNet-32 (configs/quickstart.py) one after another, writes
each run's workdir under --workdir, the He et al. Fig. 6-style error curves (train dashed, test
bold) and summary.json, and says whether the degradation ordering showed: the deeper plain net ends
with a higher training error than the shallower one, and the deeper ResNet with a lower or equal one
than the deeper plain net.
"""

import datetime
import importlib.util
import json
import os
import platform
import shutil
import sys
import time

from absl import app, flags

_WORKDIR = flags.DEFINE_string(
  "workdir", "runs/quickstart", "Where the runs, figure and summary go."
)
_DEPTHS = flags.DEFINE_list("depths", ["8", "32"], "The shallow and the deep depth (6n+2).")
_STEPS = flags.DEFINE_integer("steps", 800, "Training steps per run.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every run.")
_FRESH = flags.DEFINE_bool("fresh", True, "Delete --workdir first (else finished runs are reused).")
_RESULTS = flags.DEFINE_string("results_dir", "", "Also copy the figure and summary here.")
_SAMPLES = flags.DEFINE_integer("path_samples", 20, "Sampled block sets per path length.")


def analyse(workdir: str, deep: int, caption: str) -> dict:
  """Veit et al. on the deep nets: single-block lesions (ResNet and plain) and path gradients
  (ResNet).

  Writes lesion_single.csv, path_gradients.csv and their figures under <workdir>/analysis.
  """
  import numpy as np

  from cnn_depth.analysis import studies

  out = os.path.join(workdir, "analysis")
  lesions = studies.lesion_study(
    [os.path.join(workdir, f"resnet{deep}"), os.path.join(workdir, f"plain{deep}")],
    out,
    [f"ResNet-{deep}", f"plain-{deep}"],
    multi=False,
    reorder=False,
    caption=caption,
  )
  grads = studies.path_gradient_study(
    os.path.join(workdir, f"resnet{deep}"),
    out,
    samples=_SAMPLES.value,
    batch=128,
    share=0.9,
    caption=caption,
  )
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


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(arg: str):
  spec = importlib.util.spec_from_file_location(
    "quickstart_config", os.path.join(ROOT, "configs", "quickstart.py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def degradation_shown(summary: dict, shallow: int, deep: int) -> bool:
  err = lambda fam, d: summary[f"{fam}{d}"]["final_train_error"]
  return err("plain", deep) > err("plain", shallow) and err("resnet", deep) <= err("plain", deep)


def train_runs(shallow: int, deep: int) -> dict:
  """Trains plain and ResNet at both depths into --workdir (finished runs are reused); their
  Runs."""
  from cnn_depth import train
  from cnn_depth.analysis import runs as runs_lib

  runs = {}
  for family in ("plain", "resnet"):
    for depth in (shallow, deep):
      name = f"{family}{depth}"
      print(f"=== {name} ===", flush=True)
      config = load_config(
        f"depth={depth},residual={family == 'resnet'},seed={_SEED.value},steps={_STEPS.value}"
      )
      workdir = os.path.join(_WORKDIR.value, name)
      train.train_and_evaluate(config, workdir)
      runs[name] = runs_lib.load_run(workdir)
  return runs


def draw(runs: dict, shallow: int, deep: int, caption: str) -> str:
  """The error curves (He et al. Fig. 6) and the gradient-flow heat map; the curves' PNG path."""
  from cnn_depth.analysis import plotting

  fig = plotting.error_curves(
    [
      ("plain nets", {f"plain-{d}": runs[f"plain{d}"] for d in (shallow, deep)}),
      ("ResNets", {f"ResNet-{d}": runs[f"resnet{d}"] for d in (shallow, deep)}),
    ],
    os.path.join(_WORKDIR.value, "error_curves.png"),
    ylim=(0, 40),
    caption=caption,
  )
  plotting.gradient_flow(
    {f"plain-{deep}": runs[f"plain{deep}"], f"ResNet-{deep}": runs[f"resnet{deep}"]},
    os.path.join(_WORKDIR.value, "analysis", "gradient_flow.png"),
    caption="per-block gradient norms logged every 25 steps",
  )
  return fig


def write_summaries(summary: dict, details: dict) -> None:
  """summary.json (final errors per run) and summary_details.json (everything measured)."""
  out = {
    name: {
      k: v
      for k, v in s.items()
      if k in ("family", "depth", "final_train_error", "final_test_error", "steps")
    }
    for name, s in summary.items()
  }
  with open(os.path.join(_WORKDIR.value, "summary.json"), "w") as f:
    json.dump(out, f, indent=2)
  with open(os.path.join(_WORKDIR.value, "summary_details.json"), "w") as f:
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


def main(argv):
  del argv
  from cnn_depth import console
  from cnn_depth.analysis import results

  console.quiet_unless_verbose()
  if _FRESH.value and os.path.isdir(_WORKDIR.value):
    shutil.rmtree(_WORKDIR.value)
  shallow, deep = (int(d) for d in _DEPTHS.value)
  t0 = time.time()
  runs = train_runs(shallow, deep)
  summary = results.summary(runs)
  shown = degradation_shown(summary, shallow, deep)
  caption = (
    f"Embedded digits (1,500 train / 297 test, 8x8), batch 128, {_STEPS.value} steps, seed "
    f"{_SEED.value}; train error = training-mode mini-batch error (1-px crop augmentation), "
    f"test error bold. {datetime.date.today().isoformat()}, {platform.node()}"
  )
  fig = draw(runs, shallow, deep, caption)
  t_analysis = time.time()
  analysis = analyse(_WORKDIR.value, deep, caption.split(";")[0])
  print(f"analysis (lesions + path gradients) {time.time() - t_analysis:.0f} s: {analysis}")
  write_summaries(
    summary, {"degradation_shown": shown, "analysis": analysis, "seconds": time.time() - t0}
  )

  print("\nrun        family        depth  train err  test err")
  for name, s in summary.items():
    print(
      f"{name:10s} {s['family']:13s} {s['depth']:5d}  {100 * s['final_train_error']:8.2f}%  "
      f"{100 * s['final_test_error']:7.2f}%"
    )
  print(
    f"\ndegradation ordering (plain-{deep} trains worse than plain-{shallow}; ResNet-{deep} no "
    f"worse than plain-{deep}): {'shown' if shown else 'NOT shown'}"
  )
  print(
    f"figure: {fig}\nsummary: {os.path.join(_WORKDIR.value, 'summary.json')}"
    f"\ntotal {time.time() - t0:.0f} s"
  )
  if _RESULTS.value:
    os.makedirs(_RESULTS.value, exist_ok=True)
    for name in (
      "error_curves.png",
      "error_curves.pdf",
      "summary.json",
      "summary_details.json",
      "analysis/lesion_single.png",
      "analysis/lesion_single.csv",
      "analysis/path_gradients.png",
      "analysis/path_gradients.csv",
      "analysis/gradient_flow.png",
    ):
      shutil.copy(os.path.join(_WORKDIR.value, name), _RESULTS.value)


if __name__ == "__main__":
  app.run(main)
