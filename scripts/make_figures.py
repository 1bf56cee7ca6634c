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
_OUT = flags.DEFINE_string(
  "out_dir", None, "Where the figures and table go (default: runs_dir/figures)."
)
_CAPTION = flags.DEFINE_string("caption", None, "A line under each figure (data, recipe, date).")
_YMAX = flags.DEFINE_float("ymax", None, "Upper limit of the error axis in % (default: automatic).")
flags.mark_flag_as_required("runs_dir")


def count_params(run) -> int:
  """The parameters of a run's net, on its dataset's input."""
  from cnn_depth import data, models

  spec = data.get(run.config["dataset"]["name"])
  model = models.build_model(run.config["model"], num_classes=spec.num_classes)
  return models.count_params(models.init_shapes(model, spec.image_shape)["params"])


def run_labels(runs) -> dict[str, str]:
  """'ResNet-56' per run (the registry's name), with the run's folder where a net has several
  seeds."""
  from cnn_depth import models

  labels = {}
  for name, r in runs.items():
    label = models.registry.get(r.family).net_label(r.depth, r.config["model"])
    twins = sum(o.family == r.family and o.depth == r.depth for o in runs.values())
    labels[name] = label if twins == 1 else f"{label} ({name})"
  return labels


def panels(runs, labels) -> list:
  """One panel per family, shallow to deep, and He et al. Fig. 6 (right) where a family has both
  110 and 1202 layers."""
  from cnn_depth import models

  by_depth = sorted(runs.items(), key=lambda kv: (kv[1].depth, kv[0]))
  out, pairs = [], []
  for family in sorted({r.family for r in runs.values()}):
    title = models.registry.get(family).title
    out.append((title, {labels[name]: r for name, r in by_depth if r.family == family}))
    pair = {
      labels[name]: r for name, r in by_depth if r.family == family and r.depth in (110, 1202)
    }
    if {r.depth for r in pair.values()} == {110, 1202}:
      pairs.append((f"{title}: 110 vs 1202 layers", pair))
  return out + pairs


def main(argv):
  del argv
  from cnn_depth.analysis import plotting, results
  from cnn_depth.analysis import runs as runs_lib

  out = _OUT.value or os.path.join(_RUNS.value, "figures")
  runs = runs_lib.find_runs(_RUNS.value)
  if not runs:
    raise app.UsageError(f"no training workdirs (folders with config.json) under {_RUNS.value}")
  labels = run_labels(runs)
  ylim = (0, _YMAX.value) if _YMAX.value else None
  print(
    plotting.error_curves(
      panels(runs, labels), os.path.join(out, "error_curves.png"), ylim=ylim, caption=_CAPTION.value
    )
  )
  params = {(r.family, r.depth): count_params(r) for r in runs.values()}
  rows = results.error_table(runs, params)
  results.write_error_table(rows, os.path.join(out, "table.csv"), os.path.join(out, "table.md"))
  print(open(os.path.join(out, "table.md")).read())
  deepest = {}
  for name, r in runs.items():
    if (
      any("block_grad_norms" in m for m in r.metrics) and r.depth >= deepest.get(r.family, (0,))[0]
    ):
      deepest[r.family] = (r.depth, name, r)
  if deepest:
    print(
      plotting.gradient_flow(
        {labels[name]: r for _, (_, name, r) in sorted(deepest.items())},
        os.path.join(out, "gradient_flow.png"),
        caption=_CAPTION.value,
      )
    )


if __name__ == "__main__":
  app.run(main)
