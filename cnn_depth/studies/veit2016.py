"""Veit et al. 2016, "Residual networks behave like ensembles of relatively shallow networks":
lesion studies (§4, Figs. 3 and 5) and the gradient carried by paths of each length (§5, Fig. 6).

Quick mode: the embedded digits, ResNet-32 vs its plain twin and VGG-16, 3 seeds, 800 steps. Full
mode: ResNet-110 on CIFAR-10 vs plain-20 and VGG-16 (Veit et al. use a 15-layer VGG; deleting a VGG
layer replaces it by the identity where its input and output shapes agree), 1,000 sampled block
sets per path length. Every net is trained once per seed; the analyses read the checkpoints.

* `lesion_study`: each block deleted in turn (lesion_single.csv/png), k random blocks deleted
  (lesion_multi.csv/png), and for residual nets reorderings (lesion_reorder.csv) — the rows per
  (net, seed), the figures the mean over seeds with its spread.
* `path_gradient_study`: the gradient magnitude at the input carried by paths of each length
  (path_gradients.csv/png, path_gradients_by_seed.csv).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from cnn_depth import lazy_import
from cnn_depth.studies import registry

models = lazy_import("cnn_depth.models")
lesion = lazy_import("cnn_depth.analysis.lesion")
paths = lazy_import("cnn_depth.analysis.paths")
plotting = lazy_import("cnn_depth.analysis.plotting")
runs = lazy_import("cnn_depth.analysis.runs")


def net_label(config: dict) -> str:
  """The registry's name of a run's net, e.g. 'ResNet-32'."""
  model = config["model"]
  return models.registry.get(model["family"]).net_label(model["depth"], model)


def _error_function(model, variables, ds, batch_size: int):
  """The test error as a function of the gates, over an in-memory or a streamed test split."""
  batch = {"batch_size": batch_size} if batch_size else {}
  if getattr(ds, "streamed", False):
    return lesion.StreamedErrorFunction(model, variables, ds, **batch)
  return lesion.make_error_fn(
    model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std, **batch
  )


def _run_seed(config: dict) -> int:
  """The seed a run was trained with (0 where its config names none)."""
  return int(config.get("seed", 0))


def _lesion_run(model, variables, ds, options: dict) -> tuple:
  """(single, multi, reorder) measurements of one trained net; multi and reorder None where not
  asked for (reorder: or not applicable)."""
  streamed = getattr(ds, "streamed", False)  # ImageNet: its validation split, read once
  error = _error_function(model, variables, ds, options["batch_size"])
  intact, errors = lesion.single_block_lesion(error, model.num_blocks)
  single, multi, reorder = (intact, errors, models.downsampling_blocks(model)), None, None
  samples, seed = options["samples"], options["seed"]
  if options["multi"]:
    ks = list(range(1, (min(options["k_max"], model.num_blocks) or model.num_blocks) + 1))
    multi = (ks, *lesion.multi_block_lesion(error, model.num_blocks, ks, samples, seed))
  # Reordering a plain net is not one of the paper's experiments; nor, here, of a streamed set.
  if options["reorder"] and model.residual and not streamed:
    reorder = lesion.reorder_lesion(
      model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std,
      options["max_swaps"], samples, seed,
    )  # fmt: skip
  return single, multi, reorder


def _seed_summary(by_seed: dict) -> dict:
  """{'intact', 'errors' (means over seeds), 'downsampling', 'by_seed': {seed: {'intact',
  'errors'}}} of one net's single-block lesions {seed: (intact, errors, downsampling)}."""
  intact = np.asarray([float(v[0]) for v in by_seed.values()])
  errors = np.asarray([np.asarray(v[1], np.float64) for v in by_seed.values()])
  return {
    "intact": float(intact.mean()),
    "errors": errors.mean(0),
    "downsampling": next(iter(by_seed.values()))[2],
    "by_seed": {s: {"intact": i, "errors": e} for s, i, e in zip(by_seed, intact, errors)},
  }


