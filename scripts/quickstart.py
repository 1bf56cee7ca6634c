r"""The main job: plain nets and ResNets at two depths on the embedded digits, their curves and
summary (cnn_depth/studies/quickstart.py).

  python scripts/quickstart.py --workdir=runs/quickstart            # what `make quickstart` runs

Trains plain-8, plain-32, ResNet-8 and ResNet-32 (configs/quickstart.py) one after another in this
process, writes each run's workdir under --workdir, the He et al. Fig. 6-style error curves (train
dashed, test bold), Veit et al.'s lesions and path gradients of the deep pair under
--workdir/analysis, and summary.json, and says whether the degradation ordering showed: the deeper
plain net ends with a higher training error than the shallower one, and the deeper ResNet with a
lower or equal one than the deeper plain net. The same study runs through the sweep's launchers as
`scripts/reproduce.py --study=quickstart --quick`.
"""

import os
import shutil

from absl import app, flags

_WORKDIR = flags.DEFINE_string(
  "workdir", "runs/quickstart", "Where the runs, figure and summary go."
)
_DEPTHS = flags.DEFINE_list("depths", ["8", "32"], "The shallow and the deep depth (6n+2).")
_STEPS = flags.DEFINE_integer("steps", 800, "Training steps per run.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every run.")
_FRESH = flags.DEFINE_bool("fresh", True, "Delete --workdir first (else finished runs are reused).")
_RESULTS = flags.DEFINE_string("results_dir", "", "Also copy the figure and summary here.")
_SAMPLES = flags.DEFINE_integer("path_samples", 20, "Sampled block sets per path length.")


def main(argv):
  del argv
  from cnn_depth import cli, console, studies
  from cnn_depth.studies import quickstart

  console.quiet_unless_verbose()
  try:
    options = studies.get("quickstart").options(
      True, seeds=str(_SEED.value), depths=",".join(_DEPTHS.value), steps=str(_STEPS.value),
      path_samples=str(_SAMPLES.value),
    )  # fmt: skip
    quickstart.grid(quickstart.check(options))
  except studies.StudyError as e:
    cli.fail(str(e))
  if _FRESH.value and os.path.isdir(_WORKDIR.value):
    shutil.rmtree(_WORKDIR.value)
  print("\n".join(quickstart.run(options, _WORKDIR.value, _RESULTS.value or None)))


if __name__ == "__main__":
  app.run(main)
