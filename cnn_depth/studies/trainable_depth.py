"""Trainable depth, every fix (#25, study 1; the project's headline figure): the final training
error and loss against depth for plain nets and ResNets with and without BN and for each fix for
depth, all trained by ONE recipe, and the first-epoch accuracy against depth (Zhang, Dauphin & Ma
2019, Fig. 3, plot the test accuracy after the first epoch; here, as #25 asks, the training-mode
accuracy over the first epoch's mini-batches, read from the log, which is written every epoch).

The ten variants (`VARIANTS`; study fixes_why measures these runs by the same names): He et al.'s
plain net and ResNet with BN (He et al. 2016, Fig. 6: the plain net degrades, the ResNet does not),
both without BN at He et al.'s initialisation (they fail at depth), and six fixes, each taken from
`models.fixes.PRESETS` with the optimiser part of the fix (Fixup's lr/10 on its scalars, NF's AGC)
but never a preset's own learning rate: Fixup (Zhang et al. 2019), SkipInit (De & Smith 2020),
NF-ResNet + AGC (Brock et al. 2021), the vanilla tanh net with delta-orthogonal kernels at the
critical sigma_w^2 of its sigma_b^2 (Xiao et al. 2018; the critical point from
`models.meanfield`), and plain nets shaped by TAT (Zhang, Botev & Martens 2022) and DKS (Martens
et al. 2021). TAT's C(0) = 0.9 cannot be met by plain-8 (too shallow to be that nonlinear), so
depths below the preset's smallest (14) are skipped for it.

One recipe: He et al.'s SGD (momentum 0.9, weight decay 1e-4, batch 128, lr `lr` /10 at 50% and
75% of the run) at one learning rate for every variant. A run whose loss turns non-finite is
stopped by the training loop at the next log (status 'diverged'; not retuned, and a relaunch
diverges again): the CSVs say diverged, its errors are left empty, and the figure marks it with an
x above its depth.

Quick mode: the embedded digits, width 8, depths 8, 20 and 56, 660 steps (60 epochs), 3 seeds:
87 runs, ~30-35 min on an idle 2-core CPU with --parallel=2 (measured: see QUICK; the 5,000 MNIST
digits of 'mnist5k' cost 16 times as much a step at 32x32, so the digits it is):
  python scripts/reproduce.py --study=trainable_depth --quick --parallel=2
Full mode: CIFAR-10 from --data_dir, He et al.'s 64k iterations (configs/cifar_resnet.py, 400
warm-up steps at lr 0.01 from depth 110), width 16, depths 20, 56, 110, 218 and 1202, 3 seeds (150
runs; ~120-150 GPU-hours on H100-class GPUs in float32, four fifths of it the 1202-layer nets, from
benchmarks/NOTES.md's 13k images/s for ResNet-110 and 1k for ResNet-1202 in bfloat16):
  python scripts/reproduce.py --study=trainable_depth --data_dir=/data/cifar --launcher=slurm \
      --partition=gpu --gpus_per_node=1 --wait

Outputs: trainable_depth.csv (one row a run, a seed column), trainable_depth_summary.csv (mean and
std over the finished seeds of each variant and depth, the diverged count, and whether it trains),
trainable_depth.png/pdf, and one line per phenomenon.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from cnn_depth import workdir as workdir_lib
from cnn_depth.studies import registry

BATCH = 128  # He et al.'s, configs/quickstart.py's and configs/cifar_resnet.py's
CIFAR_TRAIN = 50_000  # CIFAR-10's training images (the full mode's steps per epoch: 390)
# A net "trains" when no seed diverged and its mean final training error is at most this many
# points above ResNet + BN's at the same depth (fixed before any run was drawn; 5 points are ~75
# digits of the 1,500, far above the seeds' spread at depths where the nets train).
TRAINS_MARGIN = 0.05


@dataclasses.dataclass(frozen=True)
class Variant:
  """A net and the fix it carries: `model` are config.model fields (the family, not the depth),
  `train` the optimiser's part of the fix (top-level config fields), `min_depth` the smallest depth
  the fix is defined at."""

  label: str
  model: Mapping[str, Any]
  train: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  min_depth: int = 8

  def overrides(self) -> tuple[str, ...]:
    """The `--config.` overrides that make a CIFAR config this variant."""
    model = tuple(f"--config.model.{k}={v}" for k, v in self.model.items())
    return model + tuple(f"--config.{k}={v}" for k, v in self.train.items())


def from_preset(name: str, label: str, **changes) -> Variant:
  """A fix of models/fixes.py: its model fields less the depth, with `changes`; its optimiser's
  fixes, never its learning rate (one recipe); its depth as the smallest depth."""
  from cnn_depth.models import fixes

  preset = fixes.get(name)
  model = {k: v for k, v in preset.model.items() if k != "depth"}
  return Variant(label, {**model, **changes}, preset.optimizer_fixes(), int(preset.model["depth"]))


def _dks_plain() -> Variant:
  """DKS on a plain net: the shaping fields of the DKS preset (softplus, SUO kernels at
  sigma_w^2 = 1, no BN) without its residual branches; DKS is defined at plain-8."""
  from cnn_depth.models import fixes

  dks = fixes.get("dks_normalized").model
  shaping = {k: dks[k] for k in ("norm", "init", "sigma_w2", "activation", "transform")}
  return Variant("plain + DKS (softplus)", {"family": "cifar_plain", **shaping})


@functools.cache
def variants() -> dict[str, Variant]:
  """The ten variants by name (also the module's `VARIANTS`), built on first use: they read
  models/fixes.py and solve tanh's critical point (JAX and SciPy), which importing the studies
  (reproduce.py --list, a refusal) should not pay for."""
  from cnn_depth.models import fixes, meanfield

  sigma_b2 = fixes.get("vanilla_tanh").model["sigma_b2"]  # 0.05
  # chi_1 = 1 at this sigma_b2 (1.761); the preset's 1.2 lies in the ordered phase.
  sigma_w2 = meanfield.critical_sigma_w2("tanh", sigma_b2)
  return {
    "plain_bn": Variant("plain + BN", {"family": "cifar_plain"}),
    "resnet_bn": Variant("ResNet + BN", {"family": "cifar_resnet"}),
    "plain_nobn": Variant("plain, no BN", {"family": "cifar_plain", "norm": "none"}),
    "resnet_nobn": Variant("ResNet, no BN", {"family": "cifar_resnet", "norm": "none"}),
    "fixup": from_preset("fixup", "ResNet + Fixup"),
    "skipinit": from_preset("skipinit", "ResNet + SkipInit"),
    "nf_agc": from_preset("nf", "NF-ResNet + AGC"),
    "tanh_delta_orth": from_preset(
      "vanilla_tanh", "plain tanh, delta-orth., critical", sigma_w2=sigma_w2
    ),
    "tat_plain": from_preset("tat", "plain + TAT (leaky ReLU)"),
    "dks_plain": _dks_plain(),
  }


def __getattr__(name: str):
  """`trainable_depth.VARIANTS` (PEP 562): `variants()`, built when first asked for."""
  if name == "VARIANTS":
    return variants()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The variants that are fixes for depth: each one's deepest net is asked whether it trains.
FIXES = ("fixup", "skipinit", "nf_agc", "tanh_delta_orth", "tat_plain", "dks_plain")


# --------------------------------------------------------------------------------------------------
# The grid


def variant_names(text: str) -> list[str]:
  """'all' or comma-separated names of variants(), in VARIANTS' order; StudyError for another."""
  if text == "all":
    return list(variants())
  names = [n.strip() for n in text.split(",") if n.strip()]
  unknown = [n for n in names if n not in variants()]
  if unknown or not names:
    raise registry.StudyError(
      f"option variants must be 'all' or names of {', '.join(variants())}; got {text!r}"
    )
  return [n for n in variants() if n in names]


def check_depths(depths: Sequence[int]) -> None:
  """Every CIFAR net here is 6n+2 layers deep (three stages of n basic blocks)."""
  bad = [d for d in depths if d < 8 or (d - 2) % 6]
  if bad:
    raise registry.StudyError(
      f"option depths must be 6n+2 and at least 8 (8, 20, 56, 110, ...); got {bad}"
    )


def epoch_steps(o: registry.Options) -> int:
  """Steps of one epoch: the log interval, so that the first logged training error is the first
  epoch's (the quick mode's dataset is read for its size, a few ms)."""
  if not o.quick:
    return CIFAR_TRAIN // BATCH
  from cnn_depth import data

  try:
    return len(data.load_dataset(o.dataset).train_labels) // BATCH
  except (data.DataError, ValueError) as e:
    raise registry.StudyError(f"option dataset: {e}") from None


def recipe_overrides(o: registry.Options, epoch: int) -> tuple[str, ...]:
  """The one recipe's fields every run shares: data, width, learning rate, a log every epoch and
  (quick) an evaluation at the end only."""
  out = [
    f"--config.dataset.name={o.dataset}",
    f"--config.model.width={o.width}",
    f"--config.learning_rate={o.lr}",
    f"--config.log_every_steps={epoch}",
  ]
  if o.quick:
    out.append(f"--config.eval_every_steps={o.steps}")
  else:
    out.append(f"--config.dataset.data_dir={o.data_dir}")
    out += [f"--config.num_train_steps={o.steps}"] if o.steps else []
  return tuple(out)


def grid(o: registry.Options) -> list[registry.RunSpec]:
  """Seed slowest, then variant (VARIANTS' order), then depth; a variant's depths below its
  smallest are left out (TAT at 8)."""
  check_depths(o.depths)
  names, common = variant_names(o.variants), recipe_overrides(o, epoch_steps(o))
  specs = []
  for seed in o.seeds:
    for name in names:
      variant = variants()[name]
      for depth in o.depths:
        if depth < variant.min_depth:
          continue
        config = (
          f"configs/quickstart.py:depth={depth},seed={seed},steps={o.steps}" if o.quick
          else f"configs/cifar_resnet.py:depth={depth},seed={seed}"
        )  # fmt: skip
        specs.append(
          registry.RunSpec(
            workdir_lib.run_name(name, depth, seed), config, variant.overrides() + common
          )
        )
  return specs


def skipped(o: registry.Options) -> list[str]:
  """'tat_plain at depth 8' for each cell the grid leaves out."""
  return [
    f"{name} at depth {d}"
    for name in variant_names(o.variants)
    for d in o.depths
    if d < variants()[name].min_depth
  ]


# --------------------------------------------------------------------------------------------------
# Measurement: one row a run


def first_epoch_accuracy(run) -> float:
  """1 - the training error logged at epoch 1 (the mean over the first epoch's mini-batches, in
  training mode); NaN where no record is at epoch 1 (diverged before, or logged otherwise)."""
  for record in run.metrics:
    if "train_error" in record and abs(record.get("epoch", 0) - 1.0) < 1e-9:
      return 1.0 - record["train_error"]
  return math.nan


def measure(run, variant: str, seed: int) -> dict:
  """One CSV row: the last logged training error and loss (training mode, the last epoch's
  mini-batches, as He et al. plot them), the first epoch's accuracy, the final test error and the
  whole training set's error in inference mode; errors empty unless the run finished."""
  status = (run.status or {}).get("status") or "unfinished"
  done = status == "done"
  last = lambda key: run.last(key) if done and run.last(key) is not None else math.nan
  return {
    "variant": variant,
    "depth": run.depth,
    "seed": seed,
    "status": status,
    "diverged": status == "diverged",
    "diverged_step": (run.status or {}).get("step", "") if status == "diverged" else "",
    "final_train_error": last("train_error"),
    "final_train_loss": last("train_loss"),
    "first_epoch_train_accuracy": first_epoch_accuracy(run),
    "test_error": last("test_error"),
    "train_eval_error": last("train_eval_error"),
  }


def measure_runs(o: registry.Options, runs_dir: str) -> tuple[list[dict], int]:
  """The rows of every run of the grid that has a workdir under `runs_dir`, and how many have
  none. ValueError where none has one."""
  from cnn_depth.analysis import runs as runs_lib

  rows, missing = [], 0
  for spec in grid(o):
    workdir = os.path.join(runs_dir, spec.name)
    if workdir_lib.read_config(workdir) is None:
      missing += 1
      continue
    variant, _, seed = spec.name.rpartition("_s")
    rows.append(measure(runs_lib.load_run(workdir), variant.rpartition("_d")[0], int(seed)))
  if not rows:
    raise ValueError(f"no workdir of the trainable_depth grid under {runs_dir}: train it first")
  return rows, missing


# --------------------------------------------------------------------------------------------------
# Summary: mean and std over seeds, and whether each net trains

KEYS = ("final_train_error", "final_train_loss", "first_epoch_train_accuracy", "test_error")


def summarize(rows: Sequence[dict]) -> list[dict]:
  """One row per (variant, depth), in VARIANTS' order then depth: runs, finished and diverged
  counts, mean and std (population, over the seeds with a value) of each of KEYS, and `trains`
  (see `trains`; empty where ResNet + BN has no finished run at that depth)."""
  cells: dict[tuple[str, int], list[dict]] = {}
  for r in rows:
    cells.setdefault((r["variant"], int(r["depth"])), []).append(r)
  order = list(variants())
  out = []
  for (variant, depth), group in sorted(
    cells.items(), key=lambda kv: (order.index(kv[0][0]) if kv[0][0] in order else 99, kv[0])
  ):
    row = {
      "variant": variant,
      "depth": depth,
      "runs": len(group),
      "finished": sum(r["status"] == "done" for r in group),
      "diverged": sum(_true(r["diverged"]) for r in group),
    }
    for key in KEYS:
      values = np.asarray([float(r[key]) for r in group], dtype=np.float64)
      values = values[np.isfinite(values)]
      row[key] = float(values.mean()) if len(values) else math.nan
      row[f"{key}_std"] = float(values.std()) if len(values) else math.nan
    out.append(row)
  reference = {r["depth"]: r for r in out if r["variant"] == "resnet_bn" and r["finished"]}
  for row in out:
    ref = reference.get(row["depth"])
    row["trains"] = "" if ref is None else trains(row, ref["final_train_error"])
  return out


def _true(value) -> bool:
  return value is True or str(value).lower() == "true"


def trains(row: dict, reference_error: float) -> bool:
  """A net trains when every run of it finished (none diverged) and its mean final training error
  is at most TRAINS_MARGIN above `reference_error` (ResNet + BN's at the same depth)."""
  return (
    row["finished"] == row["runs"] > 0
    and not row["diverged"]
    and row["final_train_error"] <= reference_error + TRAINS_MARGIN
  )


# --------------------------------------------------------------------------------------------------
# The phenomena


def _cell(summary: Sequence[dict], variant: str, depth: int) -> dict | None:
  return next((r for r in summary if r["variant"] == variant and r["depth"] == depth), None)


def _pct(row: dict) -> str:
  return f"{100 * row['final_train_error']:.1f}%"


def _state(row: dict) -> str:
  """'3.2% (2 of 3 seeds diverged)' or '3.2%' or 'diverged in 3 of 3 seeds'."""
  if not row["finished"]:
    return f"diverged in {row['diverged']} of {row['runs']} seeds" if row["diverged"] else "no run"
  tail = f" ({row['diverged']} of {row['runs']} seeds diverged)" if row["diverged"] else ""
  return _pct(row) + tail


def degradation_lines(summary: Sequence[dict]) -> list[str]:
  """plain + BN degrades: at its deepest depth a seed diverged or its mean final training error is
  more than TRAINS_MARGIN above its shallowest depth's; ResNet + BN does not: no seed diverged and
  its deepest is at most TRAINS_MARGIN above its shallowest (means over the finished seeds)."""
  lines = []
  for variant, want in (("plain_bn", True), ("resnet_bn", False)):
    rows = sorted((r for r in summary if r["variant"] == variant), key=lambda r: r["depth"])
    name = variants()[variant].label
    what = "degrades with depth" if want else "does not degrade with depth"
    if (
      len(rows) < 2 or not rows[0]["finished"] or not (rows[-1]["finished"] or rows[-1]["diverged"])
    ):
      lines.append(f"{name} {what}: no finished shallowest and deepest runs to compare: NOT shown")
      continue
    lo, hi = rows[0], rows[-1]
    worse = hi["diverged"] > 0 or hi["final_train_error"] > lo["final_train_error"] + TRAINS_MARGIN
    lines.append(
      f"{name} {what}: depth {lo['depth']} {_state(lo)}, depth {hi['depth']} {_state(hi)} "
      f"(margin {100 * TRAINS_MARGIN:.0f} points): {'shown' if worse == want else 'NOT shown'}"
    )
  return lines


def deepest_lines(summary: Sequence[dict]) -> list[str]:
  """At each variant's deepest depth with runs: plain and ResNet without BN fail (do not train),
  and each fix's net trains (`trains`, against ResNet + BN at that depth)."""
  lines = []
  for variant in ("plain_nobn", "resnet_nobn", *FIXES):
    rows = [r for r in summary if r["variant"] == variant and r["runs"]]
    if not rows:
      continue
    row = max(rows, key=lambda r: r["depth"])
    ref = _cell(summary, "resnet_bn", row["depth"])
    name, depth = variants()[variant].label, row["depth"]
    claim = "fails at depth" if variant in ("plain_nobn", "resnet_nobn") else "trains at depth"
    if row["trains"] == "":
      lines.append(f"{name} {claim} {depth}: no finished ResNet + BN run to compare: NOT shown")
      continue
    shown = row["trains"] != (variant in ("plain_nobn", "resnet_nobn"))
    lines.append(
      f"{name} {claim} {depth}: {_state(row)} against ResNet + BN's {_state(ref)} "
      f"(trains: within {100 * TRAINS_MARGIN:.0f} points, no seed diverged): "
      f"{'shown' if shown else 'NOT shown'}"
    )
  return lines


# --------------------------------------------------------------------------------------------------
# CSVs and the figure


def write_csvs(rows: Sequence[dict], summary: Sequence[dict], out_dir: str) -> list[str]:
  from cnn_depth.analysis import results

  paths = [os.path.join(out_dir, f"trainable_depth{s}.csv") for s in ("", "_summary")]
  results.write_rows(paths[0], sorted(rows, key=_row_order))
  results.write_rows(paths[1], list(summary))
  return paths


def _row_order(row: dict) -> tuple:
  order = list(variants())
  return (order.index(row["variant"]) if row["variant"] in order else 99, row["depth"], row["seed"])


PANELS = (
  ("final_train_error", "(a) final training error", "training error (%)", 100.0),
  ("final_train_loss", "(b) final training loss", "cross-entropy (log scale)", 1.0),
  ("first_epoch_train_accuracy", "(c) first-epoch training accuracy", "accuracy (%)", 100.0),
)


def figure(summary_csv: str, path: str, caption: str | None = None) -> str:
  """Three panels against depth (log scale), one line per variant (ResNets solid, plain nets
  dashed), mean ± std over the finished seeds as error bars; an x at the top of a panel where a
  seed of that net diverged (its number beside it)."""
  from cnn_depth.analysis import plotting

  rows = plotting.read_rows(summary_csv)
  drawn = [v for v in variants() if any(r["variant"] == v for r in rows)]
  depths = sorted({r["depth"] for r in rows})
  colors = plotting.plt.get_cmap("tab10").colors
  fig, axes = plotting.plt.subplots(1, 3, figsize=(15.5, 4.6))
  for ax, (key, title, ylabel, scale) in zip(axes, PANELS):
    top = ax.get_xaxis_transform()  # x in data, y in axes units
    for i, name in enumerate(drawn):
      mine = sorted((r for r in rows if r["variant"] == name), key=lambda r: r["depth"])
      style = {"color": colors[i % 10], "linestyle": "--" if _plain(name) else "-"}
      dodge = 1.02 ** (i - (len(drawn) - 1) / 2)  # side by side at each depth (log x)
      ok = [r for r in mine if _finite(r[key])]
      ax.errorbar(
        [dodge * r["depth"] for r in ok], [scale * r[key] for r in ok],
        yerr=[scale * _zero(r[f"{key}_std"]) for r in ok], marker="o", markersize=3.5,
        capsize=2, linewidth=1.3, label=variants()[name].label, **style,
      )  # fmt: skip
      for r in mine:
        if r["diverged"]:
          x = dodge * r["depth"]
          ax.plot([x], [1.02], "x", color=style["color"], transform=top, clip_on=False)
          ax.text(x, 1.045, str(r["diverged"]), color=style["color"], fontsize=6, transform=top,
                  ha="center")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.minorticks_off()
    ax.set(xlabel="depth (layers)", ylabel=ylabel)
    ax.set_title(title, pad=16)
    ax.grid(alpha=0.3)
  axes[0].set_ylim(0, 100)
  axes[1].set_yscale("log")
  plain = plotting.matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
  axes[1].yaxis.set_major_formatter(plain)
  axes[1].yaxis.set_minor_formatter(plotting.matplotlib.ticker.NullFormatter())  # no crowding
  axes[2].set_ylim(0, 100)
  handles, labels = axes[0].get_legend_handles_labels()
  handles.append(plotting.matplotlib.lines.Line2D([], [], marker="x", color="k", linestyle=""))
  labels.append("x: seeds diverged (count)")
  fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.55), fontsize=8,
             frameon=False)  # fmt: skip
  return plotting.finish(fig, path, caption)