def lesion_study(
  workdirs: Sequence[str],
  out_dir: str,
  labels: Sequence[str | None] | None = None,
  *,
  multi: bool = True,
  reorder: bool = True,
  k_max: int = 0,
  samples: int = 20,
  max_swaps: int = 10,
  seed: int = 0,
  caption: str | None = None,
  data_dir: str | None = None,
  batch_size: int = 0,
) -> dict:
  """Veit et al. 2016 §4 on every workdir's test set, all nets in the same files of `out_dir`.

  Each block deleted in turn (lesion_single.csv/png, Fig. 3); with `multi`, k random blocks deleted
  for k = 1..`k_max` (0: all), `samples` sets each (lesion_multi.csv/png, Fig. 5a); with `reorder`,
  for residual nets, `samples` reorderings by up to `max_swaps` swaps of same-shape blocks
  (lesion_reorder.csv, drawn into lesion_multi.png, Fig. 5b). `seed` seeds that sampling.

  Workdirs that share a label (given, or the net's name) are seeds of one net, the seed read from
  each run's config: the CSVs hold a row per seed (their seed column), the figures the mean over
  seeds with its spread. A second run of a label with a seed already seen is a different net of the
  same name: its folder name is appended to the label. Returns {label: {'intact', 'errors' (means
  over seeds), 'downsampling', 'by_seed': {seed: {'intact', 'errors'}}}}.
  """
  labels = list(labels or [None] * len(workdirs))
  if len(labels) != len(workdirs):
    raise ValueError(f"{len(labels)} labels for {len(workdirs)} workdirs")
  options = dict(
    multi=multi, reorder=reorder, k_max=k_max, samples=samples, max_swaps=max_swaps, seed=seed,
    batch_size=batch_size,
  )  # fmt: skip
  single, multi_rows, reorder_rows = {}, {}, {}
  for workdir, label in zip(workdirs, labels):
    model, variables, config, ds = runs.load_trained(workdir, data_dir, streamed=True)
    label, run_seed = label or net_label(config), _run_seed(config)
    if run_seed in single.get(label, {}):
      label = f"{label} ({os.path.basename(os.path.normpath(workdir))})"
    measured = _lesion_run(model, variables, ds, options)
    for table, value in zip((single, multi_rows, reorder_rows), measured):
      if value is not None:
        table.setdefault(label, {})[run_seed] = value
  lesion.write_single_csv(os.path.join(out_dir, "lesion_single.csv"), single)
  plotting.lesion_single(single, os.path.join(out_dir, "lesion_single.png"), caption=caption)
  if multi:
    lesion.write_multi_csv(os.path.join(out_dir, "lesion_multi.csv"), multi_rows)
    if reorder_rows:
      lesion.write_reorder_csv(os.path.join(out_dir, "lesion_reorder.csv"), reorder_rows)
    plotting.lesion_multi(
      multi_rows, os.path.join(out_dir, "lesion_multi.png"), reorder_rows or None, caption=caption
    )
  return {label: _seed_summary(by_seed) for label, by_seed in single.items()}


def _path_gradients_by_seed(workdirs: Sequence[str], batch: int, options: dict):
  """(label, num_blocks, {seed: (mean, std)}) of the seeds of one residual net; ValueError where
  the workdirs are not seeds of one net."""
  label, num_blocks, by_seed = None, None, {}
  for workdir in workdirs:
    model, variables, config, ds = runs.load_trained(workdir)
    this, run_seed = net_label(config), _run_seed(config)
    same_net = label is None or (this, model.num_blocks) == (label, num_blocks)
    if not same_net or run_seed in by_seed:
      raise ValueError(
        f"the workdirs must be seeds of one net: {workdir} holds {this} seed {run_seed}, "
        f"after {label} seeds {list(by_seed)}"
      )
    label, num_blocks = this, model.num_blocks
    rows = slice(0, batch)
    by_seed[run_seed] = paths.path_gradient_norms(
      model, variables, ds.train_images[rows], ds.train_labels[rows], ds.mean, ds.std,
      list(range(num_blocks + 1)), **options,
    )  # fmt: skip
  return label, num_blocks, by_seed


