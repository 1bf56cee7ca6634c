"""Depth transfer of the learning rate (Yang et al. 2023, "Tensor Programs VI: Feature learning in
infinite-depth neural networks"; Bordelon et al. 2023, "Depthwise hyperparameter transfer in
residual networks: dynamics and scaling limit", Fig. 1): an lr sweep of ResNets at several depths,
with each residual branch as He et al. add it (`standard`, branch 'identity') and times 1/sqrt(L)
(`depth_mup`, branch 'depth_mup', L the number of blocks). Under the 1/sqrt(L) scale the best lr
should stay put as depth grows (with SGD, Depth-muP puts no depth factor on the lr); without it,
it moves, and deep nets diverge at the larger rates.

The nets are the papers' as closely as cifar_resnet allows: no normalisation (`norm='none'`,
convolutions with biases). Yang et al. train "vanilla" resnets (no normalisation) and Bordelon et
al. plot the training loss of convolutional ResNets after 20 epochs on CIFAR-10 against the lr,
a diverged run a missing point. Without BN the branch scale is the only thing that holds the
residual stream's size (under He's init each block adds a branch about as large as its input, so
the signal grows exponentially with depth; times 1/sqrt(L) the growth over the whole net stays
bounded); BN would itself scale each branch down by about sqrt(depth) (De & Smith 2020) and blur
the comparison. `--set=norm=bn` runs the BN nets instead. Unlike Yang et
al.'s one-layer blocks ours have two convolutions per branch; the optimiser is the project's SGD
with momentum (Yang et al. use Adam, where Depth-muP scales the lr by 1/sqrt(L); with SGD it does
not, so the same lr grid serves every depth).

Quick mode: the embedded digits, ResNet-8/20/56 of width 8, 200 steps of He et al.'s recipe shrunk
(batch 128, lr /10 at 50% and 75%), 6 learning rates half a decade apart (1 down to 0.00316), 3
seeds: 108 runs. Measured on the 2-core CPU (under load), a run costs 12 / 18 / 28 CPU-s at depth
8 / 20 / 56 (~10 of them the start, compile and evaluation): ~2,100 CPU-s in all, ~17 min with
--parallel=2 (a diverged run stops early). Full mode: CIFAR-10, width 16, depths 8-110, 20 epochs
(7,820 steps: Bordelon et al.'s length), the same recipe and grid, no warm-up at any depth (one
recipe for all): 144 runs of ~1M images each.

  python scripts/reproduce.py --study=depth_transfer --quick --parallel=2
  python scripts/reproduce.py --study=depth_transfer --data_dir=/data/cifar --launcher=slurm \
      --partition=gpu --gpus_per_node=1 --wait     # or --parallel=N: one GPU each here

A diverged run's status is 'diverged', which the sweep counts as failed: the script exits 1 and a
second call trains those runs again (they diverge again, early); --train=false only redraws.

The measurement: each run's final training loss (the mean mini-batch loss since the last log, what
the step minimises), or 'diverged' where the loss went non-finite (status.json). A learning rate
is the best of a (variant, depth) when none of its seeds diverged, its mean loss over seeds is the
lowest, and it trained: a mean below TRAINED_FRACTION of the chance loss ln(classes) (a deep
standard net can sit at chance at every lr without diverging; the lowest of such losses is noise,
not an optimum). Where no lr qualifies the net has no best lr on the grid. Writes:

* final_loss.csv: variant, norm, depth, lr, lr_index, seed, status, diverged, train_loss (empty
  where diverged), train_eval_loss, chance_loss: one row a run;
* best_lr.csv: variant, depth, best_lr, lr_index, train_loss, train_loss_std, seeds, and the cells
  with a diverged seed; best_lr_by_seed.csv: the same per seed;
* lr_transfer.png/pdf: training loss against lr, one panel a variant, one curve a depth (mean ±
  std over seeds), the best lr starred, diverged cells crossed at the top (Bordelon et al. Fig. 1).

The phenomenon lines: per variant, the best lr at each depth and how far it moves from the
shallowest to the deepest depth in grid steps; then whether depth_mup's moves less than
standard's (no best lr at a depth counts as moving off the grid), on the mean and in each seed.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from cnn_depth import lazy_import
from cnn_depth import workdir as workdir_lib
from cnn_depth.studies import registry

data = lazy_import("cnn_depth.data")
models = lazy_import("cnn_depth.models")
plotting = lazy_import("cnn_depth.analysis.plotting")
results = lazy_import("cnn_depth.analysis.results")
runs_lib = lazy_import("cnn_depth.analysis.runs")

# variant -> the branch rule of models/branches.py that makes it
VARIANTS = {"standard": "identity", "depth_mup": "depth_mup"}
TITLES = {"standard": "standard: x + f(x)", "depth_mup": "depth-muP: x + f(x) / sqrt(L)"}
# A (variant, depth, lr) cell counts as trained when its mean final loss is below this fraction of
# the chance loss ln(classes) (0.9 ln 10 = 2.07 nats): a net stuck at chance has no best lr.
TRAINED_FRACTION = 0.9
NORMS = ("none", "bn")

QUICK = {
  "seeds": [0, 1, 2],
  "depths": [8, 20, 56],
  "steps": 200,
  "width": 8,
  "norm": "none",
  "lr_max": 1.0,
  "lr_count": 6,
  "lrs_per_decade": 2,
}
# steps: 20 epochs of CIFAR-10 at batch 128 (391 steps an epoch), Bordelon et al.'s Fig. 1
FULL = {**QUICK, "depths": [8, 20, 56, 110], "steps": 7820, "width": 16}


def learning_rates(o: registry.Options) -> list[float]:
  """The lr grid, ascending: `lr_count` rates `lrs_per_decade` to a decade, the largest `lr_max`,
  each rounded to 3 significant digits (so a run's name spells its rate exactly)."""
  if o.lr_count < 1 or o.lrs_per_decade < 1 or not o.lr_max > 0:
    raise registry.StudyError(
      f"the lr grid needs lr_count >= 1, lrs_per_decade >= 1 and lr_max > 0, got lr_count="
      f"{o.lr_count}, lrs_per_decade={o.lrs_per_decade}, lr_max={o.lr_max}: set them with --set"
    )
  return [
    float(f"{o.lr_max * 10 ** (-k / o.lrs_per_decade):.3g}") for k in reversed(range(o.lr_count))
  ]


def run_name(variant: str, lr: float, depth: int, seed: int) -> str:
  """'depth_mup_lr0.0316_d20_s1'."""
  return workdir_lib.run_name(f"{variant}_lr{lr:g}", depth, seed)


def plan(o: registry.Options) -> list[tuple[tuple[str, int, float, int], registry.RunSpec]]:
  """((variant, depth, lr, seed), its run) for every run, seed slowest (the first seed's grid
  completes first), then variant, depth and lr."""
  if o.norm not in NORMS:
    raise registry.StudyError(
      f"option norm must be 'none' (the papers' nets, no normalisation) or 'bn', got {o.norm!r}"
    )
  for depth in o.depths:  # the family's own rule (6n+2), before any run starts
    try:
      models.build_model({"family": "cifar_resnet", "depth": depth})
    except ValueError as e:
      raise registry.StudyError(f"option depths: {e}") from None
  lrs, out = learning_rates(o), []
  for seed in o.seeds:
    for variant, branch in VARIANTS.items():
      for depth in o.depths:
        for lr in lrs:
          model = (f"--config.model.width={o.width}", f"--config.model.norm={o.norm}",
                   f"--config.model.branch={branch}", f"--config.learning_rate={lr!r}")  # fmt: skip
          if o.quick:  # evaluated once, at the end: the loss is what the study reads
            config = f"configs/quickstart.py:depth={depth},steps={o.steps},seed={seed}"
            more = (f"--config.eval_every_steps={o.steps}",)
          else:  # no warm-up at 110 layers either: one recipe for every depth
            config = f"configs/cifar_resnet.py:depth={depth},residual=true,seed={seed}"
            more = (f"--config.dataset.data_dir={o.data_dir}",
                    f"--config.num_train_steps={o.steps}", "--config.warmup=0.0")  # fmt: skip
          name = run_name(variant, lr, depth, seed)
          out.append(((variant, depth, lr, seed), registry.RunSpec(name, config, model + more)))
  return out


def grid(o: registry.Options) -> list[registry.RunSpec]:
  return [spec for _, spec in plan(o)]


# --------------------------------------------------------------------------------------------------
# The measurement: workdirs -> final_loss.csv rows


def final_loss_rows(o: registry.Options, runs_dir: str) -> tuple[list[dict], list[str]]:
  """One row per finished run (status done or diverged), and the names of the runs not finished
  (missing, running, failed)."""
  lrs = learning_rates(o)
  rows, unfinished = [], []
  for (variant, depth, lr, seed), spec in plan(o):
    workdir = os.path.join(runs_dir, spec.name)
    status = os.path.isdir(workdir) and (workdir_lib.read_status(workdir) or {}).get("status")
    if status not in ("done", "diverged"):
      unfinished.append(spec.name)
      continue
    run = runs_lib.load_run(workdir)
    loss = run.last("train_loss")
    diverged = status == "diverged" or loss is None or not math.isfinite(loss)
    eval_loss = run.last("train_eval_loss")
    classes = data.get(run.config["dataset"]["name"]).num_classes
    rows.append({
      "variant": variant, "norm": o.norm, "depth": depth, "lr": lr, "lr_index": lrs.index(lr),
      "seed": seed, "status": status, "diverged": int(diverged),
      "train_loss": "" if diverged else loss,
      "train_eval_loss": "" if diverged or eval_loss is None else eval_loss,
      "chance_loss": math.log(classes),
    })  # fmt: skip
  return rows, unfinished


# --------------------------------------------------------------------------------------------------
# The best lr and how far it moves (on final_loss.csv's rows, read back or made by hand)


def _number(value) -> float | None:
  return None if value in ("", None) else float(value)


def cells(rows: Sequence[dict]) -> dict[tuple[str, int, float], dict[int, float | None]]:
  """{(variant, depth, lr): {seed: final loss, None where it diverged}}."""
  out: dict[tuple[str, int, float], dict[int, float | None]] = {}
  for r in rows:
    loss = None if int(r["diverged"]) else _number(r["train_loss"])
    out.setdefault((r["variant"], int(r["depth"]), float(r["lr"])), {})[int(r["seed"])] = loss
  return out


def best_lr(
  losses: dict[float, Sequence[float | None]], chance_loss: float
) -> tuple[float | None, float | None, float | None]:
  """(best lr, its mean loss, std over seeds) among {lr: the seeds' losses (None: diverged)}: the
  lowest mean of the cells where no seed diverged and the mean is below TRAINED_FRACTION of
  `chance_loss`; (None, None, None) where no cell qualifies."""
  usable = {
    lr: v for lr, v in losses.items() if v and all(x is not None for x in v)
    and float(np.mean(v)) < TRAINED_FRACTION * chance_loss
  }  # fmt: skip
  if not usable:
    return None, None, None
  lr = min(usable, key=lambda k: (float(np.mean(usable[k])), k))
  return lr, float(np.mean(usable[lr])), float(np.std(usable[lr]))


def best_lrs(rows: Sequence[dict], seed: int | None = None) -> list[dict]:
  """best_lr.csv's rows: per (variant, depth) the best lr over the mean of every seed (or of
  `seed` alone), its grid index, loss and std, the seeds, and the lrs with a diverged seed."""
  lrs = sorted({float(r["lr"]) for r in rows})
  chance = max((float(r["chance_loss"]) for r in rows), default=math.log(10))
  table = cells([r for r in rows if seed is None or int(r["seed"]) == seed])
  out = []
  for variant in dict.fromkeys(r["variant"] for r in rows):
    for depth in sorted({int(r["depth"]) for r in rows if r["variant"] == variant}):
      mine = {lr: list(s.values()) for (v, d, lr), s in table.items() if (v, d) == (variant, depth)}
      if not mine:
        continue
      lr, loss, std = best_lr(mine, chance)
      seeds = sorted({s for (v, d, _), c in table.items() if (v, d) == (variant, depth) for s in c})
      out.append({
        "variant": variant, "depth": depth, **({} if seed is None else {"seed": seed}),
        "best_lr": "" if lr is None else lr, "lr_index": "" if lr is None else lrs.index(lr),
        "train_loss": "" if loss is None else loss,
        **({"train_loss_std": "" if std is None else std, "seeds": " ".join(map(str, seeds))}
           if seed is None else {}),
        "diverged_lrs": " ".join(f"{k:g}" for k, v in sorted(mine.items()) if None in v),
      })  # fmt: skip
  return out


def moves(best: Sequence[dict]) -> dict[str, int | None]:
  """{variant: grid steps its best lr moves from the shallowest depth to the deepest (+ up, -
  down); None where a depth has no best lr (it moves off the grid)}."""
  out = {}
  for variant in dict.fromkeys(r["variant"] for r in best):
    mine = sorted((r for r in best if r["variant"] == variant), key=lambda r: r["depth"])
    ends = (mine[0]["lr_index"], mine[-1]["lr_index"])
    out[variant] = None if "" in ends else int(ends[1]) - int(ends[0])
  return out


def moves_less(move: dict[str, int | None], fixed: str = "depth_mup", other: str = "standard"):
  """Whether `fixed`'s best lr moves fewer grid steps than `other`'s: a finite move is less than
  one off the grid; none where `fixed` has no best lr at a depth, or either variant is absent."""
  if fixed not in move or other not in move or move[fixed] is None:
    return False
  return move[other] is None or abs(move[fixed]) < abs(move[other])


def _steps(move: int | None) -> str:
  return "off the grid (a depth has no best lr)" if move is None else f"{move:+d} grid steps"


def transfer_lines(rows: Sequence[dict], factor: float) -> list[str]:
  """The phenomenon lines: per variant the best lr at each depth and its move (grid steps of
  `factor`), then whether depth_mup's moves less than standard's, on the seeds' mean and in each
  seed."""
  best, lines = best_lrs(rows), []
  move, edges = moves(best), (0, len({float(r["lr"]) for r in rows}) - 1)
  for variant in move:
    mine = [r for r in best if r["variant"] == variant]
    at = ", ".join(
      ("none" if r["best_lr"] == "" else f"{r['best_lr']:g}") + f" at depth {r['depth']}"
      + (" (grid edge)" if r["lr_index"] in edges else "")
      for r in mine
    )  # fmt: skip
    diverged = "; ".join(f"depth {r['depth']}: lr {r['diverged_lrs']}" for r in mine
                         if r["diverged_lrs"])  # fmt: skip
    lines.append(
      f"{variant}: best lr {at}; it moves {_steps(move[variant])} (x{factor:.3g} each) from depth "
      f"{mine[0]['depth']} to {mine[-1]['depth']}"
      + (f"; a seed diverged at {diverged}" if diverged else "; no run diverged")
    )
  seeds = sorted({int(r["seed"]) for r in rows})
  held = [s for s in seeds if moves_less(moves(best_lrs(rows, seed=s)))]
  shown = moves_less(move)
  says = lambda v: _steps(move[v]) if v in move else "nowhere (no finished run)"
  lines.append(
    f"depth transfer: depth_mup's best lr moves {says('depth_mup')}, standard's "
    f"{says('standard')}; depth_mup moves less: {'shown' if shown else 'NOT shown'} "
    f"(on the mean of seeds {','.join(map(str, seeds))}; in each seed alone it holds in "
    f"{'seeds ' + ','.join(map(str, held)) if held else 'none'})"
  )
  return lines


# --------------------------------------------------------------------------------------------------
# The figure, drawn from final_loss.csv


def _leading_2_or_5(value: float, _=None) -> str:
  """A log axis's minor label: 2, 5, 0.2, 0.05 ... labelled, the others not (they crowd)."""
  digit = round(value / 10 ** math.floor(math.log10(value) + 1e-9)) if value > 0 else 0
  return f"{value:.3g}" if digit in (2, 5) else ""


def lr_transfer(csv_path: str, path: str, caption: str | None = None) -> str:
  """Bordelon et al. 2023, Fig. 1 style: the final training loss against the learning rate, one
  panel a variant, one colour a depth (mean ± std over seeds through the cells where no seed
  diverged), the best lr of each depth starred, a cell with a diverged seed crossed at the top
  with how many seeds diverged, chance (ln classes) dashed."""
  rows = plotting.read_rows(csv_path)
  table, best = cells(rows), best_lrs(rows)
  variants = list(dict.fromkeys(r["variant"] for r in rows))
  depths = sorted({int(r["depth"]) for r in rows})
  lrs = sorted({float(r["lr"]) for r in rows})
  colors = {d: c for d, c in zip(depths, plotting.COLORS)}
  fig, axes = plotting.plt.subplots(
    1, len(variants), figsize=(5.2 * len(variants), 4.0), sharey=True, squeeze=False
  )
  for ax, variant in zip(axes[0], variants):
    for i, depth in enumerate(depths):
      seeds = [table.get((variant, depth, lr), {}) for lr in lrs]
      ok = [bool(s) and None not in s.values() for s in seeds]
      mean = np.array([np.mean(list(s.values())) if k else np.nan for s, k in zip(seeds, ok)])
      std = np.array([np.std(list(s.values())) if k else np.nan for s, k in zip(seeds, ok)])
      n = max((len(s) for s in seeds), default=0)
      plotting.band(ax, np.array(lrs), mean, std, n, f"ResNet-{depth}", color=colors[depth],
                    marker="o", markersize=3)  # fmt: skip
      for lr, s in zip(lrs, seeds):
        down = sum(v is None for v in s.values())
        if down:  # one row a depth, at the top of the panel
          y = 0.97 - 0.045 * i
          ax.plot([lr], [y], "x", color=colors[depth], transform=ax.get_xaxis_transform())
          ax.annotate(f" {down}/{len(s)}", (lr, y), xycoords=ax.get_xaxis_transform(),
                      fontsize=6, ha="left", va="center", color=colors[depth])  # fmt: skip
      for r in best:
        if (r["variant"], r["depth"]) == (variant, depth) and r["best_lr"] != "":
          ax.plot([r["best_lr"]], [r["train_loss"]], "*", color=colors[depth], markersize=13,
                  markeredgecolor="black", zorder=5)  # fmt: skip
    chance = float(rows[0]["chance_loss"])
    ax.axhline(chance, color="grey", linestyle="--", linewidth=0.8, label="chance (ln classes)")
    ax.axhline(TRAINED_FRACTION * chance, color="grey", linestyle=":", linewidth=0.8,
               label=f"{TRAINED_FRACTION:g} x chance: trained below")  # fmt: skip
    ax.set(xscale="log", yscale="log", xlabel="learning rate", title=TITLES.get(variant, variant))
    ax.yaxis.set_major_formatter(plotting.matplotlib.ticker.FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(_leading_2_or_5)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, frameon=False, loc="lower left")
  low, high = axes[0][0].get_ylim()
  axes[0][0].set_ylim(low, high * 3.0)  # headroom: the diverged cells' row above the curves
  axes[0][0].set_ylabel("final training loss")
  return plotting.finish(fig, path, caption)


# --------------------------------------------------------------------------------------------------


def caption(o: registry.Options) -> str:
  lrs = learning_rates(o)
  setup = (
    f"embedded digits (1,500 train, 8x8), {o.steps} steps" if o.quick
    else f"CIFAR-10, {o.steps} steps ({o.steps / 391:.0f} epochs)"
  )  # fmt: skip
  return (
    f"{setup}; cifar_resnet width {o.width}, norm={o.norm}; batch 128, SGD momentum 0.9, weight "
    f"decay 1e-4, lr /10 at 50% and 75%; lrs {lrs[0]:g}-{lrs[-1]:g} (x{lrs[-1] / lrs[0]:.3g}); "
    f"final training loss = mean mini-batch loss since the last log; star: best lr (no seed "
    f"diverged, mean below {TRAINED_FRACTION} x chance); x: diverged seeds; "
    f"{registry.seeds_note(o.seeds)}; {registry.when()}"
  )


def analyse(o: registry.Options, runs_dir: str, out_dir: str) -> list[str]:
  rows, unfinished = final_loss_rows(o, runs_dir)
  if not rows:
    raise ValueError(f"no finished run of the depth_transfer grid under {runs_dir}: train it first")
  csv_path = os.path.join(out_dir, "final_loss.csv")
  results.write_rows(csv_path, rows)
  rows = plotting.read_rows(csv_path)
  results.write_rows(os.path.join(out_dir, "best_lr.csv"), best_lrs(rows))
  by_seed = [r for s in sorted({r["seed"] for r in rows}) for r in best_lrs(rows, seed=s)]
  results.write_rows(os.path.join(out_dir, "best_lr_by_seed.csv"), by_seed)
  out = [lr_transfer(csv_path, os.path.join(out_dir, "lr_transfer.png"), caption(o))]
  if unfinished:
    out.append(f"not finished, left out ({len(unfinished)} runs): {', '.join(unfinished[:6])}"
               + (" ..." if len(unfinished) > 6 else ""))  # fmt: skip
  return out + transfer_lines(rows, 10 ** (1 / o.lrs_per_decade))


STUDY = registry.register(
  registry.Study(
    name="depth_transfer",
    paper="Yang et al. 2023, Tensor Programs VI; Bordelon et al. 2023 (Fig. 1): lr transfer "
    "across depth with the 1/sqrt(L) branch scale",
    quick=QUICK,
    full=FULL,
    grid=grid,
    analyse=analyse,
  )
)
