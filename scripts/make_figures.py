r"""Re-make the figures and the error-vs-depth table from training workdirs, without training.

  python scripts/make_figures.py --runs_dir=runs/quickstart --out_dir=runs/quickstart/figures

Every folder under --runs_dir holding a config.json is a run. Writes:
  error_curves.png/pdf  He et al. Fig. 6: one panel per family, train dashed, test bold, and a
                        panel of the family's 110 vs 1202 runs where both exist;
  table.csv, table.md   He et al. Table 6 layout: family, depth, params, final errors (mean ± std
                        over seeds where there are several);
  gradient_flow.png/pdf per-block gradient norms over training of the deepest runs of each family.
"""

import os

from absl import app, flags

_RUNS = flags.DEFINE_string("runs_dir", None, "Folder whose sub-folders are training workdirs.")
_OUT = flags.DEFINE_string("out_dir", None, "Where the figures and table go (default: runs_dir/figures).")
_CAPTION = flags.DEFINE_string("caption", None, "A line under each figure (data, recipe, date).")
_YMAX = flags.DEFINE_float("ymax", None, "Upper limit of the error axis in % (default: automatic).")
flags.mark_flag_as_required("runs_dir")

PANEL_TITLES = {"cifar_plain": "plain nets", "cifar_resnet": "ResNets", "imagenet_plain": "plain nets",
                "imagenet_resnet": "ResNets", "cifar_preact": "pre-activation ResNets",
                "cifar_vgg": "VGG nets", "cifar_vgg_bn": "VGG nets (BN)"}
SHORT_NAMES = {"cifar_plain": "plain", "cifar_resnet": "ResNet", "imagenet_plain": "plain",
               "imagenet_resnet": "ResNet", "cifar_preact": "PreAct-ResNet", "cifar_vgg": "VGG",
               "cifar_vgg_bn": "VGG-BN", "vgg": "VGG", "vgg_bn": "VGG-BN",
               "cifar_densenet": "DenseNet", "cifar_densenet_bc": "DenseNet-BC"}

# Input shape per dataset, to count parameters (the first convolution depends on the channels).
IMAGE_SHAPES = {"digits": (8, 8, 1), "cifar10": (32, 32, 3), "cifar100": (32, 32, 3),
                "imagenet2012": (224, 224, 3), "synthetic": (32, 32, 3)}
NUM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100, "imagenet2012": 1000, "synthetic": 10}


def find_runs(root):
  from cnn_depth.analysis import results
  runs = {}
  for dirpath, _, files in sorted(os.walk(root)):
    if "config.json" in files:
      runs[os.path.relpath(dirpath, root)] = results.load_run(dirpath)
  return runs


def count_params(run):
  from cnn_depth import models
  name = run.config["dataset"]["name"]
  model = models.build_model({**run.config["model"], "num_classes": NUM_CLASSES[name]})
  return models.count_params(models.init_shapes(model, IMAGE_SHAPES[name])["params"])


def main(argv):
  del argv
  from cnn_depth.analysis import plotting, results

  out = _OUT.value or os.path.join(_RUNS.value, "figures")
  runs = find_runs(_RUNS.value)
  if not runs:
    raise app.UsageError(f"no training workdirs (folders with config.json) under {_RUNS.value}")
  families = sorted({r.family for r in runs.values()})
  labels = {}
  for name, r in runs.items():  # "ResNet-56", with the run's folder where a depth has several seeds
    label = f"{SHORT_NAMES.get(r.family, r.family)}-{r.depth}"
    twins = sum(o.family == r.family and o.depth == r.depth for o in runs.values())
    labels[name] = label if twins == 1 else f"{label} ({name})"
  by_depth = sorted(runs.items(), key=lambda kv: (kv[1].depth, kv[0]))
  panels = [(PANEL_TITLES.get(family, family),
             {labels[name]: r for name, r in by_depth if r.family == family}) for family in families]
  for family in families:  # He et al. Fig. 6 (right): ResNet-110 vs ResNet-1202
    pair = {labels[name]: r for name, r in by_depth if r.family == family and r.depth in (110, 1202)}
    if {r.depth for r in pair.values()} == {110, 1202}:
      panels.append((f"{PANEL_TITLES.get(family, family)}: 110 vs 1202 layers", pair))
  ylim = (0, _YMAX.value) if _YMAX.value else None
  print(plotting.error_curves(panels, os.path.join(out, "error_curves.png"), ylim=ylim,
                              caption=_CAPTION.value))
  params = {(r.family, r.depth): count_params(r) for r in runs.values()}
  rows = results.error_table(runs, params)
  results.write_error_table(rows, os.path.join(out, "table.csv"), os.path.join(out, "table.md"))
  print(open(os.path.join(out, "table.md")).read())
  deepest = {}
  for name, r in runs.items():
    if any("block_grad_norms" in m for m in r.metrics) and r.depth >= deepest.get(r.family, (0,))[0]:
      deepest[r.family] = (r.depth, name, r)
  if deepest:
    print(plotting.gradient_flow({labels[name]: r for _, (_, name, r) in sorted(deepest.items())},
                                 os.path.join(out, "gradient_flow.png"), caption=_CAPTION.value))


if __name__ == "__main__":
  app.run(main)
