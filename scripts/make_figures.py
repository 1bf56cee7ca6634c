r"""Re-make the figures and the error-vs-depth table from training workdirs, without training.

  python scripts/make_figures.py --runs_dir=runs/quickstart --out_dir=runs/quickstart/figures

Every folder under --runs_dir holding a config.json is a run. Writes:
  error_curves.png/pdf  He et al. Fig. 6: one panel per family, train dashed, test bold, and a
                        panel of the family's 110 vs 1202 runs where both exist;
  table.csv, table.md   He et al. Table 6 layout: family, depth, params, final errors (mean ± std
                        over seeds where there are several); table_by_seed.csv: one row per run;
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


def net_label(run) -> str:
  """'ResNet-56': the registry's name of a run's net."""
  from cnn_depth import models

  return models.registry.get(run.family).net_label(run.depth, run.config["model"])


def panels(runs) -> list:
  """One panel per family, shallow to deep, each net's seeds together (drawn as mean ± std), and
  He et al. Fig. 6 (right) where a family has both 110 and 1202 layers."""
  from cnn_depth import models

  out, pairs = [], []
  for family in sorted({r.family for r in runs.values()}):
    nets: dict[str, list] = {}
    for _, r in sorted(runs.items(), key=lambda kv: (kv[1].depth, kv[0])):
      if r.family == family:
        nets.setdefault(net_label(r), []).append(r)
    title = models.registry.get(family).title
    out.append((title, nets))
    pair = {label: group for label, group in nets.items() if group[0].depth in (110, 1202)}
    if {group[0].depth for group in pair.values()} == {110, 1202}:
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
  ylim = (0, _YMAX.value) if _YMAX.value else None
  print(
    plotting.error_curves(
      panels(runs), os.path.join(out, "error_curves.png"), ylim=ylim, caption=_CAPTION.value
    )
  )
  params = {(r.family, r.depth): count_params(r) for r in runs.values()}
  rows = results.error_table(runs, params)
  results.write_error_table(rows, os.path.join(out, "table.csv"), os.path.join(out, "table.md"))
  results.write_rows(os.path.join(out, "table_by_seed.csv"), results.seed_table(runs))
  print(open(os.path.join(out, "table.md")).read())
  deepest = {}  # family -> the deepest net's first seed with logged block gradient norms
  for _, r in sorted(runs.items(), key=lambda kv: (kv[1].config.get("seed", 0), kv[0])):
    if any("block_grad_norms" in m for m in r.metrics) and r.depth > deepest.get(r.family, (0,))[0]:
      deepest[r.family] = (r.depth, r)
  if deepest:
    print(
      plotting.gradient_flow(
        {net_label(r): r for _, (_, r) in sorted(deepest.items())},
        os.path.join(out, "gradient_flow.png"),
        caption=_CAPTION.value,
      )
    )


if __name__ == "__main__":
  app.run(main)
