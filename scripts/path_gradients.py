r"""Veit et al. 2016 §5: the gradient magnitude carried by paths of each length, on a trained
workdir.

  python scripts/path_gradients.py --workdir=runs/r110 --samples=1000 --batch=128

For every path length k = 0..n it samples --samples sets of k blocks, lets the gradient flow through
the residual branch of those blocks and the skip of all others, and records the gradient norm at the
input for a batch of training images. Writes path_gradients.csv (k,num_paths,grad_norm_mean,
grad_norm_std,total_grad) and path_gradients.png (Veit et al. Fig. 6: path-length distribution,
gradient magnitude per path length, total gradient per length) to --out_dir (default:
<workdir>/analysis), and prints the range of path lengths that carries --share of the total gradient
("effective paths").
"""

import os
import sys

from absl import app, flags

_WORKDIR = flags.DEFINE_string(
  "workdir", None, "A training workdir of a ResNet, with a checkpoint."
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
  from cnn_depth import checkpoint, console
  from cnn_depth.analysis import studies

  console.quiet_unless_verbose()

  out = _OUT.value or os.path.join(_WORKDIR.value, "analysis")
  try:
    result = studies.path_gradient_study(
      _WORKDIR.value,
      out,
      samples=_SAMPLES.value,
      batch=_BATCH.value,
      share=_SHARE.value,
      seed=_SEED.value,
      caption=_CAPTION.value,
    )
  # No workdir, no checkpoint, a plain net: one line, exit 2.
  except (ValueError, OSError, checkpoint.CheckpointError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  lo, hi = result["effective"]
  print(
    f"{result['label']} ({result['num_blocks']} blocks): {100 * _SHARE.value:.0f}% of the "
    f"gradient in paths of length {lo}-{hi}; results in {out}"
  )


if __name__ == "__main__":
  app.run(main)