def _plain(variant: str) -> bool:
  return variants()[variant].model["family"] == "cifar_plain"


def _finite(value) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value)


def _zero(value) -> float:
  return value if _finite(value) else 0.0


# --------------------------------------------------------------------------------------------------
# The study


def caption(o: registry.Options) -> str:
  data = (
    f"{o.dataset} (embedded), width {o.width}, batch {BATCH}, {o.steps} steps, lr {o.lr:g} /10 at "
    "50% and 75%" if o.quick
    else f"{o.dataset}, width {o.width}, batch {BATCH}, He et al.'s 64k iterations, lr {o.lr:g} "
    "/10 at 32k and 48k (warm-up 400 steps at 0.01 from depth 110)"
  )  # fmt: skip
  return (
    f"{data}, SGD momentum 0.9, weight decay 1e-4, the same for every net; training error = "
    f"training-mode mini-batch error over the last epoch; first-epoch accuracy over the first "
    f"epoch's mini-batches; {registry.seeds_note(o.seeds)}, error bars ± std over the finished "
    f"seeds; {registry.when()}"
  )


def analyse(o: registry.Options, runs_dir: str, out_dir: str) -> list[str]:
  rows, missing = measure_runs(o, runs_dir)
  summary = summarize(rows)
  csv_path, summary_path = write_csvs(rows, summary, out_dir)
  lines = [csv_path, summary_path]
  lines.append(figure(summary_path, os.path.join(out_dir, "trainable_depth.png"), caption(o)))
  if missing:
    lines.append(f"{missing} runs of the grid have no workdir under {runs_dir} (left out)")
  lines += [f"skipped: {s} (tat_eta=0.9 is out of reach for so shallow a net)" for s in skipped(o)]
  return lines + degradation_lines(summary) + deepest_lines(summary)