def path_gradient_study(
  workdirs: str | Sequence[str],
  out_dir: str,
  *,
  samples: int = 100,
  batch: int = 128,
  share: float = 0.9,
  seed: int = 0,
  caption: str | None = None,
) -> dict:
  """Veit et al. 2016 §5 on a residual workdir, or the seeds of one residual net: the gradient
  magnitude at the input carried by paths of each length, on its first `batch` training images
  (path_gradients.csv/png, Fig. 6; path_gradients_by_seed.csv).

  With several seeds the CSV and figure hold the mean over seeds, and the spread over seeds
  (`paths.write_csv`). Returns {'label', 'num_blocks', 'effective' (the shortest range of path
  lengths holding `share` of the total gradient, of the mean over seeds), 'mean' (over seeds),
  'std' (over the sampled paths, within a seed), 'seed_std' (of the per-seed means), 'by_seed':
  {seed: {'mean', 'std', 'effective'}}}; a plain net, or workdirs of different nets or the same
  seed, raise ValueError.
  """
  workdirs = [workdirs] if isinstance(workdirs, (str, os.PathLike)) else list(workdirs)
  if not workdirs:
    raise ValueError("no workdir")
  label, n, by_seed = _path_gradients_by_seed(workdirs, batch, dict(samples=samples, seed=seed))
  ks, counts = list(range(n + 1)), paths.path_counts(n)
  means = np.asarray([m for m, _ in by_seed.values()], np.float64)
  stds = np.asarray([s for _, s in by_seed.values()], np.float64)
  mean, seed_std = means.mean(0), means.std(0)
  std = stds[0] if len(stds) == 1 else np.sqrt(np.mean(np.square(stds), 0))
  effective = paths.effective_paths(counts, mean, share=share)
  paths.write_csv(
    os.path.join(out_dir, "path_gradients.csv"), ks, counts, mean, std, seed_std, len(by_seed)
  )
  paths.write_seed_csv(os.path.join(out_dir, "path_gradients_by_seed.csv"), ks, counts, by_seed)
  plotting.path_gradients(
    ks, counts, means, stds, effective, os.path.join(out_dir, "path_gradients.png"),
    caption=caption, samples=samples, net=label,
  )  # fmt: skip
  return {
    "label": label,
    "num_blocks": n,
    "effective": effective,
    "mean": mean,
    "std": std,
    "seed_std": seed_std,
    "by_seed": {
      s: {"mean": m, "std": d, "effective": paths.effective_paths(counts, m, share=share)}
      for s, m, d in zip(by_seed, means, stds)
    },
  }


def lesion_lines(single: dict) -> list[str]:
  """One line per (net, seed) of `lesion_study`'s result, and the mean of a net's seeds."""

  def line(intact, errors) -> str:
    return (
      f"intact test error {100 * intact:.2f}%, single-block deletions "
      f"{100 * errors.min():.2f}-{100 * errors.max():.2f}% (mean {100 * errors.mean():.2f}%)"
    )

  out = []
  for label, r in single.items():
    for seed, one in r["by_seed"].items():
      out.append(f"{label}, seed {seed}: {line(one['intact'], one['errors'])}")
    if len(r["by_seed"]) > 1:
      out.append(f"{label}, mean of {len(r['by_seed'])} seeds: {line(r['intact'], r['errors'])}")
  return out


def path_lines(result: dict, share: float) -> list[str]:
  """The effective path lengths of `path_gradient_study`'s result, of the mean and per seed."""
  lo, hi = result["effective"]
  pct, seeds = f"{100 * share:.0f}%", result["by_seed"]
  mean = f", mean of {len(seeds)} seeds" if len(seeds) > 1 else ""
  out = [
    f"{result['label']} ({result['num_blocks']} blocks{mean}): {pct} of the gradient in paths "
    f"of length {lo}-{hi}"
  ]
  if len(seeds) > 1:
    for seed, one in seeds.items():
      lo, hi = one["effective"]
      out.append(f"  seed {seed}: {pct} of the gradient in paths of length {lo}-{hi}")
  return out


