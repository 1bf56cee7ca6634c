r"""Li et al. 2018 on trained workdirs (nothing retrains): loss landscapes and Hessian spectra.

  python scripts/loss_landscape.py --workdir=runs/he2016/plain_d44_s0,runs/he2016/resnet_d44_s0
  python scripts/loss_landscape.py --workdir='runs/he2016/*_d44_*' --out_dir=results/li2018

For each workdir (a glob pattern takes every match with a checkpoint):
  landscape_1d.csv/png  training loss and test error along a random filter-normalised direction
                        (model,depth,seed,alpha,train_loss,test_error);
  landscape_2d.csv/png  training loss on the plane of two such directions (model,depth,seed,alpha,
                        beta,train_loss; the figure: contours of the lowest seed);
  hessian.csv/png       lambda_max, lambda_min and |lambda_min/lambda_max| of the training loss's
                        Hessian at the initialisation (step 0) and at every checkpoint
                        (model,depth,seed,step,lambda_max,lambda_min,ratio);
  hessian_density.csv/png  the eigenvalue density at the last checkpoint (stochastic Lanczos
                        quadrature; model,depth,seed,step,eigenvalue,density),
in --out_dir (default: the first workdir's analysis/ folder). BN runs in inference mode with the
trained statistics (at step 0: those of the training images).
"""

from absl import app, flags

_WORKDIR = flags.DEFINE_list("workdir", None, "Training workdirs with a checkpoint, or patterns.")
_OUT = flags.DEFINE_string("out_dir", None, "Where the CSVs and the figures go.")
_SPAN = flags.DEFINE_float("span", 1.0, "The landscapes cover alpha, beta in [-span, span].")
_POINTS_1D = flags.DEFINE_integer("points_1d", 41, "Points of the 1-D landscape.")
_POINTS_2D = flags.DEFINE_integer(
  "points_2d", 21, "Points per axis of the 2-D landscape (0: none)."
)
_PLANE_SEEDS = flags.DEFINE_list("plane_seeds", None, "Seeds of the 2-D landscape (default: all).")
_TRAIN = flags.DEFINE_integer("train_examples", 0, "Training images of the landscapes (0: all).")
_HESSIAN = flags.DEFINE_bool("hessian", True, "Also measure the Hessian spectra.")
_H_TRAIN = flags.DEFINE_integer("hessian_examples", 512, "Training images of the Hessian.")
_ITERS = flags.DEFINE_integer("lanczos_iters", 20, "Lanczos steps for lambda_max and lambda_min.")
_D_ITERS = flags.DEFINE_integer("density_iters", 40, "Lanczos steps per density start vector.")
_D_DRAWS = flags.DEFINE_integer("density_draws", 2, "Start vectors of the density (0: none).")
_CAPTION = flags.DEFINE_string("caption", None, "A line under each figure (data, nets, date).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where the data lie, if not the config's.")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  from cnn_depth import cli, workdir

  plane_seeds = _check_flags(cli)
  cli.check_out_dir(_OUT.value)  # before any workdir or data is read
  from cnn_depth.analysis import runs
  from cnn_depth.studies import li2018

  workdirs = runs.expand_workdirs(_WORKDIR.value)
  if not workdirs:
    cli.fail(f"no workdir with a checkpoint matches {','.join(_WORKDIR.value)}")
  out = _OUT.value or workdir.analysis_dir(workdirs[0])
  common = {"caption": _CAPTION.value, "data_dir": _DATA_DIR.value}

  def measure() -> list[str]:
    one = li2018.landscape_study(
      workdirs, out, span=_SPAN.value, points_1d=_POINTS_1D.value, points_2d=_POINTS_2D.value,
      plane_seeds=plane_seeds, train_examples=_TRAIN.value, **common,
    )  # fmt: skip
    extremes = {}
    if _HESSIAN.value:
      extremes = li2018.hessian_study(
        workdirs, out, train_examples=_H_TRAIN.value, num_iters=_ITERS.value,
        density_iters=_D_ITERS.value, density_draws=_D_DRAWS.value, **common,
      )  # fmt: skip
    return li2018.summarize_landscape(one, extremes)

  cli.analysis_main(measure, out)


def _check_flags(cli) -> list[int] | None:
  """Every numeric flag in its range (one `error:` line, exit 2, otherwise); --plane_seeds as
  ints (None: all seeds)."""
  cli.require("span", _SPAN.value, cli.positive(_SPAN.value), "a finite number > 0")
  cli.require("points_1d", _POINTS_1D.value, cli.whole(2)(_POINTS_1D.value), "a whole number >= 2")
  points_2d = _POINTS_2D.value
  ok = points_2d == 0 or cli.whole(2)(points_2d)
  cli.require("points_2d", points_2d, ok, "0 (no 2-D landscape) or a whole number >= 2")
  for name, flag in (("train_examples", _TRAIN), ("density_draws", _D_DRAWS)):
    cli.require(name, flag.value, cli.whole(0)(flag.value), "a whole number >= 0")
  for name, flag in (("hessian_examples", _H_TRAIN), ("lanczos_iters", _ITERS)):
    cli.require(name, flag.value, cli.whole(1)(flag.value), "a whole number >= 1")
  cli.require("density_iters", _D_ITERS.value, cli.whole(1)(_D_ITERS.value), "a whole number >= 1")
  if _PLANE_SEEDS.value is None:
    return None
  ok = all(s.strip().isdigit() for s in _PLANE_SEEDS.value) and _PLANE_SEEDS.value != []
  cli.require(
    "plane_seeds", ",".join(_PLANE_SEEDS.value), ok, "a comma-separated list of seeds >= 0"
  )
  return [int(s) for s in _PLANE_SEEDS.value]


if __name__ == "__main__":
  app.run(main)
