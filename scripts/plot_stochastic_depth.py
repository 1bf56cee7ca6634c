r"""Huang et al. 2016 Fig. 3 from workdirs: test error and training loss, constant vs stochastic
depth.

  python scripts/plot_stochastic_depth.py --runs=runs/huang2016/pL1.0,runs/huang2016/pL0.5 \
      --labels="constant depth,stochastic depth (p_L=0.5)" --out_dir=results/huang2016
  python scripts/plot_stochastic_depth.py --runs='runs/huang2016/pL1.0_s*,runs/huang2016/pL0.5_s*'

Each --runs entry is one variant: a workdir, or a glob pattern whose matches are its seeds (drawn
as mean ± std). Writes curves.png/pdf and curves.csv (variant, epoch, test_error, test_error_std,
seeds) to --out_dir.
"""

import glob
import os

from absl import app, flags

_RUNS = flags.DEFINE_list(
  "runs", None, "Training workdirs, one per variant (a glob pattern: the variant's seeds)."
)
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
  runs = {}
  for label, pattern in zip(labels, _RUNS.value):
    paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    if not paths:
      raise app.UsageError(f"no workdir matches {pattern}")
    runs[label] = [runs_lib.load_run(path) for path in paths]
  steps_per_epoch = next(iter(runs.values()))[0].steps_per_epoch
  if steps_per_epoch is None:
    raise app.UsageError(f"{_RUNS.value[0]} has logged no step yet")
  print(
    plotting.stochastic_depth_curves(
      runs, os.path.join(_OUT.value, "curves.png"), steps_per_epoch, caption=_CAPTION.value or None
    )
  )
  plotting.write_curves_csv(runs, os.path.join(_OUT.value, "curves.csv"), steps_per_epoch)
  for label, group in runs.items():
    errors = [100 * run.last("test_error") for run in group]
    losses = [run.last("train_loss") for run in group]
    print(
      f"{label}: final test error {', '.join(f'{e:.2f}' for e in errors)}% "
      f"(mean {sum(errors) / len(errors):.2f}%), final training loss "
      f"{', '.join(f'{v:.4f}' for v in losses)} ({len(group)} seeds)"
    )


if __name__ == "__main__":
  app.run(main)