def _nets(o: registry.Options, seed: int) -> list[tuple[str, str, str]]:
  """(label, run name, config) of the ResNet, its single-path twin and the VGG of one seed."""
  if o.quick:
    digits = f"seed={seed},steps={o.steps}"
    return [
      (f"ResNet-{o.depth}", f"resnet{o.depth}_s{seed}",
       f"configs/quickstart.py:depth={o.depth},residual=true,{digits}"),
      (f"plain-{o.depth}", f"plain{o.depth}_s{seed}",
       f"configs/quickstart.py:depth={o.depth},residual=false,{digits}"),
      ("VGG-16", f"vgg16_s{seed}", f"configs/vgg_digits.py:depth=16,{digits}"),
    ]  # fmt: skip
  return [
    (f"ResNet-{o.depth}", f"resnet{o.depth}_s{seed}",
     f"configs/cifar_resnet.py:depth={o.depth},seed={seed}"),
    ("plain-20", f"plain20_s{seed}",
     f"configs/cifar_resnet.py:depth=20,residual=false,seed={seed}"),
    ("VGG-16", f"vgg16_s{seed}", f"configs/cifar_vgg.py:depth=16,seed={seed}"),
  ]  # fmt: skip


def grid(o: registry.Options) -> list[registry.RunSpec]:
  overrides = () if o.quick else (f"--config.dataset.data_dir={o.data_dir}",)
  overrides += (f"--config.num_train_steps={o.steps}",) if o.steps and not o.quick else ()
  return [
    registry.RunSpec(name, config, overrides)
    for seed in o.seeds
    for _, name, config in _nets(o, seed)
  ]


def analyse(o: registry.Options, runs_dir: str, out_dir: str) -> list[str]:
  """One lesion study over every net and seed, one path-gradient study over the ResNet's seeds."""
  by_net: dict[str, list[str]] = {}
  for seed in o.seeds:
    for label, name, _ in _nets(o, seed):
      by_net.setdefault(label, []).append(os.path.join(runs_dir, name))
  labels = [label for label, dirs in by_net.items() for _ in dirs]
  workdirs = [d for dirs in by_net.values() for d in dirs]
  data, nets, test_images = (
    ("embedded digits", f"width 16, batch 128, {o.steps} steps", 297) if o.quick
    else ("CIFAR-10", "batch 128, 64k iterations", "10,000")
  )  # fmt: skip
  seeds, when = registry.seeds_note(o.seeds), registry.when()
  single = lesion_study(
    workdirs, out_dir, labels, samples=o.lesion_samples,
    caption=f"{data}, {nets}, {seeds}; test error on the {test_images} test images, "
    f"{o.lesion_samples} random sets per k; {when}",
  )  # fmt: skip
  resnet = next(iter(by_net))
  result = path_gradient_study(
    by_net[resnet], out_dir, samples=o.samples, batch=128,
    caption=f"{resnet} on {data} ({nets}, {seeds}); gradients on 128 training images, "
    f"{o.samples} sampled paths per length; {when}",
  )  # fmt: skip
  return lesion_lines(single) + path_lines(result, 0.9) + [resilience_shown(single, resnet)]


def resilience_shown(single: dict, resnet: str) -> str:
  """The phenomenon: deleting one block costs the ResNet less (mean over its blocks) than it costs
  each single-path net, in every seed."""
  mean = lambda r, s: float(np.mean(r["by_seed"][s]["errors"]))
  others = [label for label in single if label != resnet]
  seeds = list(single[resnet]["by_seed"])
  pairs = [
    (mean(single[resnet], s), mean(single[o], s), o)
    for o in others
    for s in seeds
    if s in single[o]["by_seed"]
  ]
  shown = bool(pairs) and all(r < p for r, p, _ in pairs)
  return (
    f"resilience to single deletions ({resnet}'s mean error below {', '.join(others)}'s, "
    f"{len(pairs)} net x seed pairs): {'shown' if shown else 'NOT shown'}"
  )


STUDY = registry.register(
  registry.Study(
    name="veit2016",
    paper="Veit et al. 2016, Residual networks behave like ensembles (Figs. 3, 5, 6)",
    quick={"seeds": [0, 1, 2], "steps": 800, "depth": 32, "samples": 100, "lesion_samples": 20},
    full={"seeds": [0], "steps": 0, "depth": 110, "samples": 1000, "lesion_samples": 20},
    grid=grid,
    analyse=analyse,
  )
)
