"""He et al. 2016, "Deep residual learning for image recognition", §4.2: plain nets vs ResNets of
depth 6n+2 on CIFAR-10 (Fig. 6, Table 6), and the degradation problem.

Quick mode: the embedded digits, depths 8-44, plain and ResNet, 3 seeds, 800 steps with four
checkpoints through training (the Hessian spectra of li2018 read them). Full mode: CIFAR-10,
depths 20-110 plain and ResNet, 64k iterations, and ResNet-1202 when no depths are chosen.

`figures(runs_dir, out_dir)` re-makes the figures and the table from any folder of workdirs
(`scripts/make_figures.py`): error_curves.png/pdf (one panel per family, train dashed, test bold,
and the family's 110 vs 1202 runs where both exist), table.csv/md (Table 6's layout, mean ± std
over seeds), table_by_seed.csv, gradient_flow.png/pdf (per-block gradient norms of the deepest run
of each family).
"""

from __future__ import annotations

import os

from cnn_depth import workdir as workdir_lib
from cnn_depth.studies import registry

QUICK_CAPTION = (
  "embedded digits (1,500 train / 297 test, 8x8), width 16, batch 128, {steps} steps, lr 0.1 /10 "
  "at 50% and 75%; train error = training-mode mini-batch error (dashed), test error bold"
)
FULL_CAPTION = (
  "CIFAR-10, batch 128, 64k iterations, lr 0.1 /10 at 32k and 48k, weight decay 1e-4, option A "
  "shortcuts; train error dashed, test error bold"
)


def grid(o: registry.Options) -> list[registry.RunSpec]:
  """Seed slowest, then plain before ResNet, then depth: the order of `scripts/sweep.py`."""
  specs = []
  for seed in o.seeds:
    for residual in (True, False):
      for depth in o.depths:
        family = "resnet" if residual else "plain"
        name = workdir_lib.run_name(family, depth, seed)
        args = f"depth={depth},residual={str(residual).lower()},seed={seed}"
        if o.quick:
          every = o.steps // 4 if o.steps >= 4 else 1
          specs.append(
            registry.RunSpec(
              name,
              f"configs/quickstart.py:steps={o.steps},{args}",
              (f"--config.checkpoint_every_steps={every}", "--config.keep_checkpoints=4"),
            )
          )
        else:
          specs.append(registry.RunSpec(name, f"configs/cifar_resnet.py:{args}", full_overrides(o)))
  if not o.quick and o.depths == list(FULL["depths"]):  # the whole Table 6: ResNet-1202 too
    specs.append(
      registry.RunSpec(
        workdir_lib.run_name("resnet", 1202, 0),
        "configs/cifar_resnet.py:depth=1202,residual=true,seed=0",
        full_overrides(o),
      )
    )
  return specs


def full_overrides(o: registry.Options) -> tuple[str, ...]:
  """The full mode's data, and its length where --steps was given (0: the paper's)."""
  steps = (f"--config.num_train_steps={o.steps}",) if o.steps else ()
  return (f"--config.dataset.data_dir={o.data_dir}", *steps)


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


def figures(
  runs_dir: str, out_dir: str, caption: str | None = None, ymax: float | None = None
) -> list[str]:
  """The error curves, the table and the gradient flow of every workdir under `runs_dir`; returns
  the paths written and the table (markdown). ValueError where there is no workdir."""
  from cnn_depth.analysis import plotting, results
  from cnn_depth.analysis import runs as runs_lib

  runs = runs_lib.find_runs(runs_dir)
  if not runs:
    raise ValueError(f"no training workdirs (folders with config.json) under {runs_dir}")
  ylim = (0, ymax) if ymax else None
  out = [plotting.error_curves(panels(runs), os.path.join(out_dir, "error_curves.png"),
                               ylim=ylim, caption=caption)]  # fmt: skip
  params = {(r.family, r.depth): count_params(r) for r in runs.values()}
  rows = results.error_table(runs, params)
  md = os.path.join(out_dir, "table.md")
  results.write_error_table(rows, os.path.join(out_dir, "table.csv"), md)
  results.write_rows(os.path.join(out_dir, "table_by_seed.csv"), results.seed_table(runs))
  with open(md) as f:
    out.append(f.read())
  deepest = {}  # family -> the deepest net's first seed with logged block gradient norms
  for _, r in sorted(runs.items(), key=lambda kv: (kv[1].config.get("seed", 0), kv[0])):
    if any("block_grad_norms" in m for m in r.metrics) and r.depth > deepest.get(r.family, (0,))[0]:
      deepest[r.family] = (r.depth, r)
  if deepest:
    out.append(
      plotting.gradient_flow(
        {net_label(r): r for _, (_, r) in sorted(deepest.items())},
        os.path.join(out_dir, "gradient_flow.png"),
        caption=caption,
      )
    )
  return out


def degradation(runs_dir: str, specs: list[registry.RunSpec]) -> list[str]:
  """The phenomena: at each depth whether the ResNet trains lower than its plain twin (mean over
  seeds), and whether the deepest plain net trains worse than the shallowest (the degradation)."""
  from cnn_depth.analysis import runs as runs_lib

  errors: dict[tuple[str, int], list[float]] = {}
  for wd in registry.workdirs(runs_dir, specs):
    run = runs_lib.load_run(wd)
    if run.last("train_error") is not None:
      errors.setdefault((run.family, run.depth), []).append(run.last("train_error"))
  mean = {k: sum(v) / len(v) for k, v in errors.items()}
  depths = sorted({d for _, d in mean})
  lines = []
  plain = [mean.get(("cifar_plain", d)) for d in depths]
  if len(depths) > 1 and None not in (plain[0], plain[-1]):
    shown = plain[-1] > plain[0]
    lines.append(
      f"degradation: plain-{depths[-1]} trains to {100 * plain[-1]:.2f}% against plain-"
      f"{depths[0]}'s {100 * plain[0]:.2f}%: {'shown' if shown else 'NOT shown'}"
    )
  for d in depths:
    p, r = mean.get(("cifar_plain", d)), mean.get(("cifar_resnet", d))
    if p is not None and r is not None:
      lines.append(
        f"depth {d}: ResNet train error {100 * r:.2f}%, plain {100 * p:.2f}%: the ResNet "
        f"{'trains lower' if r < p else 'does NOT train lower'}"
      )
  return lines


def analyse(o: registry.Options, runs_dir: str, out_dir: str) -> list[str]:
  caption = (
    QUICK_CAPTION.format(steps=o.steps) if o.quick else FULL_CAPTION
  ) + f"; {registry.when()}"
  out = figures(runs_dir, out_dir, caption=caption, ymax=60 if o.quick else 20)
  return out + degradation(runs_dir, grid(o))


QUICK = {"seeds": [0, 1, 2], "depths": [8, 20, 32, 44], "steps": 800}
FULL = {"seeds": [0], "depths": [20, 32, 44, 56, 110], "steps": 0}  # steps 0: the recipe's 64k

STUDY = registry.register(
  registry.Study(
    name="he2016",
    paper="He et al. 2016, Deep residual learning, §4.2 (Fig. 6, Table 6)",
    quick=QUICK,
    full=FULL,
    grid=grid,
    analyse=analyse,
  )
)
