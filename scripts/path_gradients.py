r"""Veit et al. 2016 §5: the gradient magnitude carried by paths of each length, on a trained
workdir or on the seeds of one net.

  python scripts/path_gradients.py --workdir=runs/r110 --samples=1000 --batch=128
  python scripts/path_gradients.py --workdir=runs/r32_s0,runs/r32_s1,runs/r32_s2

For every path length k = 0..n it samples --samples sets of k blocks, lets the gradient flow through
the residual branch of those blocks and the skip of all others, and records the gradient norm at the
input for a batch of training images. Writes to --out_dir (default: <first workdir>/analysis)
path_gradients.csv (k,num_paths,grad_norm_mean,grad_norm_std,total_grad,grad_norm_seed_std,seeds:
the mean over the seeds of --workdir, the std over the sampled paths within a seed, the std over
seeds of the per-seed means), path_gradients_by_seed.csv (seed,k,num_paths,grad_norm_mean,
grad_norm_std,total_grad) and path_gradients.png (Veit et al. Fig. 6: path-length distribution,
gradient magnitude per path length, total gradient per length; several seeds: their mean, ± std
over seeds), and prints, for the mean and each seed, the range of path lengths that carries --share
of the total gradient ("effective paths").
"""

from absl import app, flags

_WORKDIR = flags.DEFINE_list(
  "workdir", None, "Training workdirs of a ResNet with a checkpoint; several: seeds of one net."
)
_SAMPLES = flags.DEFINE_integer(
  "samples", 100, "Sampled block sets per path length (paper: 1,000)."
)
_BATCH = flags.DEFINE_integer("batch", 128, "Training images the gradient is measured on.")
_SHARE = flags.DEFINE_float("share", 0.9, "Share of the total gradient for the effective paths.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_OUT = flags.DEFINE_string("out_dir", None, "Where the CSV and figure go.")
_CAPTION = flags.DEFINE_string("caption", None, "A line under the figure (data, net, date).")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  from cnn_depth import cli, workdir

  cli.require("samples", _SAMPLES.value, cli.whole(1)(_SAMPLES.value), "a whole number >= 1")
  cli.require("batch", _BATCH.value, cli.whole(1)(_BATCH.value), "a whole number >= 1")
  ok = cli.positive(_SHARE.value) and _SHARE.value <= 1
  cli.require("share", _SHARE.value, ok, "a share of the gradient in (0, 1], e.g. 0.9")
  cli.require("seed", _SEED.value, cli.whole(0)(_SEED.value), "a whole number >= 0")
  cli.check_out_dir(_OUT.value)  # before any workdir or data is read
  from cnn_depth.studies import veit2016

  out = _OUT.value or workdir.analysis_dir(_WORKDIR.value[0])
  cli.analysis_main(
    lambda: veit2016.path_lines(
      veit2016.path_gradient_study(
        _WORKDIR.value, out, samples=_SAMPLES.value, batch=_BATCH.value, share=_SHARE.value,
        seed=_SEED.value, caption=_CAPTION.value,
      ),
      _SHARE.value,
    ),
    out,
  )  # fmt: skip


if __name__ == "__main__":
  app.run(main)
