"""What each fix for depth does to the why-analyses (#25, study 4): Balduzzi et al.'s correlation
of input gradients along a line of inputs (2017, "The shattered gradients problem", Figs. 2-3) and
Li et al.'s extreme Hessian eigenvalues of the training loss (2018, "Visualizing the loss landscape
of neural nets", §6), for every variant of the trainable_depth study at ONE depth, each against
plain + BN (the net that degrades) and ResNet + BN (He et al.'s fix).

It measures trainable_depth's runs (runs/trainable_depth, by the same run names), as li2018 and
balduzzi2017 measure he2016's: its grid is trainable_depth's at the one depth with trainable_depth's
recipe options, so reproducing this study trains only those runs where they are missing. The
instruments are the shared ones (`analysis/shattered.py`, `analysis/hessian.py`), used as the
balduzzi2017 and li2018 studies use them:

* the gradient correlation (`shattered.correlation_study`): the gradient of the logit of the class
  predicted at a line's centre with respect to the input, at `points` points of `lines` lines
  through test images, and the Pearson correlation of gradients k points apart, averaged over the
  lines. Measured at initialisation (step 0, re-drawn from the run's seed) AND with the trained
  weights: Balduzzi et al. state shattering for the initialised net (their §3), and most fixes act
  there (they are initialisations and branch scalings), while the trained nets are what the
  trainable_depth study compares;
* lambda_max, lambda_min and |lambda_min / lambda_max| of the Hessian of the trained net's training
  loss (`hessian.extreme_eigenvalues`, Lanczos on Hessian-vector products over the first
  `hessian_examples` training images), as Li et al. measure the sharpness of a solution. Nets
  without BN have no batch statistics; the instruments take them as they are.

An undefined measurement is written as NaN with a note, never dropped and never fatal: a run that
diverged has no trained weights (the quick runs checkpoint at the end only), and a net whose output
does not depend on its input (a Fixup net at initialisation: its classifier is zero) has a zero
input gradient, whose correlation is undefined; a net that overflows (inf activations) has neither
a correlation nor a Hessian.

The phenomena, fixed before any run was measured (`phenomena`), each "shown" only where it holds
in every seed, each seed compared with the same seed of the reference net:
* the two instruments' own claims at this depth: ResNet + BN's lag-`lag` correlation at
  initialisation above plain + BN's (Balduzzi et al.), and plain + BN's trained lambda_max above
  ResNet + BN's (Li et al.);
* for each fix: its gradients correlate like ResNet + BN's, i.e. its lag-`lag` correlation is above
  plain + BN's, at initialisation and (a second line) trained; and its trained lambda_max is below
  plain + BN's.

Outputs: fixes_why.csv (one row a run: variant, depth, seed, status, the correlation at the lag at
init and trained, lambda_max, lambda_min, ratio, note), gradient_correlation.csv (one row a lag of
each curve), gradient_correlation.png/pdf (one panel a fix: its curves against plain + BN's and
ResNet + BN's), fixes_why.png/pdf (the correlation at the lag and the trained lambda_max and ratio
of every variant), each drawn from its CSV; one line per variant and per phenomenon.

Quick mode: trainable_depth's quick runs (the embedded digits, width 8, its steps and one lr) at
its deepest quick depth (56 today): the deeper the net, the more a plain net's gradients shatter
(Balduzzi et al.: their correlation falls like 2^-L) and the sharper its minimum (Li et al.), so
each fix is tested where it has most to do, and a deeper net would need trainable_depth to train
it. Measured on the 2-core CPU (the runs trained): a variant's first seed takes 27-41 CPU-s at
depth 56 (its compiles: the initial draw, the line gradients, the Hessian-vector product), each
further seed 8-12 CPU-s, the 30 runs ~500-550 CPU-s (at depth 110 ~650-800). The Balduzzi
options are balduzzi2017's quick ones (6 lines of 128 points, lag 8), the Hessian's li2018's (256
training images, 16 Lanczos steps).

Full mode: CIFAR-10 (trainable_depth's full runs at depth 110, which that study trains), e.g.
  python scripts/reproduce.py --study=fixes_why --data_dir=/data/cifar --launcher=slurm \
      --partition=gpu --gpus_per_node=1
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from cnn_depth import lazy_import
from cnn_depth import workdir as workdir_lib
from cnn_depth.studies import registry, trainable_depth

hessian = lazy_import("cnn_depth.analysis.hessian")
plotting = lazy_import("cnn_depth.analysis.plotting")
results = lazy_import("cnn_depth.analysis.results")
runs = lazy_import("cnn_depth.analysis.runs")
shattered = lazy_import("cnn_depth.analysis.shattered")

PLAIN, RESNET = REFERENCES = ("plain_bn", "resnet_bn")
MAX_LAG = 32  # the longest lag written (balduzzi2017's), at most points - 1


# --------------------------------------------------------------------------------------------------
# The grid: trainable_depth's at one depth


def runs_options(o: registry.Options) -> registry.Options:
  """trainable_depth's options for this study's runs: its recipe options as given here, the one
  depth, and the variants asked for plus the two references (always measured: every comparison
  needs them)."""
  values = {k: getattr(o, k) for k in trainable_depth.QUICK if k != "depths"}
  if getattr(o, "variants", "all") != "all":
    names = set(trainable_depth.variant_names(o.variants)) | set(REFERENCES)
    values["variants"] = ",".join(v for v in trainable_depth.VARIANTS if v in names)
  return registry.Options(quick=o.quick, data_dir=o.data_dir, **values, depths=[o.depth])


def check(o: registry.Options) -> None:
  """One StudyError sentence for an option out of range (the depth: trainable_depth's CIFAR nets
  are 6n+2 layers deep)."""
  rules = (
    ("depth", o.depth >= 8 and (o.depth - 2) % 6 == 0, "6n+2 and at least 8 (8, 20, 56, 110, ...)"),
    ("lines", o.lines >= 1, "at least 1"),
    ("points", o.points >= 2, "at least 2 (a line)"),
    ("lag", 1 <= o.lag <= min(MAX_LAG, o.points - 1), f"in 1..{min(MAX_LAG, o.points - 1)}"),
    ("radius", o.radius > 0, "above 0"),
    ("hessian_examples", o.hessian_examples >= 1, "at least 1"),
    ("lanczos_iters", o.lanczos_iters >= 2, "at least 2"),
  )
  for name, ok, must in rules:
    if not ok:
      raise registry.StudyError(f"option {name} must be {must}, got {getattr(o, name)}")


def grid(o: registry.Options) -> list[registry.RunSpec]:
  """trainable_depth's runs at `o.depth`: the same names, configs and overrides, so the same
  workdirs (a variant whose smallest depth is above it, TAT's 14, has none)."""
  check(o)
  return trainable_depth.grid(runs_options(o))


def parse_name(name: str) -> tuple[str, int, int]:
  """'fixup_d56_s2' -> ('fixup', 56, 2) (workdir.run_name's inverse)."""
  base, _, seed = name.rpartition("_s")
  variant, _, depth = base.rpartition("_d")
  return variant, int(depth), int(seed)


# --------------------------------------------------------------------------------------------------
# Measurement: one run


def _status(workdir: str) -> dict:
  if workdir_lib.read_config(workdir) is None:
    return {"status": "missing"}
  return workdir_lib.read_status(workdir) or {"status": "unfinished"}


def _finite_tree(tree) -> bool:
  import jax

  return all(bool(np.all(np.isfinite(np.asarray(a)))) for a in jax.tree_util.tree_leaves(tree))


def _correlation(loaded, o: registry.Options, seed: int) -> np.ndarray:
  """The mean gradient-correlation curve (lags 0..MAX_LAG) of one net (balduzzi2017's call)."""
  model, variables, _, ds = loaded
  mean, _ = shattered.correlation_study(
    model, variables, ds.test_images, ds.mean, ds.std, num_lines=o.lines, num_points=o.points,
    radius=o.radius, max_lag=min(MAX_LAG, o.points - 1), seed=seed,
  )  # fmt: skip
  return mean


def _hessian(loaded, o: registry.Options, seed: int, step: int) -> tuple[float, float]:
  """(lambda_max, lambda_min) of the training loss on the first `hessian_examples` training images
  (li2018's call: the Lanczos start drawn from the seed and the step)."""
  import jax

  model, variables, _, ds = loaded
  n = o.hessian_examples
  op = hessian.HessianOperator(
    model, variables, ds.train_images[:n], ds.train_labels[:n], ds.mean, ds.std, batch_size=512
  )
  key = jax.random.fold_in(jax.random.key(seed), step)
  return hessian.extreme_eigenvalues(op, op.dim, key, o.lanczos_iters)


UNDEFINED_CORRELATION = (
  "every input gradient along the lines is constant over the image or not finite (zero where the "
  "output does not depend on the input, NaN where the net overflows): correlation undefined"
)


def measure_run(workdir: str, o: registry.Options) -> tuple[dict, dict[bool, np.ndarray]]:
  """One row of fixes_why.csv and the gradient-correlation curves ({trained: curve}) of a workdir.
  Whatever cannot be measured is NaN and says why in the row's note: a missing workdir, a run
  without trained weights (diverged, unfinished), non-finite weights or Hessian, an undefined
  correlation."""
  variant, depth, seed = parse_name(os.path.basename(os.path.normpath(workdir)))
  status = _status(workdir)
  row = {"variant": variant, "depth": depth, "seed": seed, "status": status["status"],
         "lag": o.lag, "correlation_init": math.nan, "correlation_trained": math.nan,
         "lambda_max": math.nan, "lambda_min": math.nan, "ratio": math.nan}  # fmt: skip
  notes, curves = [], {}
  data_dir = o.data_dir or None
  if status["status"] == "missing":
    return {**row, "note": "no workdir: not trained"}, curves
  curves[False] = _correlation(runs.load_trained(workdir, data_dir, step=0), o, seed)
  if status["status"] != "done" or not runs.checkpoint_steps(workdir):
    at = f" at step {status['step']}" if "step" in status else ""
    notes.append(f"{status['status']}{at}: the run did not finish, trained values undefined")
  else:
    step = runs.checkpoint_steps(workdir)[-1]
    loaded = runs.load_trained(workdir, data_dir, step=step)
    if not _finite_tree(loaded[1]):
      notes.append(f"non-finite weights at step {step}: trained values undefined")
    else:
      curves[True] = _correlation(loaded, o, seed)
      hi, lo = _hessian(loaded, o, seed, step)
      row.update(lambda_max=hi, lambda_min=lo, ratio=abs(lo / hi) if hi else math.nan)
      if not (math.isfinite(hi) and math.isfinite(lo)):
        notes.append("the Hessian is not finite (the training loss overflows): undefined")
  for trained, curve in curves.items():
    value = float(curve[o.lag])
    row["correlation_trained" if trained else "correlation_init"] = value
    if math.isnan(value):
      notes.append(f"{'trained' if trained else 'at init'}: {UNDEFINED_CORRELATION}")
  return {**row, "note": "; ".join(notes)}, curves


def measure(o: registry.Options, runs_dir: str) -> tuple[list[dict], dict]:
  """Every run of the grid under `runs_dir`, variant by variant (one compile of each instrument a
  variant, shared by its seeds): the rows and {(variant, depth, seed, trained): curve}. ValueError
  where no run of the grid has a workdir."""
  order = list(trainable_depth.VARIANTS)
  by_variant = lambda spec: (order.index(parse_name(spec.name)[0]), parse_name(spec.name)[2])
  specs = sorted(grid(o), key=by_variant)
  rows, curves = [], {}
  for spec in specs:
    row, mine = measure_run(os.path.join(runs_dir, spec.name), o)
    rows.append(row)
    for trained, curve in mine.items():
      curves[(row["variant"], row["depth"], row["seed"], trained)] = curve
  if all(r["status"] == "missing" for r in rows):
    raise ValueError(
      f"no workdir of the trainable_depth grid at depth {o.depth} under {runs_dir}: train it first"
    )
  return rows, curves


# --------------------------------------------------------------------------------------------------
# CSVs


def write_csvs(rows: Sequence[dict], curves: dict, out_dir: str) -> tuple[str, str]:
  """fixes_why.csv (the rows) and gradient_correlation.csv (variant, depth, seed, trained, lag,
  correlation: one row a lag of each curve, NaN where undefined)."""
  runs_csv = os.path.join(out_dir, "fixes_why.csv")
  curves_csv = os.path.join(out_dir, "gradient_correlation.csv")
  results.write_rows(runs_csv, list(rows))
  results.write_table(
    curves_csv,
    ("variant", "depth", "seed", "trained", "lag", "correlation"),
    [
      (v, int(d), int(s), int(t), lag, float(c))
      for (v, d, s, t), curve in curves.items()
      for lag, c in enumerate(np.asarray(curve, np.float64))
    ],
  )
  return runs_csv, curves_csv


# --------------------------------------------------------------------------------------------------
# The phenomena and the lines


def label(variant: str) -> str:
  v = trainable_depth.VARIANTS.get(variant)
  return v.label if v else variant


def _finite(value) -> bool:
  return isinstance(value, (int, float)) and math.isfinite(value)


def _by_seed(rows: Sequence[dict], variant: str, key: str) -> dict[int, float]:
  return {
    int(r["seed"]): float(r[key]) if _finite(r[key]) else math.nan
    for r in rows
    if r["variant"] == variant
  }


def _stats(values: Sequence[float]) -> str:
  """'0.512 ± 0.031 (0.48, 0.51, 0.55)' over the finite values; 'undefined' where none is."""
  finite = [v for v in values if math.isfinite(v)]
  if not finite:
    return "undefined"
  each = ", ".join(f"{v:.3g}" if math.isfinite(v) else "n/a" for v in values)
  return f"{np.mean(finite):.3g} ± {np.std(finite):.2g} ({each})"


def compare(rows: Sequence[dict], variant: str, key: str, reference: str, above: bool) -> tuple:
  """(shown, text): whether `variant`'s `key` is above (or below) `reference`'s in every seed, each
  seed against the same seed; a seed where either value is undefined (or missing) counts against."""
  mine, ref = _by_seed(rows, variant, key), _by_seed(rows, reference, key)
  seeds = sorted(set(mine) | set(ref))
  holds = [
    s for s in seeds
    if _finite(mine.get(s)) and _finite(ref.get(s)) and (mine[s] > ref[s]) == above
    and mine[s] != ref[s]
  ]  # fmt: skip
  undefined = [s for s in seeds if not (_finite(mine.get(s)) and _finite(ref.get(s)))]
  text = f"{len(holds)} of {len(seeds)} seeds"
  if undefined:
    text += f", undefined in seed{'s' if len(undefined) > 1 else ''} "
    text += ",".join(map(str, undefined))
  return bool(seeds) and len(holds) == len(seeds), text


def _line(claim: str, result: tuple) -> str:
  shown, text = result
  return f"{claim} ({text}): {'shown' if shown else 'NOT shown'}"


def phenomena(rows: Sequence[dict], lag: int) -> list[str]:
  """The lines of the claims fixed before measuring (module docstring), at the rows' depth."""
  depth = rows[0]["depth"] if rows else "?"
  corr = f"lag-{lag} gradient correlation"
  lines = [
    _line(
      f"depth {depth}, Balduzzi et al.: {label(RESNET)}'s {corr} at init above {label(PLAIN)}'s",
      compare(rows, RESNET, "correlation_init", PLAIN, True),
    ),
    _line(
      f"depth {depth}, Li et al.: {label(PLAIN)}'s trained lambda_max above {label(RESNET)}'s",
      compare(rows, PLAIN, "lambda_max", RESNET, True),
    ),
  ]
  present = {r["variant"] for r in rows}
  for fix in trainable_depth.FIXES:
    if fix not in present:
      continue
    name = label(fix)
    lines += [
      _line(
        f"{name} correlates like {label(RESNET)} at init ({corr} above {label(PLAIN)}'s)",
        compare(rows, fix, "correlation_init", PLAIN, True),
      ),
      _line(
        f"{name} correlates like {label(RESNET)} trained ({corr} above {label(PLAIN)}'s)",
        compare(rows, fix, "correlation_trained", PLAIN, True),
      ),
      _line(
        f"{name}'s trained lambda_max below {label(PLAIN)}'s",
        compare(rows, fix, "lambda_max", PLAIN, False),
      ),
    ]
  return lines


def summary_lines(rows: Sequence[dict], lag: int) -> list[str]:
  """One line a variant: its correlation at the lag (init, trained) and trained lambda_max and
  ratio, mean ± std over the seeds where defined and each seed's value; and each run's note."""
  lines = []
  for variant in trainable_depth.VARIANTS:
    mine = sorted((r for r in rows if r["variant"] == variant), key=lambda r: r["seed"])
    if not mine:
      continue
    get = lambda key: [float(r[key]) if _finite(r[key]) else math.nan for r in mine]
    lines.append(
      f"{label(variant)}-{mine[0]['depth']}: lag-{lag} correlation at init "
      f"{_stats(get('correlation_init'))}, trained {_stats(get('correlation_trained'))}; trained "
      f"lambda_max {_stats(get('lambda_max'))}, |lambda_min/lambda_max| {_stats(get('ratio'))}"
    )
    lines += [f"  seed {r['seed']}: {r['note']}" for r in mine if r["note"]]
  return lines


# --------------------------------------------------------------------------------------------------
# Figures, each from its CSV


REFERENCE_COLORS = {PLAIN: "0.55", RESNET: "k"}


def _colors(variants: Sequence[str]) -> dict[str, tuple | str]:
  """Grey for plain + BN, black for ResNet + BN, tab10 less its grey for the others in VARIANTS'
  order."""
  tab = [c for i, c in enumerate(plotting.plt.get_cmap("tab10").colors) if i != 7]
  others = [v for v in variants if v not in REFERENCES]
  return {**{v: tab[i % len(tab)] for i, v in enumerate(others)}, **REFERENCE_COLORS}


def _present(rows: Sequence[dict]) -> list[str]:
  order = list(trainable_depth.VARIANTS)
  names = {r["variant"] for r in rows}
  return sorted(names, key=lambda v: (order.index(v) if v in order else len(order), v))


def _curves(rows: Sequence[dict]) -> dict:
  """{(variant, trained): (lags, mean, std, seeds)} over the seeds whose curve is defined."""
  return plotting.seed_means(
    [r for r in rows if _finite(r["correlation"])], ("variant", "trained"), "lag", "correlation"
  )


def gradient_correlation(csv_path: str, path: str, caption: str | None = None) -> str:
  """Balduzzi et al. 2017, Figs. 2-3, per fix: one panel a variant other than the references, its
  gradient correlation against the lag at initialisation (solid) and trained (dashed), plain + BN
  (grey) and ResNet + BN (black) drawn in every panel; mean ± std over the seeds where defined
  (the count in the legend), a note where a curve is undefined in every seed."""
  rows = plotting.read_rows(csv_path)
  variants = _present(rows)
  colors, curves = _colors(variants), _curves(rows)
  panels = [v for v in variants if v not in REFERENCES] or variants
  cols = min(4, len(panels))
  nrows = -(-len(panels) // cols)
  fig, axes = plotting.plt.subplots(
    nrows, cols, figsize=(3.9 * cols, 3.3 * nrows), squeeze=False, sharey=True
  )
  for ax, variant in zip(axes.flat, panels):
    for name in (*REFERENCES, variant) if variant not in REFERENCES else REFERENCES:
      color = colors.get(name, "0.3")
      for trained in (0, 1):
        if (name, trained) not in curves:
          continue
        x, mean, std, n = curves[(name, trained)]
        state = "trained" if trained else "init"
        style = {"color": color, "linestyle": "--" if trained else "-", "linewidth": 1.4}
        plotting.band(ax, x, mean, std, n, f"{label(name)}, {state}", **style)
    missing = [s for s in ("init", "trained") if (variant, s == "trained") not in curves]
    if missing and variant not in REFERENCES:
      ax.text(0.03, 0.03, f"{' and '.join(missing)}: undefined in every seed", fontsize=7,
              transform=ax.transAxes, color=colors[variant])  # fmt: skip
    ax.set(title=label(variant), xlabel="lag k (points along the line)", ylim=(-0.1, 1.02))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=6, frameon=False)
  for ax in axes[:, 0]:
    ax.set_ylabel("gradient correlation")
  for ax in list(axes.flat)[len(panels) :]:
    ax.set_visible(False)
  return plotting.finish(fig, path, caption)


def _points(ax, x, values: Sequence[float], color, marker: str) -> None:
  """Mean ± std of the finite values at x (an error bar), and an x at the axis's foot with the
  count of undefined seeds."""
  finite = [v for v in values if _finite(v)]
  if finite:
    ax.errorbar([x], [np.mean(finite)], yerr=[np.std(finite)], color=color, marker=marker,
                capsize=3, markersize=5, linestyle="")  # fmt: skip
  undefined = len(values) - len(finite)
  if undefined:
    foot = ax.get_xaxis_transform()
    ax.plot([x], [0.02], "x", color=color, transform=foot)
    ax.text(x, 0.05, str(undefined), color=color, fontsize=7, ha="center", transform=foot)


def summary(csv_path: str, path: str, caption: str | None = None) -> str:
  """Every variant side by side (fixes_why.csv): (a) the gradient correlation at the lag at init
  (circles) and trained (squares), (b) the trained lambda_max and (c) |lambda_min / lambda_max|
  (log scales), mean ± std over the seeds where defined; dotted lines at plain + BN's (grey) and
  ResNet + BN's (black) means; an x with a count at the foot of a panel for undefined seeds."""
  rows = plotting.read_rows(csv_path)
  variants = _present(rows)
  colors = _colors(variants)
  lag = rows[0]["lag"] if rows else "?"
  fig, axes = plotting.plt.subplots(1, 3, figsize=(16, 4.8))
  panels = (
    (("correlation_init", "o", "init"), ("correlation_trained", "s", "trained")),
    (("lambda_max", "o", None),),
    (("ratio", "o", None),),
  )
  for ax, keys in zip(axes, panels):
    for i, variant in enumerate(variants):
      for j, (key, marker, state) in enumerate(keys):
        values = [float(r[key]) for r in rows if r["variant"] == variant]
        dx = (j - (len(keys) - 1) / 2) * 0.25
        _points(ax, i + dx, values, colors[variant], marker)
    key, _, state = keys[0]
    for ref in REFERENCES:
      values = [float(r[key]) for r in rows if r["variant"] == ref and _finite(r[key])]
      if values:
        ax.axhline(np.mean(values), color=colors[ref], linestyle=":", linewidth=1,
                   label=f"{label(ref)} mean" + (f" ({state})" if state else ""))  # fmt: skip
    ax.set_xticks(range(len(variants)), [label(v) for v in variants], rotation=40, ha="right",
                  fontsize=7)  # fmt: skip
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0]
    if len(keys) > 1:  # the markers' meaning, whichever variants have values
      line = plotting.matplotlib.lines.Line2D
      handles += [line([], [], marker=m, color="k", linestyle="", label=t) for _, m, t in keys]
    if handles:
      ax.legend(handles=handles, fontsize=7, frameon=False)
  axes[0].set(title=f"(a) gradient correlation at lag {lag}", ylabel="correlation", ylim=(-0.1, 1))
  axes[1].set(title="(b) trained: largest Hessian eigenvalue", ylabel="lambda_max", yscale="log")
  axes[2].set(title="(c) trained: |lambda_min / lambda_max|", ylabel="ratio", yscale="log")
  return plotting.finish(fig, path, caption)


