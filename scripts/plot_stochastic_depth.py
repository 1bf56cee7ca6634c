r"""Huang et al. 2016 Fig. 3 from workdirs: test error and training loss, constant vs stochastic
depth.

  python scripts/plot_stochastic_depth.py --runs=runs/huang2016/pL1.0,runs/huang2016/pL0.5 \
      --labels="constant depth,stochastic depth (p_L=0.5)" --out_dir=results/huang2016
  python scripts/plot_stochastic_depth.py --runs='runs/huang2016/pL1.0_s*,runs/huang2016/pL0.5_s*'

Each --runs entry is one variant: a workdir, or a glob pattern whose matches are its seeds (drawn
as mean ± std). Writes curves.png/pdf and curves.csv (variant, epoch, test_error, test_error_std,
seeds) to --out_dir.
"""

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
  from cnn_depth import cli
  from cnn_depth.studies import huang2016

  labels = _LABELS.value or [os.path.basename(os.path.normpath(r)) for r in _RUNS.value]
  if len(labels) != len(_RUNS.value):
    cli.fail("--labels needs one label per --runs entry")
  variants = {label: [pattern] for label, pattern in zip(labels, _RUNS.value)}
  cli.analysis_main(
    lambda: huang2016.curves(variants, _OUT.value, _CAPTION.value or None), _OUT.value
  )


if __name__ == "__main__":
  app.run(main)
