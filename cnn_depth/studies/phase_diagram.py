r"""The phase diagram of vanilla tanh nets and, at criticality, Gaussian against delta-orthogonal
kernels as depth grows (issue #25, study 2).

Schoenholz et al. 2017 ("Deep information propagation", §5, Fig. 6): a vanilla net (no BN, no
skips) trains only where its depth is below about 6 xi_c, the mean-field depth scale of input
correlations, which diverges on the order-to-chaos line chi_1 = 1. Xiao et al. 2018 ("Dynamical
isometry and a mean field theory of CNNs", Fig. 1): at that line a CNN whose kernels are
delta-orthogonal trains at depths (10,000 layers) where one with Gaussian kernels does not, because
only the orthogonal kernels make the input-output Jacobian's singular values concentrate at 1.

The nets: cifar_plain without normalisation (convolutions with biases N(0, sigma_b2)), tanh,
learning rate 0.01 for every cell (the project's rate for vanilla tanh nets, models/fixes.py's
vanilla_tanh preset, chosen before any cell was trained: at 0.1 such nets may diverge), constant
(Schoenholz et al. train at a fixed rate; a drop within runs this short only slows them), momentum
0.9, weight decay 1e-4, non-finite steps skipped (a cell whose gradients explode stays untrained
rather than stopping the grid).

1. The diagram: Gaussian kernels N(0, sigma_w2 / fan_in) (Schoenholz et al.'s nets), sigma_b2 =
   0.05 (theirs), sigma_w2 evenly spaced from `sigma_w2_min` to `sigma_w2_max`, each of `depths`,
   `map_steps` steps; the training accuracy (the whole training set, unaugmented) as a heat map,
   mean over seeds, with 6 xi_c(sigma_w2) from models/meanfield.py drawn over it.
2. At criticality: sigma_w2 = critical_sigma_w2('tanh', iso_sigma_b2), Gaussian and
   delta-orthogonal kernels, at each of `depths` and `deepest`, `steps` steps. iso_sigma_b2 =
   2.01e-5 puts the net at sigma_w2 = 1.05, q* = 0.026: dynamical isometry needs q* small (tanh
   nearly linear where the pre-activations lie; Pennington et al. 2017), the regime of Xiao et
   al.'s deepest nets. At sigma_b2 = 0.05 (q* = 0.57) neither init trained a 110-layer net in 300
   steps on the digits (seed 0, measured while sizing this study, before part 2's runs).

Quick mode: the embedded 8x8 digits (1,500 training images; 32x32 MNIST-5k costs 16x per layer
and the phenomena are about depth, not images), width 16: 8 x 4 cells of 80 steps and 2 x 5 nets
at criticality of 150 steps, 3 seeds, 126 runs. Sized by measurement (2-core CPU): a step costs
~0.0037 CPU-s per layer (0.4 s at depth 110), a run's start, compile and evaluation ~16 CPU-s, ~8
with a persistent compilation cache (the runs share 5 train-step programs: sigma_w2, sigma_b2 and
the init change only the initial draw), so the quick mode takes ~20-26 min:

  JAX_COMPILATION_CACHE_DIR=.jax_cache python scripts/reproduce.py --study=phase_diagram \
      --quick --parallel=2

Full mode: CIFAR-10, width 64 (the mean-field maps hold for wide nets), 15 values of sigma_w2,
depths up to 302 (Schoenholz et al. went to 300) for 2,000 steps, and at criticality up to 1,202
layers for 10,000 steps (Xiao et al. trained 10,000 layers); 312 runs, GPU hours:

  python scripts/reproduce.py --study=phase_diagram --data_dir=/data/cifar --launcher=slurm \
      --partition=gpu --gpus_per_node=1 --wait

What a net "trains" means, fixed before any run: its training accuracy reaches TRAINS (0.5, five
times chance on 10 classes) by the end of its run. The phenomena:
* the trainable region follows the curve: of the cells (sigma_w2, depth) with depth <= 6 xi_c, the
  fraction that train exceeds the fraction of the cells above the curve that train by at least
  0.5 (mean over seeds, and seed by seed);
* the orthogonal net keeps training where the Gaussian stops: at some depth the orthogonal net
  trains and the Gaussian does not, and at no depth the reverse.

Writes phase_diagram.csv (sigma_w2, sigma_b2, depth, seed, steps, train_accuracy, train_loss,
skipped_steps, six_xi_c, inside), theory.csv (sigma_w2, sigma_b2, q_star, chi_1, xi_c, six_xi_c
on a fine grid and at the critical point), isometry.csv (init, sigma_w2, sigma_b2, depth, seed,
steps, train_accuracy, train_loss, skipped_steps) and the figures phase_diagram.png/pdf and
isometry.png/pdf, each drawn from its CSVs.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from cnn_depth import workdir as workdir_lib
from cnn_depth.studies import registry

ACTIVATION = "tanh"
TRAINS = 0.5  # the training accuracy at which a net counts as trained (chance: 0.1)
MAP_VARIANT = "gauss_w{:.2f}"  # the diagram's runs: gauss_w1.50_d20_s0
INITS = {"gaussian": "crit_gauss", "delta_orthogonal": "crit_orth"}  # init -> variant
INIT_LABELS = {"gaussian": "Gaussian", "delta_orthogonal": "delta-orthogonal"}


# --------------------------------------------------------------------------------------------------
# The grid


def sigma_w2_grid(o: registry.Options) -> list[float]:
  """The diagram's sigma_w2 values: `sigma_w2_points` evenly spaced from min to max (2 decimals,
  as the run names spell them); StudyError for an empty or non-positive range."""
  lo, hi, n = o.sigma_w2_min, o.sigma_w2_max, o.sigma_w2_points
  if not (0 < lo <= hi and n >= 1) or (n == 1 and lo != hi):
    raise registry.StudyError(
      f"options sigma_w2_min={lo}, sigma_w2_max={hi}, sigma_w2_points={n} give no grid: set "
      "0 < sigma_w2_min <= sigma_w2_max and sigma_w2_points >= 1 (1 only where min = max)"
    )
  values = [round(float(v), 2) for v in np.linspace(lo, hi, n)]
  if len(set(values)) < n:
    raise registry.StudyError(
      f"sigma_w2_points={n} puts two values of [{lo}, {hi}] within 0.01: use fewer points"
    )
  return values


def critical_sigma_w2(sigma_b2: float) -> float:
  """The order-to-chaos transition of tanh at this sigma_b2 (chi_1 = 1)."""
  from cnn_depth.models import meanfield

  return meanfield.critical_sigma_w2(ACTIVATION, sigma_b2)


def iso_depths(o: registry.Options) -> list[int]:
  """The depths of part 2: the diagram's and `deepest` (0: none more); StudyError naming the
  option where one is not a depth of a CIFAR plain net (6n+2)."""
  from cnn_depth import models

  depths = sorted(set(o.depths) | ({o.deepest} if o.deepest else set()))
  for depth in depths:
    try:
      models.build_model({"family": "cifar_plain", "depth": depth})
    except ValueError as e:
      option = "depths" if depth in o.depths else "deepest"
      raise registry.StudyError(f"option {option}: {e}") from None
  return depths


def _overrides(o: registry.Options, init: str, sigma_w2: float, sigma_b2: float, steps: int):
  fix = (
    "--config.model.norm=none",
    f"--config.model.init={init}",
    f"--config.model.activation={ACTIVATION}",
    f"--config.model.sigma_w2={sigma_w2!r}",
    f"--config.model.sigma_b2={sigma_b2!r}",
    f"--config.model.width={o.width}",
    f"--config.learning_rate={o.lr!r}",
    "--config.lr_boundaries=()",
    "--config.on_nonfinite=skip",
    "--config.log_block_norms=false",
    "--config.eval_train_set=true",
    f"--config.eval_every_steps={steps}",  # the accuracy at the end is what is measured
  )
  if o.quick:
    return fix
  return (
    *fix,
    f"--config.dataset.data_dir={o.data_dir}",
    f"--config.num_train_steps={steps}",
    "--config.warmup=0",
    f"--config.checkpoint_every_steps={steps}",
  )


def _run(o: registry.Options, variant: str, **meta) -> tuple[registry.RunSpec, dict]:
  """One run and what it varies (`meta`: part, init, sigma_w2, sigma_b2, depth, seed, steps)."""
  name = workdir_lib.run_name(variant, meta["depth"], meta["seed"])
  args = f"depth={meta['depth']},residual=false,seed={meta['seed']}"
  config = (
    f"configs/quickstart.py:{args},steps={meta['steps']}"
    if o.quick
    else f"configs/cifar_resnet.py:{args}"
  )
  fields = (meta["init"], meta["sigma_w2"], meta["sigma_b2"], meta["steps"])
  return registry.RunSpec(name, config, _overrides(o, *fields)), meta


def plan(o: registry.Options) -> list[tuple[registry.RunSpec, dict]]:
  """Every run with what it varies: {'part': 'map' | 'iso', 'init', 'sigma_w2', 'sigma_b2',
  'depth', 'seed', 'steps'}. Seed slowest, so an interrupted grid has covered whole seeds."""
  if o.map_steps < 1 or o.steps < 1:
    raise registry.StudyError(
      f"options map_steps={o.map_steps} and steps={o.steps} must both be >= 1 (training steps)"
    )
  if o.iso_sigma_b2 < 0 or o.sigma_b2 < 0:
    raise registry.StudyError("options sigma_b2 and iso_sigma_b2 must be >= 0 (bias variances)")
  sigmas, critical = sigma_w2_grid(o), critical_sigma_w2(o.iso_sigma_b2)
  depths = iso_depths(o)  # checks every depth
  out = []
  for seed in o.seeds:
    for sigma_w2 in sigmas:
      for depth in o.depths:
        out.append(
          _run(o, MAP_VARIANT.format(sigma_w2), part="map", init="gaussian", sigma_w2=sigma_w2,
               sigma_b2=o.sigma_b2, depth=depth, seed=seed, steps=o.map_steps)
        )  # fmt: skip
    for init, variant in INITS.items():
      for depth in depths:
        out.append(
          _run(o, variant, part="iso", init=init, sigma_w2=critical, sigma_b2=o.iso_sigma_b2,
               depth=depth, seed=seed, steps=o.steps)
        )  # fmt: skip
  return out


def grid(o: registry.Options) -> list[registry.RunSpec]:
  return [spec for spec, _ in plan(o)]


# --------------------------------------------------------------------------------------------------
# The theory: 6 xi_c over sigma_w2


def theory_rows(sigma_w2s: Sequence[float], sigma_b2: float) -> list[dict]:
  """Schoenholz et al.'s mean-field quantities of tanh at each sigma_w2 (models/meanfield.py): q*,
  chi_1, xi_c and the trainable depth 6 xi_c (inf at the critical point itself)."""
  from cnn_depth.models import meanfield

  rows = []
  for sigma_w2 in sigma_w2s:
    p = meanfield.propagation(ACTIVATION, float(sigma_w2), sigma_b2)
    rows.append(
      dict(sigma_w2=float(sigma_w2), sigma_b2=sigma_b2, q_star=p.q_star, chi_1=p.chi_1,
           xi_c=p.xi_c, six_xi_c=p.trainable_depth)
    )  # fmt: skip
  return rows


def curve_sigma_w2s(o: registry.Options, points: int = 121) -> list[float]:
  """Where the drawn curve is evaluated: a fine grid over the diagram's range, the critical point
  (where 6 xi_c diverges) included when it lies inside."""
  lo, hi = o.sigma_w2_min, o.sigma_w2_max
  values = set(np.linspace(lo, hi, points).tolist())
  critical = critical_sigma_w2(o.sigma_b2)
  if lo <= critical <= hi:
    values.add(critical)
  return sorted(values)


# --------------------------------------------------------------------------------------------------
# The measurement: each run's training accuracy at its end


def _finished(workdir: str):
  """The run in `workdir` if it finished ('done') with a training-set evaluation, else None."""
  from cnn_depth.analysis import runs

  if workdir_lib.read_config(workdir) is None:
    return None
  run = runs.load_run(workdir)
  done = (run.status or {}).get("status") == "done"
  return run if done and run.last("train_eval_error") is not None else None


def measure(runs_dir: str, planned) -> tuple[list[dict], list[dict], list[str]]:
  """(the diagram's rows, part 2's rows, the names of the runs not finished) from the workdirs of
  `planned` ((RunSpec, what it varies) pairs, `plan`'s). A row: the run's settings, its training
  accuracy and loss on the whole training set at its end, and the steps it skipped as non-finite."""
  rows: dict[str, list[dict]] = {"map": [], "iso": []}
  missing = []
  for spec, meta in planned:
    run = _finished(os.path.join(runs_dir, spec.name))
    if run is None:
      missing.append(spec.name)
      continue
    row = {k: meta[k] for k in ("sigma_w2", "sigma_b2", "depth", "seed", "steps")}
    if meta["part"] == "iso":
      row = {"init": meta["init"], **row}
    row.update(
      train_accuracy=1.0 - run.last("train_eval_error"),
      train_loss=run.last("train_eval_loss"),
      skipped_steps=int(sum(run.curve("skipped_steps")[1])),
    )
    rows[meta["part"]].append(row)
  return rows["map"], rows["iso"], missing


def add_theory(map_rows: list[dict], theory: list[dict]) -> list[dict]:
  """Each diagram row with 6 xi_c at its sigma_w2 and whether its depth lies under the curve."""
  six = {round(t["sigma_w2"], 6): t["six_xi_c"] for t in theory}
  out = []
  for r in map_rows:
    curve = six[round(r["sigma_w2"], 6)]
    out.append({**r, "six_xi_c": curve, "inside": int(r["depth"] <= curve)})
  return out


# --------------------------------------------------------------------------------------------------
# The phenomena


def _means(rows: Sequence[dict], key: Sequence[str], seed: int | None = None) -> dict:
  """{key values: mean training accuracy over the seeds (or of `seed` only)}."""
  groups: dict[tuple, list[float]] = {}
  for r in rows:
    if seed is None or r["seed"] == seed:
      groups.setdefault(tuple(r[k] for k in key), []).append(r["train_accuracy"])
  return {k: float(np.mean(v)) for k, v in groups.items()}


def _seed_note(verdicts: dict[int, bool]) -> str:
  shown = [s for s, ok in sorted(verdicts.items()) if ok]
  every = ",".join(str(s) for s in sorted(verdicts))
  return f"shown in seeds {','.join(map(str, shown)) or 'none'} of {every}"


def _region(rows: Sequence[dict], seed: int | None):
  """(fraction of cells under the curve that train, above it, cells under, cells above)."""
  inside = {(r["sigma_w2"], r["depth"]): bool(r["inside"]) for r in rows}
  acc = _means(rows, ("sigma_w2", "depth"), seed)
  under = [acc[c] >= TRAINS for c in acc if inside[c]]
  above = [acc[c] >= TRAINS for c in acc if not inside[c]]
  frac = lambda xs: sum(xs) / len(xs) if xs else math.nan
  return frac(under), frac(above), len(under), len(above)


def region_follows_curve(rows: Sequence[dict]) -> str:
  """Schoenholz et al.'s claim on the diagram (rows with `inside`): the cells under 6 xi_c train
  and those above do not, measured as the fraction of cells that train on each side (mean
  accuracy over seeds >= TRAINS); shown where the two differ by at least 0.5, both sides having
  cells."""

  def shown(seed):
    under, above, n_under, n_above = _region(rows, seed)
    return bool(n_under and n_above and under - above >= 0.5)

  under, above, n_under, n_above = _region(rows, None)
  seeds = {s: shown(s) for s in sorted({r["seed"] for r in rows})}
  part = lambda frac, n: f"{frac:.0%} of {n} cells" if n else "no cells"
  return (
    f"trainable region follows depth = 6 xi_c: {part(under, n_under)} under the curve train, "
    f"{part(above, n_above)} above it (training accuracy >= {TRAINS:.0%}, mean over seeds; "
    f"{_seed_note(seeds)}): {'shown' if shown(None) else 'NOT shown'}"
  )


def _deepest_trained(acc: dict, init: str) -> int | None:
  depths = [d for (i, d), a in acc.items() if i == init and a >= TRAINS]
  return max(depths) if depths else None


def _orthogonal_wins(rows: Sequence[dict], seed: int | None) -> bool:
  acc = _means(rows, ("init", "depth"), seed)
  depths = {d for _, d in acc}
  trains = lambda init, d: acc.get((init, d), 0.0) >= TRAINS
  pairs = [(trains("delta_orthogonal", d), trains("gaussian", d)) for d in depths]
  return any(o and not g for o, g in pairs) and not any(g and not o for o, g in pairs)


def orthogonal_keeps_training(rows: Sequence[dict]) -> str:
  """Xiao et al.'s claim at criticality: at some depth the delta-orthogonal net trains (mean
  accuracy over seeds >= TRAINS) and the Gaussian one does not, and at no depth the reverse."""
  acc = _means(rows, ("init", "depth"))
  deepest = {i: _deepest_trained(acc, i) for i in INITS}
  seeds = {s: _orthogonal_wins(rows, s) for s in sorted({r["seed"] for r in rows})}
  text = ", ".join(f"{INIT_LABELS[i]} {deepest[i] or 'none'}" for i in INITS)
  return (
    f"the delta-orthogonal net keeps training where the Gaussian stops (deepest net with training "
    f"accuracy >= {TRAINS:.0%}, mean over seeds: {text}; {_seed_note(seeds)}): "
    f"{'shown' if _orthogonal_wins(rows, None) else 'NOT shown'}"
  )


def accuracy_lines(map_rows: Sequence[dict], iso_rows: Sequence[dict]) -> list[str]:
  """One line per diagram row of sigma_w2 and one for part 2: mean training accuracy by depth."""
  lines = []
  acc = _means(map_rows, ("sigma_w2", "depth"))
  six = {r["sigma_w2"]: r["six_xi_c"] for r in map_rows}
  for s in sorted({k[0] for k in acc}):
    cells = ", ".join(f"{d}: {a:.0%}" for (w, d), a in sorted(acc.items()) if w == s)
    lines.append(f"sigma_w2 {s:.2f} (6 xi_c = {six[s]:.0f}): training accuracy by depth {cells}")
  acc = _means(iso_rows, ("init", "depth"))
  for init in INITS:
    cells = ", ".join(f"{d}: {a:.0%}" for (i, d), a in sorted(acc.items()) if i == init)
    if cells:
      lines.append(f"at criticality, {INIT_LABELS[init]}: training accuracy by depth {cells}")
  return lines


# --------------------------------------------------------------------------------------------------
# The figures, each drawn from CSVs


def _edges(centres: Sequence[float], log: bool = False) -> np.ndarray:
  """Cell edges halfway between `centres` (geometric halfway on a log axis), the ends as far out
  as the nearest neighbour's edge."""
  c = np.log(np.asarray(centres, float)) if log else np.asarray(centres, float)
  if len(c) == 1:
    e = np.array([c[0] - 0.25, c[0] + 0.25]) if not log else c[0] + np.array([-0.3, 0.3])
  else:
    mid = (c[1:] + c[:-1]) / 2
    e = np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
  return np.exp(e) if log else e


