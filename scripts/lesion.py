r"""Veit et al. 2016 §4 lesion studies on a trained workdir (nothing retrains).

  python scripts/lesion.py --workdir=runs/r110 --samples=20 --max_swaps=20

Writes <workdir>/analysis/lesion_single.{csv,png} (each block deleted in turn; downsampling blocks
marked), lesion_multi.csv (k random blocks deleted, k = 1..--k_max, --samples sets each),
lesion_reorder.csv (random swaps of same-shape blocks: error vs Kendall tau; ResNets only) and
lesion_multi.png (both as in Veit et al. Fig. 5), all on the test set,
through the per-block gates: one compiled function for every pattern.
"""

import os
import sys

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir with a checkpoint.")
_K_MAX = flags.DEFINE_integer("k_max", 0, "Largest number of deleted blocks (0: all blocks).")
_SAMPLES = flags.DEFINE_integer("samples", 20, "Random block sets per k, and reorderings.")
_SWAPS = flags.DEFINE_integer("max_swaps", 10, "Largest number of random swaps per reordering.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  from cnn_depth import checkpoint, models
  from cnn_depth.analysis import lesion, plotting

  try:
    model, variables, config, ds = lesion.load_trained(_WORKDIR.value)
  except (ValueError, OSError, checkpoint.CheckpointError) as e:  # no workdir, no checkpoint, plain net
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  out = os.path.join(_WORKDIR.value, "analysis")
  label = f"{config['model']['family']}-{config['model']['depth']}"
  error = lesion.make_error_fn(model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std)
  intact, errors = lesion.single_block_lesion(error, model.num_blocks)
  result = {label: (intact, errors, models.downsampling_blocks(model))}
  lesion.write_single_csv(os.path.join(out, "lesion_single.csv"), result)
  plotting.lesion_single(result, os.path.join(out, "lesion_single.png"))
  ks = list(range(1, (_K_MAX.value or model.num_blocks) + 1))
  means, stds = lesion.multi_block_lesion(error, model.num_blocks, ks, _SAMPLES.value, _SEED.value)
  lesion.write_multi_csv(os.path.join(out, "lesion_multi.csv"), label, ks, means, stds)
  reorder = None
  if model.residual:  # reordering a plain net is not one of the paper's experiments
    pairs = lesion.reorder_lesion(model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std,
                                  _SWAPS.value, _SAMPLES.value, _SEED.value)
    lesion.write_reorder_csv(os.path.join(out, "lesion_reorder.csv"), label, pairs)
    reorder = {label: pairs}
  plotting.lesion_multi({label: (ks, means, stds)}, os.path.join(out, "lesion_multi.png"), reorder)
  print(f"{label}: intact test error {100 * intact:.2f}%, single-block deletions "
        f"{100 * errors.min():.2f}-{100 * errors.max():.2f}%; results in {out}")


if __name__ == "__main__":
  app.run(main)
