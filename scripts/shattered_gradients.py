r"""Balduzzi et al. 2017, shattered gradients, on trained workdirs (nothing retrains).

  python scripts/shattered_gradients.py --workdir=runs/he2016/plain_d44_s0,runs/he2016/resnet_d44_s0
  python scripts/shattered_gradients.py --workdir='runs/he2016/*' --out_dir=results/balduzzi2017

For each workdir, at its initialisation (re-drawn from the run's seed) and with its trained weights:
the gradient of the logit of the class predicted at a line's centre with respect to the input, at
--points inputs evenly spaced on a line through a test image (--radius per-pixel standard deviations
to either side, a random direction), and the correlation between gradients k points apart, averaged
over --lines lines. Writes gradient_correlation.csv (model,depth,seed,trained,lag,correlation) and
gradient_correlation.png to --out_dir (default: the first workdir's analysis/ folder). A glob
pattern in --workdir takes every workdir (folder with a checkpoint) it matches.
"""

from absl import app, flags

_WORKDIR = flags.DEFINE_list("workdir", None, "Training workdirs with a checkpoint, or patterns.")
_OUT = flags.DEFINE_string("out_dir", None, "Where the CSV and the figure go.")
_LINES = flags.DEFINE_integer("lines", 8, "Lines of inputs per net (each through a test image).")
_POINTS = flags.DEFINE_integer("points", 256, "Inputs per line (Balduzzi et al.: 256).")
_RADIUS = flags.DEFINE_float("radius", 1.0, "Half-length of a line, in per-pixel stds.")
_MAX_LAG = flags.DEFINE_integer("max_lag", 32, "Largest lag of the correlation.")
_LAG = flags.DEFINE_integer("lag", 8, "The lag the figure compares across depths.")
_CAPTION = flags.DEFINE_string("caption", None, "A line under the figure (data, nets, date).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where the test set lies, if not the config's.")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  from cnn_depth import cli, workdir

  cli.require("lines", _LINES.value, cli.whole(1)(_LINES.value), "a whole number >= 1")
  cli.require("points", _POINTS.value, cli.whole(2)(_POINTS.value), "a whole number >= 2")
  cli.require("radius", _RADIUS.value, cli.positive(_RADIUS.value), "a finite number > 0")
  ok = cli.whole(1)(_MAX_LAG.value) and _MAX_LAG.value < _POINTS.value
  cli.require(
    "max_lag", _MAX_LAG.value, ok, f"a whole number in [1, --points - 1 = {_POINTS.value - 1}]"
  )
  cli.require("lag", _LAG.value, cli.whole(1)(_LAG.value), "a whole number >= 1")
  cli.check_out_dir(_OUT.value)  # before any workdir or data is read
  from cnn_depth.analysis import runs
  from cnn_depth.studies import balduzzi2017

  workdirs = runs.expand_workdirs(_WORKDIR.value)
  if not workdirs:
    cli.fail(f"no workdir with a checkpoint matches {','.join(_WORKDIR.value)}")
  out = _OUT.value or workdir.analysis_dir(workdirs[0])
  measure = lambda: balduzzi2017.summarize_correlation(
    balduzzi2017.shattered_study(
      workdirs, out, num_lines=_LINES.value, num_points=_POINTS.value, radius=_RADIUS.value,
      max_lag=_MAX_LAG.value, lag=_LAG.value, caption=_CAPTION.value, data_dir=_DATA_DIR.value,
    ),
    min(_LAG.value, _MAX_LAG.value),
  )  # fmt: skip
  cli.analysis_main(measure, out)


if __name__ == "__main__":
  app.run(main)