def phase_diagram_figure(
  map_csv: str, theory_csv: str, path: str, caption: str | None = None
) -> str:
  """Schoenholz et al. 2017, Fig. 6 in our setting: the training accuracy of each (sigma_w2,
  depth) cell, mean over seeds (± std written in the cell), with depth = 6 xi_c(sigma_w2) drawn
  over it and the critical sigma_w2 dotted."""
  from cnn_depth.analysis import plotting

  rows, theory = plotting.read_rows(map_csv), plotting.read_rows(theory_csv)
  sigmas = sorted({r["sigma_w2"] for r in rows})
  depths = sorted({r["depth"] for r in rows})
  cells: dict[tuple, list[float]] = {}
  for r in rows:
    cells.setdefault((r["depth"], r["sigma_w2"]), []).append(r["train_accuracy"])
  mean = np.full((len(depths), len(sigmas)), np.nan)
  for (d, s), values in cells.items():
    mean[depths.index(d), sigmas.index(s)] = np.mean(values)
  xe, ye = _edges(sigmas), _edges(depths, log=True)
  fig, ax = plotting.plt.subplots(figsize=(7.5, 4.8))
  mesh = ax.pcolormesh(xe, ye, mean, vmin=0, vmax=1, cmap="viridis", shading="flat")
  for (d, s), values in cells.items():
    text = f"{100 * np.mean(values):.0f}" + (
      f"\n±{100 * np.std(values):.0f}" if len(values) > 1 else ""
    )
    dark = np.mean(values) < 0.6
    ax.text(s, d, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
  ts = np.array([t["sigma_w2"] for t in theory])
  ty = np.array([t["six_xi_c"] for t in theory], float)
  ax.plot(ts, np.minimum(ty, ye[-1] * 10), color="white", linewidth=2, label="depth = 6 xi_c")
  peak = int(np.argmax(ty)) if len(ty) else None
  if peak is not None and ty[peak] > ye[-1]:  # the critical point, where 6 xi_c diverges
    ax.axvline(ts[peak], color="white", linestyle=":", linewidth=1.2,
               label=f"critical sigma_w2 = {ts[peak]:.3f} (chi_1 = 1)")  # fmt: skip
  ax.set(xscale="linear", yscale="log", xlim=(xe[0], xe[-1]), ylim=(ye[0], ye[-1]))
  ax.set(xlabel="sigma_w2 (weight variance)", ylabel="depth (layers)")
  ax.set_yticks(depths, [str(d) for d in depths])
  ax.minorticks_off()
  sigma_b2 = rows[0]["sigma_b2"] if rows else theory[0]["sigma_b2"]
  seeds = len({r["seed"] for r in rows})
  ax.set_title(f"vanilla tanh nets, Gaussian kernels, sigma_b2 = {sigma_b2:g}")
  ax.legend(fontsize=7, loc="upper right", framealpha=0.6)
  fig.colorbar(mesh, ax=ax, label=f"training accuracy (mean of {seeds} seed{'s' * (seeds > 1)})")
  return _finish(fig, path, caption)


def isometry_figure(iso_csv: str, path: str, caption: str | None = None) -> str:
  """Xiao et al. 2018, Figs. 1 and 6 in our setting: at criticality, the training accuracy and
  loss after the same steps against depth, Gaussian vs delta-orthogonal kernels (mean ± std over
  seeds)."""
  from cnn_depth.analysis import plotting

  rows = plotting.read_rows(iso_csv)
  fig, axes = plotting.plt.subplots(1, 2, figsize=(11, 4))
  for ax, key, label in ((axes[0], "train_accuracy", "training accuracy"),
                         (axes[1], "train_loss", "training loss")):  # fmt: skip
    curves = plotting.seed_means(rows, ("init",), "depth", key)
    for n, init in enumerate(INITS):
      if (init,) in curves:
        x, mean, std, seeds = curves[(init,)]
        style = {"color": plotting.COLORS[n], "marker": "os"[n], "linewidth": 1.6}
        plotting.band(ax, x, mean, std, seeds, INIT_LABELS[init], **style)
    if key == "train_accuracy":
      ax.axhline(TRAINS, color="grey", linestyle=":", linewidth=1, label="trains (threshold)")
      ax.set_ylim(0, 1.02)
    ax.set(xscale="log", xlabel="depth (layers)", ylabel=label)
    depths = sorted({r["depth"] for r in rows})
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.minorticks_off()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
  if rows:
    r = rows[0]
    fig.suptitle(
      f"at criticality: tanh, sigma_w2 = {r['sigma_w2']:.4f}, sigma_b2 = {r['sigma_b2']:g}, "
      f"{r['steps']} steps",
      fontsize=10,
    )
  return _finish(fig, path, caption)


def _finish(fig, path: str, caption: str | None) -> str:
  """plotting.finish with the caption hanging below the axes (ours runs to three lines)."""
  from cnn_depth.analysis import plotting

  fig.tight_layout()
  if caption:
    fig.text(0.5, -0.01, caption, ha="center", va="top", fontsize=8, wrap=True)
  return plotting.save(fig, path)


# --------------------------------------------------------------------------------------------------
# The study


def caption(o: registry.Options) -> str:
  data = "embedded digits (1,500 train, 8x8)" if o.quick else "CIFAR-10 (50,000 train)"
  return (
    f"{data}; cifar_plain without BN, tanh, width {o.width}, batch 128, SGD momentum 0.9 at a "
    f"constant lr {o.lr:g}, weight decay 1e-4; training accuracy on the whole training set after "
    f"{o.map_steps} steps (diagram) and {o.steps} steps (criticality); "
    f"{registry.seeds_note(o.seeds)}; {registry.when()}"
  )


def analyse(o: registry.Options, runs_dir: str, out_dir: str) -> list[str]:
  planned = plan(o)
  map_rows, iso_rows, missing = measure(runs_dir, planned)
  if not map_rows and not iso_rows:
    raise ValueError(
      f"no finished run of the {len(planned)} of study phase_diagram under {runs_dir}"
    )
  from cnn_depth.analysis import results

  theory = theory_rows(sorted({*curve_sigma_w2s(o), *sigma_w2_grid(o)}), o.sigma_b2)
  paths = {name: os.path.join(out_dir, name) for name in
           ("phase_diagram.csv", "theory.csv", "isometry.csv")}  # fmt: skip
  results.write_rows(paths["theory.csv"], theory)
  out, lines = [], []
  if map_rows:
    map_rows = add_theory(map_rows, theory)
    results.write_rows(paths["phase_diagram.csv"], map_rows)
    figure = os.path.join(out_dir, "phase_diagram.png")
    out.append(
      phase_diagram_figure(paths["phase_diagram.csv"], paths["theory.csv"], figure, caption(o))
    )
    lines.append(region_follows_curve(map_rows))
  if iso_rows:
    results.write_rows(paths["isometry.csv"], iso_rows)
    figure = os.path.join(out_dir, "isometry.png")
    out.append(isometry_figure(paths["isometry.csv"], figure, caption(o)))
    lines.append(orthogonal_keeps_training(iso_rows))
  if missing:
    lines.append(
      f"{len(missing)} of {len(planned)} runs have not finished and are left out: "
      f"{', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}"
    )
  return out + accuracy_lines(map_rows, iso_rows) + lines


QUICK = {
  "seeds": [0, 1, 2],
  "depths": [8, 20, 50, 80],
  "deepest": 110,
  "sigma_w2_min": 0.5,
  "sigma_w2_max": 4.0,
  "sigma_w2_points": 8,
  "sigma_b2": 0.05,
  "iso_sigma_b2": 2.01e-5,
  "map_steps": 80,
  "steps": 150,
  "lr": 0.01,
  "width": 16,
}
FULL = {
  **QUICK,
  "depths": [8, 20, 50, 98, 200, 302],
  "deepest": 1202,
  "sigma_w2_points": 15,
  "map_steps": 2000,
  "steps": 10000,
  "width": 64,
}

STUDY = registry.register(
  registry.Study(
    name="phase_diagram",
    paper="Schoenholz et al. 2017 (Figs. 5-6) and Xiao et al. 2018 (Figs. 1, 6): the phase diagram "
    "of vanilla tanh nets and delta-orthogonal kernels at criticality",
    quick=QUICK,
    full=FULL,
    grid=grid,
    analyse=analyse,
  )
)
