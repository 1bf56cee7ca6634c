r"""Re-make the figures and the error-vs-depth table from training workdirs, without training.

  python scripts/make_figures.py --runs_dir=runs/quickstart --out_dir=runs/quickstart/figures

Every folder under --runs_dir holding a config.json is a run. Writes:
  error_curves.png/pdf  He et al. Fig. 6: one panel per family, train dashed, test bold, and a
                        panel of the family's 110 vs 1202 runs where both exist;
  table.csv, table.md   He et al. Table 6 layout: family, depth, params, final errors (mean ± std
                        over seeds where there are several); table_by_seed.csv: one row per run;
  gradient_flow.png/pdf per-block gradient norms over training of the deepest runs of each family.
"""

import os

from absl import app, flags

_RUNS = flags.DEFINE_string("runs_dir", None, "Folder whose sub-folders are training workdirs.")
_OUT = flags.DEFINE_string(
  "out_dir", None, "Where the figures and table go (default: runs_dir/figures)."
)
_CAPTION = flags.DEFINE_string("caption", None, "A line under each figure (data, recipe, date).")
_YMAX = flags.DEFINE_float("ymax", None, "Upper limit of the error axis in % (default: automatic).")
flags.mark_flag_as_required("runs_dir")


def main(argv):
  del argv
  from cnn_depth import cli

  if _YMAX.value is not None:
    cli.require("ymax", _YMAX.value, cli.positive(_YMAX.value), "a finite error in % > 0, e.g. 30")
  cli.check_out_dir(_OUT.value)  # before any workdir is read
  from cnn_depth.studies import he2016

  out = _OUT.value or os.path.join(_RUNS.value, "figures")
  cli.analysis_main(lambda: he2016.figures(_RUNS.value, out, _CAPTION.value, _YMAX.value), out)


if __name__ == "__main__":
  app.run(main)
