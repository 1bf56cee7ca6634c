"""Huang et al. 2016, "Deep networks with stochastic depth", Fig. 3: test error and training loss
over training, constant depth vs stochastic depth (linear decay to p_L = 0.5).

Quick mode: the embedded digits, ResNet-32 (width 16), 5 seeds, 800 steps. Full mode: CIFAR-10,
ResNet-110, 500 epochs, Nesterov, lr /10 at 250 and 375 (configs/stochastic_depth.py).
Writes curves.png/pdf and curves.csv (variant, epoch, test_error, test_error_std, seeds).
"""

from __future__ import annotations

import glob
import os

from cnn_depth import lazy_import
from cnn_depth.studies import registry

plotting = lazy_import("cnn_depth.analysis.plotting")

VARIANTS = (("constant depth", "1.0"), ("stochastic depth (p_L=0.5)", "0.5"))


def run_name(quick: bool, survival_last: str, seed: int) -> str:
  return f"{'quick' if quick else 'r110'}_pL{survival_last}_s{seed}"


def grid(o: registry.Options) -> list[registry.RunSpec]:
  specs = []
  for seed in o.seeds:
    for _, p in VARIANTS:
      if o.quick:
        config = f"configs/quickstart.py:depth=32,residual=true,steps={o.steps},seed={seed}"
        overrides = (f"--config.model.survival_last={p}",)
      else:
        config = f"configs/stochastic_depth.py:survival_last={p},seed={seed}"
        overrides = (f"--config.dataset.data_dir={o.data_dir}",)
        overrides += (f"--config.num_train_steps={o.steps}",) if o.steps else ()
      specs.append(registry.RunSpec(run_name(o.quick, p, seed), config, overrides))
  return specs


def curves(variants: dict[str, list[str]], out_dir: str, caption: str | None = None) -> list[str]:
  """Fig. 3 from workdirs: {label: the variant's workdirs (its seeds), each a path or a glob
  pattern}. Writes curves.png/pdf and curves.csv; returns the figure's path and a line per variant
  (final test error and training loss per seed). ValueError where a pattern matches nothing or a
  run has logged nothing yet."""
  from cnn_depth.analysis import runs as runs_lib

  runs = {}
  for label, patterns in variants.items():
    paths = []
    for pattern in patterns:
      found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
      if not found:
        raise ValueError(f"no workdir matches {pattern}")
      paths += found
    runs[label] = [runs_lib.load_run(path) for path in paths]
  steps_per_epoch = next(iter(runs.values()))[0].steps_per_epoch
  if steps_per_epoch is None:
    raise ValueError(f"{next(iter(runs.values()))[0].workdir} has logged no step yet")
  out = [stochastic_depth_curves(runs, os.path.join(out_dir, "curves.png"), steps_per_epoch,
                                 caption=caption)]  # fmt: skip
  write_curves_csv(runs, os.path.join(out_dir, "curves.csv"), steps_per_epoch)
  for label, group in runs.items():
    errors = [100 * run.last("test_error") for run in group]
    losses = [run.last("train_loss") for run in group]
    out.append(
      f"{label}: final test error {', '.join(f'{e:.2f}' for e in errors)}% "
      f"(mean {sum(errors) / len(errors):.2f}%), final training loss "
      f"{', '.join(f'{v:.4f}' for v in losses)} ({len(group)} seeds)"
    )
  return out + ([regularisation_shown(runs)] if len(runs) > 1 else [])


def regularisation_shown(runs: dict) -> str:
  """The phenomenon (Fig. 3): the last variant (stochastic depth) ends with a lower mean test error
  and a higher mean training loss than the first (constant depth)."""
  mean = lambda group, key: sum(run.last(key) for run in group) / len(group)
  (_, constant), *_, (_, stochastic) = runs.items()
  lower = mean(stochastic, "test_error") < mean(constant, "test_error")
  higher = mean(stochastic, "train_loss") > mean(constant, "train_loss")
  shown = "shown" if lower and higher else "NOT shown"
  return f"stochastic depth: lower test error {lower}, higher training loss {higher}: {shown}"


def analyse(o: registry.Options, runs_dir: str, out_dir: str) -> list[str]:
  if o.quick:
    recipe = (
      f"embedded digits, ResNet-32 (width 16), batch 128, {o.steps} steps, lr /10 at 50% and 75%"
    )
  else:
    recipe = "CIFAR-10, ResNet-110, 500 epochs, Nesterov, lr /10 at 250 and 375"
  variants = {
    label: [os.path.join(runs_dir, run_name(o.quick, p, s)) for s in o.seeds]
    for label, p in VARIANTS
  }
  return curves(variants, out_dir, f"{recipe}; {registry.when()}")


def stochastic_depth_curves(
  runs: dict[str, plotting.Group],
  path: str,
  steps_per_epoch: int | None = None,
  caption: str | None = None,
) -> str:
  """Huang et al. 2016, Fig. 3: test error (bold) and training loss (dashed, right axis) over
  training, constant depth vs stochastic depth, each variant's seeds as mean ± std. The x axis is
  in epochs when `steps_per_epoch` is given."""
  fig, ax = plotting.plt.subplots(figsize=(6.4, 4.0))
  loss_ax = ax.twinx()
  for color, (label, run) in zip(plotting.COLORS, runs.items()):
    scale = 1.0 / steps_per_epoch if steps_per_epoch else 1.0
    plotting.curve(
      ax,
      run,
      "test_error",
      scale,
      100,
      f"{label} (test error)",
      **plotting.line_style("-", color, 2.2),
    )
    plotting.curve(
      loss_ax,
      run,
      "train_loss",
      scale,
      1,
      f"{label} (training loss)",
      **plotting.line_style("--", color, 1.0),
    )
  ax.set_xlabel("epoch" if steps_per_epoch else "iteration")
  ax.set_ylabel("test error (%)")
  loss_ax.set_ylabel("training loss")
  ax.grid(alpha=0.3)
  lines = ax.get_legend_handles_labels()
  more = loss_ax.get_legend_handles_labels()
  ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, frameon=False)
  if caption:
    fig.text(0.5, -0.04, caption, ha="center", fontsize=8, wrap=True)
  fig.tight_layout()
  return plotting.save(fig, path)


def write_curves_csv(runs: dict[str, plotting.Group], path: str, steps_per_epoch: int) -> None:
  """`variant,epoch,test_error,test_error_std,seeds` rows: each variant's test error at every
  evaluation, mean and std over its seeds (the Huang et al. reproduction's machine-readable
  output)."""
  rows = []
  for label, group in runs.items():
    steps, mean, std = plotting.results.mean_curve(group, "test_error")
    seeds = len(plotting.results.as_group(group))
    rows += [
      {
        "variant": label,
        "epoch": float(s) / steps_per_epoch,
        "test_error": float(m),
        "test_error_std": float(d),
        "seeds": seeds,
      }
      for s, m, d in zip(steps, mean, std)
    ]
  plotting.results.write_rows(path, rows)


STUDY = registry.register(
  registry.Study(
    name="huang2016",
    paper="Huang et al. 2016, Deep networks with stochastic depth (Fig. 3)",
    quick={"seeds": [0, 1, 2, 3, 4], "steps": 800},
    full={"seeds": [0], "steps": 0},  # steps 0: the recipe's 500 epochs
    grid=grid,
    analyse=analyse,
  )
)
