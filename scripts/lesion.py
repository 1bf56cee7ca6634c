r"""Veit et al. 2016 §4 lesion studies on trained workdirs (nothing retrains).

  python scripts/lesion.py --workdir=runs/r110 --samples=20 --max_swaps=20
  python scripts/lesion.py --workdir=runs/r110,runs/plain20 --labels=ResNet-110,plain-20 \
      --out_dir=results/veit2016

For each workdir, on its test set (ImageNet: the validation split, streamed from --data_dir and kept
in memory, 7.5 GB; no reordering), through the per-block gates (one compiled function for every
pattern): each block deleted in turn (downsampling blocks marked), k random blocks deleted
(k = 1..--k_max, --samples sets each) and, for ResNets, random swaps of same-shape blocks (error vs
Kendall tau). Workdirs with the same label are seeds of one net (each run's config.seed):

  python scripts/lesion.py --workdir=runs/r32_s0,runs/r32_s1,runs/p32_s0,runs/p32_s1 \
      --labels=ResNet-32,ResNet-32,plain-32,plain-32

Writes lesion_single.csv (model,seed,block,downsampling,test_error; block -1 = intact),
lesion_multi.csv (model,seed,k,test_error_mean,test_error_std), lesion_reorder.csv
(model,seed,kendall_tau,test_error), one row per seed, and the figures lesion_single.png (Veit et
al. Fig. 3) and lesion_multi.png (Fig. 5), the mean over seeds with its spread, every net of
--workdir in the same files, to --out_dir (default: the first workdir's analysis/ folder). Prints
each net's numbers per seed. A net with no two blocks of one shape (ResNet-8: one block per stage)
has nothing to reorder: the default --max_swaps refuses it, --max_swaps=0 keeps the trained order.
Bad numbers and an --out_dir that cannot be made are refused before any workdir is read (exit 2).
"""

from absl import app, flags

_WORKDIR = flags.DEFINE_list(
  "workdir", None, "Training workdirs with a checkpoint (comma-separated); the same label: seeds."
)
_LABELS = flags.DEFINE_list(
  "labels", None, "A label per workdir (default: the net's name, e.g. ResNet-32)."
)
_OUT = flags.DEFINE_string("out_dir", None, "Where the CSVs and figures go.")
_K_MAX = flags.DEFINE_integer("k_max", 0, "Largest number of deleted blocks (0: all blocks).")
_SAMPLES = flags.DEFINE_integer("samples", 20, "Random block sets per k, and reorderings.")
_SWAPS = flags.DEFINE_integer("max_swaps", 10, "Largest number of random swaps per reordering.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed.")
_CAPTION = flags.DEFINE_string("caption", None, "A line under each figure (data, nets, date).")
_BATCH = flags.DEFINE_integer("batch", 0, "Evaluation batch size (0: 500, or 250 streamed).")
_DATA_DIR = flags.DEFINE_string(
  "data_dir", None, "Where the test set lies, if not the workdir's config.dataset.data_dir (an "
  "imported net's workdir names none; ImageNet: a TFDS data_dir with imagenet2012 prepared)."
)  # fmt: skip
flags.mark_flag_as_required("workdir")


def main(argv):
  del argv
  from cnn_depth import cli, workdir

  cli.require("k_max", _K_MAX.value, cli.whole(0)(_K_MAX.value), "a whole number >= 0 (0: all)")
  cli.require("samples", _SAMPLES.value, cli.whole(1)(_SAMPLES.value), "a whole number >= 1")
  cli.require(
    "max_swaps", _SWAPS.value, cli.whole(0)(_SWAPS.value), "a whole number >= 0 (0: no swap)"
  )
  cli.require("seed", _SEED.value, cli.whole(0)(_SEED.value), "a whole number >= 0")
  cli.require("batch", _BATCH.value, cli.whole(0)(_BATCH.value), "a whole number >= 0 (0: auto)")
  cli.check_out_dir(_OUT.value)  # before any workdir or data is read
  from cnn_depth.studies import veit2016

  out = _OUT.value or workdir.analysis_dir(_WORKDIR.value[0])
  cli.analysis_main(
    lambda: veit2016.lesion_lines(
      veit2016.lesion_study(
        _WORKDIR.value, out, _LABELS.value, k_max=_K_MAX.value, samples=_SAMPLES.value,
        max_swaps=_SWAPS.value, seed=_SEED.value, caption=_CAPTION.value,
        data_dir=_DATA_DIR.value, batch_size=_BATCH.value,
      )
    ),
    out,
  )  # fmt: skip


if __name__ == "__main__":
  app.run(main)
