r"""Veit et al. 2016 §4 lesion studies on trained workdirs (nothing retrains).

  python scripts/lesion.py --workdir=runs/r110 --samples=20 --max_swaps=20
  python scripts/lesion.py --workdir=runs/r110,runs/plain20 --labels=ResNet-110,plain-20 \
      --out_dir=results/veit2016

For each workdir, on its test set, through the per-block gates (one compiled function for every
pattern): each block deleted in turn (downsampling blocks marked), k random blocks deleted
(k = 1..--k_max, --samples sets each) and, for ResNets, random swaps of same-shape blocks (error vs
Kendall tau). Writes lesion_single.csv (model,block,downsampling,test_error; block -1 = intact),
lesion_multi.csv (model,k,test_error_mean,test_error_std), lesion_reorder.csv
(model,kendall_tau,test_error) and the figures lesion_single.png (Veit et al. Fig. 3) and
lesion_multi.png (Fig. 5), every net of --workdir in the same files, to --out_dir (default: the first
workdir's analysis/ folder).
"""

import os
import sys

from absl import app, flags

_WORKDIR = flags.DEFINE_list("workdir", None, "Training workdirs with a checkpoint (comma-separated).")
_LABELS = flags.DEFINE_list("labels", None, "A label per workdir (default: family-depth).")
_OUT = flags.DEFINE_string("out_dir", None, "Where the CSVs and figures go.")
_K_MAX = flags.DEFINE_integer("k_max", 0, "Largest number of deleted blocks (0: all blocks).")
_SAMPLES = flags.DEFINE_integer("samples", 20, "Random block sets per k, and reorderings.")
_SWAPS = flags.DEFINE_integer("max_swaps", 10, "Largest number of random swaps per reordering.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_CAPTION = flags.DEFINE_string("caption", None, "A line under each figure (data, nets, date).")
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  from cnn_depth import checkpoint, models
  from cnn_depth.analysis import lesion, plotting

  workdirs = _WORKDIR.value
  labels = _LABELS.value or [None] * len(workdirs)
  if len(labels) != len(workdirs):
    print(f"error: {len(labels)} --labels for {len(workdirs)} workdirs", file=sys.stderr)
    sys.exit(2)
  single, multi, reorder = {}, {}, {}
  for workdir, label in zip(workdirs, labels):
    try:
      model, variables, config, ds = lesion.load_trained(workdir)
    except (ValueError, OSError, checkpoint.CheckpointError) as e:  # no workdir, no checkpoint
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
    label = label or f"{config['model']['family']}-{config['model']['depth']}"
    if label in single:
      label = f"{label} ({os.path.basename(os.path.normpath(workdir))})"
    error = lesion.make_error_fn(model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std)
    intact, errors = lesion.single_block_lesion(error, model.num_blocks)
    single[label] = (intact, errors, models.downsampling_blocks(model))
    ks = list(range(1, (min(_K_MAX.value, model.num_blocks) or model.num_blocks) + 1))
    multi[label] = (ks, *lesion.multi_block_lesion(error, model.num_blocks, ks, _SAMPLES.value,
                                                   _SEED.value))
    if model.residual:  # reordering a plain net is not one of the paper's experiments
      reorder[label] = lesion.reorder_lesion(model, variables, ds.test_images, ds.test_labels, ds.mean,
                                             ds.std, _SWAPS.value, _SAMPLES.value, _SEED.value)
    print(f"{label}: intact test error {100 * intact:.2f}%, single-block deletions "
          f"{100 * errors.min():.2f}-{100 * errors.max():.2f}% (mean {100 * errors.mean():.2f}%)")
  out = _OUT.value or os.path.join(workdirs[0], "analysis")
  lesion.write_single_csv(os.path.join(out, "lesion_single.csv"), single)
  lesion.write_multi_csv(os.path.join(out, "lesion_multi.csv"), multi)
  if reorder:
    lesion.write_reorder_csv(os.path.join(out, "lesion_reorder.csv"), reorder)
  plotting.lesion_single(single, os.path.join(out, "lesion_single.png"), caption=_CAPTION.value)
  plotting.lesion_multi(multi, os.path.join(out, "lesion_multi.png"), reorder or None,
                        caption=_CAPTION.value)
  print(f"results in {out}")


if __name__ == "__main__":
  app.run(main)
