r"""Huang et al. 2016 Fig. 3 from workdirs: test error and training loss, constant vs stochastic
depth.

  python scripts/plot_stochastic_depth.py --runs=runs/huang2016/pL1.0,runs/huang2016/pL0.5 \
      --labels="constant depth,stochastic depth (p_L=0.5)" --out_dir=results/huang2016

Writes curves.png/pdf and curves.csv (variant, epoch, test_error) to --out_dir.
"""

import os

from absl import app, flags

_RUNS = flags.DEFINE_list("runs", None, "Training workdirs, one per variant.")
_LABELS = flags.DEFINE_list("labels", None, "A label per run (default: the folder names).")
_OUT = flags.DEFINE_string("out_dir", None, "Where curves.{png,pdf,csv} go.")
_CAPTION = flags.DEFINE_string("caption", "", "Text under the figure (data, schedule, machine).")
flags.mark_flags_as_required(["runs", "out_dir"])


def main(argv):
  del argv
  from cnn_depth.analysis import plotting
  from cnn_depth.analysis import runs as runs_lib

  labels = _LABELS.value or [os.path.basename(os.path.normpath(r)) for r in _RUNS.value]
  if len(labels) != len(_RUNS.value):
    raise app.UsageError("--labels needs one label per --runs entry")
  runs = {label: runs_lib.load_run(path) for label, path in zip(labels, _RUNS.value)}
  steps_per_epoch = next(iter(runs.values())).steps_per_epoch
  if steps_per_epoch is None:
    raise app.UsageError(f"{_RUNS.value[0]} has logged no step yet")
  print(
    plotting.stochastic_depth_curves(
      runs, os.path.join(_OUT.value, "curves.png"), steps_per_epoch, caption=_CAPTION.value or None
    )
  )
  plotting.write_curves_csv(runs, os.path.join(_OUT.value, "curves.csv"), steps_per_epoch)
  for label, run in runs.items():
    print(
      f"{label}: final test error {100 * run.last('test_error'):.2f}%, "
      f"final training loss {run.last('train_loss'):.4f}"
    )


if __name__ == "__main__":
  app.run(main)