# Sized by measured runs (CPU-seconds on the shared 2-core machine, width 8, digits): a run's
# process start, compile and evaluation take 11.5 (depth 8) to 13.5 (56) CPU-s, NF's 5 more; a
# step 0.013 / 0.03 / 0.08 / 0.17 CPU-s at depths 8 / 20 / 56 / 110 (width 16: twice as much;
# MNIST-5k's 32x32 images: 16 times). So the 87 runs take ~3,600 CPU-s: ~30-35 min with
# --parallel=2. At 660 steps ResNet-56 + BN trains to 0.9% and plain-56 + BN to 64% (seed 0);
# depth 110 does not fit: ResNet-110 + BN is still at 71% after 330 steps (53% with a one-epoch
# warm-up at 0.01), so no fix could be judged against it, and its 30 runs would add ~65 min.
QUICK = {
  "seeds": [0, 1, 2],
  "depths": [8, 20, 56],
  "steps": 660,  # 60 epochs of the 1,500 training digits (11 steps of 128 an epoch)
  "width": 8,
  "lr": 0.1,
  "dataset": "digits",
  "variants": "all",
}
FULL = {
  "seeds": [0, 1, 2],
  "depths": [20, 56, 110, 218, 1202],
  "steps": 0,  # 0: the recipe's 64k
  "width": 16,
  "lr": 0.1,
  "dataset": "cifar10",
  "variants": "all",
}

STUDY = registry.register(
  registry.Study(
    name="trainable_depth",
    paper="#25 study 1: trainable depth for every fix for depth (Zhang et al. 2019, Fig. 3 too)",
    quick=QUICK,
    full=FULL,
    grid=grid,
    analyse=analyse,
  )
)