# --------------------------------------------------------------------------------------------------
# The study


def caption(o: registry.Options) -> str:
  data = (
    f"{o.dataset} (embedded), width {o.width}, {o.steps} steps" if o.quick
    else f"{o.dataset}, width {o.width}, He et al.'s 64k iterations"
  )  # fmt: skip
  return (
    f"depth {o.depth}, study trainable_depth's runs ({data}, SGD lr {o.lr:g}, one recipe for all); "
    f"gradient of the predicted class's logit w.r.t. the input at {o.points} points of a line "
    f"through each of {o.lines} test images (±{o.radius:g} per-pixel std), correlation of "
    f"gradients k points apart, mean over lines, at init (step 0) and trained; Hessian of the "
    f"training loss on {o.hessian_examples} training images ({o.lanczos_iters} Lanczos steps), "
    f"trained; {registry.seeds_note(o.seeds)}, ± std over the seeds where defined; "
    f"{registry.when()}"
  )


def analyse(o: registry.Options, runs_dir: str, out_dir: str) -> list[str]:
  rows, curves = measure(o, runs_dir)
  runs_csv, curves_csv = write_csvs(rows, curves, out_dir)
  text = caption(o)
  figures = [
    gradient_correlation(curves_csv, os.path.join(out_dir, "gradient_correlation.png"), text),
    summary(runs_csv, os.path.join(out_dir, "fixes_why.png"), text),
  ]
  measured = [r for r in rows if r["status"] != "missing"]
  missing = len(rows) - len(measured)
  lines = [runs_csv, curves_csv, *figures]
  if missing:
    lines.append(f"{missing} runs of the grid have no workdir under {runs_dir} (left out)")
  return lines + summary_lines(measured, o.lag) + phenomena(measured, o.lag)


MEASURE = {"lines": 6, "points": 128, "radius": 1.0, "lag": 8, "hessian_examples": 256,
           "lanczos_iters": 16}  # fmt: skip
RECIPE_QUICK = {k: v for k, v in trainable_depth.QUICK.items() if k != "depths"}
RECIPE_FULL = {k: v for k, v in trainable_depth.FULL.items() if k != "depths"}
# Quick: trainable_depth's deepest quick depth (see the module docstring). Full: 110, the deepest
# net of He et al.'s Table 6 and of Li et al.'s and Balduzzi et al.'s CIFAR-10 measurements.
QUICK = {**RECIPE_QUICK, "depth": max(trainable_depth.QUICK["depths"]), **MEASURE}
FULL = {**RECIPE_FULL, "depth": 110, **MEASURE}

STUDY = registry.register(
  registry.Study(
    name="fixes_why",
    paper="#25 study 4: the fixes for depth under Balduzzi et al. 2017 (Figs. 2-3) and Li et al. "
    "2018 (§6)",
    quick=QUICK,
    full=FULL,
    grid=grid,
    analyse=analyse,
    runs_dir="trainable_depth",
  )
)
