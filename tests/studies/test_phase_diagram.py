"""The phase-diagram study (cnn_depth/studies/phase_diagram.py): its grid and options, the 6 xi_c
curve against known values and against the correlation map iterated layer by layer, the two
phenomena on hand-made accuracies, the CSVs from fake workdirs and the figures from hand-made CSVs
(first tier); one tiny real training of each kind of run measured and drawn (second tier)."""

import math
import os

import numpy as np
import pytest
from helpers.figures import assert_readme_quotes, nonempty

from cnn_depth import workdir as workdir_lib
from cnn_depth.analysis import plotting, results
from cnn_depth.models import meanfield
from cnn_depth.studies import phase_diagram, registry

STUDY = phase_diagram.STUDY


def options(**given):
  return STUDY.options(True, **{k: str(v) for k, v in given.items()})


# --------------------------------------------------------------------------------------------------
# The grid and its options


def test_quick_grid_has_every_cell_and_both_inits_at_criticality():
  o = options()
  specs, planned = phase_diagram.grid(o), phase_diagram.plan(o)
  sigmas = phase_diagram.sigma_w2_grid(o)
  assert sigmas == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
  iso = phase_diagram.iso_depths(o)
  assert iso == [*o.depths, o.deepest]
  assert len(specs) == len(o.seeds) * (len(sigmas) * len(o.depths) + 2 * len(iso))
  assert len({s.name for s in specs}) == len(specs)
  assert all(s.name.endswith(f"_s{m['seed']}") for s, m in planned)
  assert [m["seed"] for _, m in planned] == sorted(m["seed"] for _, m in planned)  # seed slowest
  first = specs[0]
  assert first.name == "gauss_w0.50_d8_s0"
  assert first.config == f"configs/quickstart.py:depth=8,residual=false,seed=0,steps={o.map_steps}"
  for field in ("model.norm=none", "model.init=gaussian", "model.activation=tanh",
                "model.sigma_w2=0.5", "model.sigma_b2=0.05", "learning_rate=0.01",
                "lr_boundaries=()", "eval_train_set=true", "on_nonfinite=skip"):  # fmt: skip
    assert f"--config.{field}" in first.overrides
  critical = meanfield.critical_sigma_w2("tanh", o.iso_sigma_b2)
  crit = [(s, m) for s, m in planned if m["part"] == "iso"]
  assert {m["init"] for _, m in crit} == {"gaussian", "delta_orthogonal"}
  assert {m["sigma_w2"] for _, m in crit} == {critical}
  assert abs(critical - 1.05) < 1e-4  # the point Xiao et al. train at
  assert f"--config.model.sigma_w2={critical!r}" in crit[0][0].overrides
  names = [s.name for s, m in crit if m["seed"] == 0 and m["depth"] == o.deepest]
  assert names == [f"crit_gauss_d{o.deepest}_s0", f"crit_orth_d{o.deepest}_s0"]


def test_full_grid_trains_cifar_at_a_thousand_layers():
  o = STUDY.options(False, data_dir="/data/cifar")
  specs = phase_diagram.grid(o)
  deepest = [s for s in specs if s.name.startswith("crit_orth_d1202")]
  assert len(deepest) == 3 and max(phase_diagram.iso_depths(o)) >= 1000
  assert deepest[0].config == "configs/cifar_resnet.py:depth=1202,residual=false,seed=0"
  assert "--config.dataset.data_dir=/data/cifar" in deepest[0].overrides
  assert f"--config.num_train_steps={o.steps}" in deepest[0].overrides


def test_options_narrow_the_grid_and_bad_ones_are_one_sentence():
  o = options(seeds="1", depths="8,20", deepest=0, sigma_w2_min=1, sigma_w2_max=2,
              sigma_w2_points=3)  # fmt: skip
  assert phase_diagram.sigma_w2_grid(o) == [1.0, 1.5, 2.0]
  assert len(phase_diagram.grid(o)) == 3 * 2 + 2 * 2
  for bad, message in (
    ({"sigma_w2_min": 0}, "sigma_w2_min=0.0"),
    ({"sigma_w2_min": 5}, "give no grid"),
    ({"sigma_w2_points": 0}, "give no grid"),
    ({"sigma_w2_points": 500}, "within 0.01"),
    ({"map_steps": 0}, "must both be >= 1"),
    ({"iso_sigma_b2": -1}, "must be >= 0"),
    ({"depths": "8,9"}, "option depths: depth 9 is not a valid depth"),
    ({"deepest": 100}, "option deepest: depth 100 is not a valid depth"),
  ):
    with pytest.raises(registry.StudyError, match=message):
      phase_diagram.grid(options(**bad))


# --------------------------------------------------------------------------------------------------
# The theory


def test_the_curve_diverges_at_the_critical_point_with_the_known_values():
  """tanh is critical at sigma_w2 = 1 without bias (phi'(0) = 1) and at 1.76 with sigma_b2 = 0.05
  (the point of Schoenholz et al.'s and Pennington et al.'s diagrams); there xi_c diverges like
  1 / |sigma_w2 - critical| from both sides: 10x closer, 10x deeper (within 2%)."""
  assert phase_diagram.critical_sigma_w2(0.0) == 1.0
  critical = phase_diagram.critical_sigma_w2(0.05)
  assert abs(critical - 1.761) < 1e-3
  offsets = (-1e-2, -1e-3, 0.0, 1e-3, 1e-2)
  six = [r["six_xi_c"] for r in phase_diagram.theory_rows([critical + d for d in offsets], 0.05)]
  assert six[2] > 1e6
  assert 9.8 < six[1] / six[0] < 10.2 and 9.8 < six[3] / six[4] < 10.2
  rows = phase_diagram.theory_rows([1.0], 0.05)
  assert rows[0]["six_xi_c"] == pytest.approx(6 * rows[0]["xi_c"])
  assert 21 < rows[0]["six_xi_c"] < 23  # ordered: chi_1 = 0.76, xi_c = 3.6 layers


def iterated_depth_scale(sigma_w2, sigma_b2, layers=30):
  """The depth scale measured by iterating the correlation map: the layers over which |c_l - c*|
  shrinks by e, from the last two layers' ratio (start 1e-3 below c* = 1 in the ordered phase,
  0.01 above c* in the chaotic one)."""
  p = meanfield.propagation("tanh", sigma_w2, sigma_b2)
  c = p.c_star - 1e-3 if p.c_star == 1 else p.c_star + 0.01
  deviations = []
  for _ in range(layers):
    c = meanfield.correlation_map(c, "tanh", sigma_w2, sigma_b2, q=p.q_star)
    deviations.append(abs(c - p.c_star))
  return -1 / math.log(deviations[-1] / deviations[-2])


@pytest.mark.parametrize("sigma_w2", [1.0, 3.0])
def test_xi_c_is_the_decay_depth_of_the_iterated_correlation_map(sigma_w2):
  """An independent check of the curve: iterating c' = f(c) layer by layer from near c*, the
  deviation decays as exp(-l / xi_c) within 0.1% (the ordered phase at 1.0, the chaotic at 3.0,
  where c* = 0.30)."""
  row = phase_diagram.theory_rows([sigma_w2], 0.05)[0]
  assert iterated_depth_scale(sigma_w2, 0.05) == pytest.approx(row["xi_c"], rel=1e-3)


# --------------------------------------------------------------------------------------------------
# The phenomena on hand-made accuracies


def cell(sigma_w2, depth, seed, acc, six=50.0, **extra):
  return dict(sigma_w2=sigma_w2, sigma_b2=0.05, depth=depth, seed=seed, steps=10,
              train_accuracy=acc, train_loss=1.0, skipped_steps=0, six_xi_c=six,
              inside=int(depth <= six), **extra)  # fmt: skip


def test_region_follows_the_curve_when_the_cells_under_it_train_and_those_above_do_not():
  rows = [cell(s, d, seed, 0.9 if d <= 50 else 0.1) for s in (1.0, 2.0) for d in (8, 80)
          for seed in (0, 1)]  # fmt: skip
  line = phase_diagram.region_follows_curve(rows)
  assert "100% of 2 cells under the curve train, 0% of 2 cells above" in line
  assert line.endswith("shown in seeds 0,1 of 0,1): shown")
  # seed 1's deep nets train too (100% vs 100%: NOT shown there); over seeds they do not (45%)
  rows = [{**r, "train_accuracy": 0.8} if r["seed"] == 1 else r for r in rows]
  line = phase_diagram.region_follows_curve(rows)
  assert "shown in seeds 0 of 0,1" in line and line.endswith(": shown")
  assert "0% of 2 cells above" in line
  deep = [{**r, "train_accuracy": 0.6} if not r["inside"] else r for r in rows]  # all train
  line = phase_diagram.region_follows_curve(deep)
  assert "100% of 2 cells above" in line and line.endswith("NOT shown")
  only_under = [r for r in rows if r["inside"]]
  line = phase_diagram.region_follows_curve(only_under)
  assert "no cells above it" in line and line.endswith("NOT shown")


def iso(init, depth, seed, acc):
  return dict(init=init, sigma_w2=1.05, sigma_b2=2e-5, depth=depth, seed=seed, steps=10,
              train_accuracy=acc, train_loss=1.0, skipped_steps=0)  # fmt: skip


def test_orthogonal_keeps_training_where_the_gaussian_stops():
  accs = {"delta_orthogonal": {8: 0.9, 50: 0.8, 158: 0.7}, "gaussian": {8: 0.9, 50: 0.6, 158: 0.1}}
  rows = [iso(i, d, s, a) for i, by in accs.items() for d, a in by.items() for s in (0, 1, 2)]
  line = phase_diagram.orthogonal_keeps_training(rows)
  assert "Gaussian 50, delta-orthogonal 158" in line
  assert line.endswith("shown in seeds 0,1,2 of 0,1,2): shown")
  both = [{**r, "train_accuracy": 0.9} for r in rows]
  assert phase_diagram.orthogonal_keeps_training(both).endswith("NOT shown")
  reverse = [{**r, "init": "gaussian" if r["init"] != "gaussian" else "delta_orthogonal"}
             for r in rows]  # fmt: skip
  line = phase_diagram.orthogonal_keeps_training(reverse)
  assert "Gaussian 158, delta-orthogonal 50" in line and line.endswith("NOT shown")


# --------------------------------------------------------------------------------------------------
# The CSVs from fake workdirs, the figures from hand-made CSVs


def fake_run(workdir, accuracy, status="done"):
  os.makedirs(workdir)
  workdir_lib.write_config(workdir, {"model": {"family": "cifar_plain", "depth": 8}})
  with workdir_lib.MetricsWriter(workdir) as w:
    w.write(5, train_loss=2.0, train_error=0.5, skipped_steps=1)
    w.write(10, train_loss=1.0, train_error=0.5, skipped_steps=2)
    w.write(10, train_eval_loss=0.5, train_eval_error=1 - accuracy)
  workdir_lib.write_status(workdir, status, step=10)


def test_measure_reads_each_finished_run_and_names_the_others(tmp_path):
  o = options(seeds="0", depths="8", deepest=0, sigma_w2_min=1, sigma_w2_max=2, sigma_w2_points=2,
              map_steps=10)  # fmt: skip
  planned = phase_diagram.plan(o)
  names = [s.name for s, _ in planned]
  assert names == ["gauss_w1.00_d8_s0", "gauss_w2.00_d8_s0", "crit_gauss_d8_s0", "crit_orth_d8_s0"]
  fake_run(str(tmp_path / names[0]), 0.75)
  fake_run(str(tmp_path / names[1]), 0.5, status="running")  # unfinished: left out, named
  fake_run(str(tmp_path / names[3]), 0.25)
  map_rows, iso_rows, missing = phase_diagram.measure(str(tmp_path), planned)
  assert missing == names[1:3]
  assert map_rows == [dict(sigma_w2=1.0, sigma_b2=0.05, depth=8, seed=0, steps=10,
                           train_accuracy=0.75, train_loss=0.5, skipped_steps=3)]  # fmt: skip
  assert iso_rows[0]["init"] == "delta_orthogonal" and iso_rows[0]["train_accuracy"] == 0.25
  theory = [dict(sigma_w2=1.0, six_xi_c=21.8), dict(sigma_w2=2.0, six_xi_c=151.3)]
  (row,) = phase_diagram.add_theory(map_rows, theory)
  assert (row["six_xi_c"], row["inside"]) == (21.8, 1)
  path = str(tmp_path / "map.csv")
  results.write_rows(path, [row])
  assert list(plotting.read_rows(path)[0]) == [
    "sigma_w2", "sigma_b2", "depth", "seed", "steps", "train_accuracy", "train_loss",
    "skipped_steps", "six_xi_c", "inside",
  ]  # fmt: skip


def test_figures_from_hand_made_csvs(tmp_path):
  sigmas, depths = [1.0, 2.0, 3.0], [8, 20, 50]
  six = {1.0: 22.0, 2.0: 151.0, 3.0: 54.0}
  rows = [cell(s, d, seed, 0.9 if d <= six[s] else 0.1 + 0.01 * seed, six[s])
          for seed in (0, 1) for s in sigmas for d in depths]  # fmt: skip
  theory = [dict(sigma_w2=s, sigma_b2=0.05, six_xi_c=v) for s, v in
            ((1.0, 22.0), (1.5, 95.0), (1.76, 7e7), (2.0, 151.0), (3.0, 54.0))]  # fmt: skip
  results.write_rows(str(tmp_path / "map.csv"), rows)
  results.write_rows(str(tmp_path / "theory.csv"), theory)
  nonempty(phase_diagram.phase_diagram_figure(str(tmp_path / "map.csv"),
                                              str(tmp_path / "theory.csv"),
                                              str(tmp_path / "map.png"), caption="c"))  # fmt: skip
  accs = {"delta_orthogonal": 0.9, "gaussian": 0.3}
  rows = [iso(i, d, s, a - 0.001 * d + 0.01 * s) for i, a in accs.items() for d in depths
          for s in (0, 1)]  # fmt: skip
  results.write_rows(str(tmp_path / "iso.csv"), rows)
  nonempty(phase_diagram.isometry_figure(str(tmp_path / "iso.csv"), str(tmp_path / "iso.png"), "c"))


# --------------------------------------------------------------------------------------------------
# Second tier: real training, measured and drawn


@pytest.mark.slow
def test_tiny_real_runs_are_measured_and_drawn(tmp_path):
  """One run of each kind (a diagram cell, Gaussian and delta-orthogonal at criticality), depth 8,
  width 4, 2 steps, trained in this process from the grid's own configs and overrides; the
  analysis writes the three CSVs and both figures and states both phenomena."""
  from cnn_depth import config as config_lib
  from cnn_depth import train

  o = options(seeds="0", depths="8", deepest=0, sigma_w2_min=1, sigma_w2_max=1,
              sigma_w2_points=1, map_steps=2, steps=2, width=4)  # fmt: skip
  runs, out = tmp_path / "runs", tmp_path / "out"
  for spec in phase_diagram.grid(o):
    config = config_lib.parse_overrides(
      config_lib.load_config_file(spec.config_path()), spec.overrides
    )
    assert (config.model.width, config.num_train_steps, config.lr_boundaries) == (4, 2, ())
    train.train_and_evaluate(config, str(runs / spec.name))
  lines = phase_diagram.analyse(o, str(runs), str(out))
  for name in ("phase_diagram.csv", "theory.csv", "isometry.csv"):
    assert (out / name).exists()
  nonempty(str(out / "phase_diagram.png"))
  nonempty(str(out / "isometry.png"))
  iso_rows = plotting.read_rows(str(out / "isometry.csv"))
  assert [r["init"] for r in iso_rows] == ["gaussian", "delta_orthogonal"]
  assert all(0 <= r["train_accuracy"] <= 1 and r["steps"] == 2 for r in iso_rows)
  (cell_row,) = plotting.read_rows(str(out / "phase_diagram.csv"))
  assert cell_row["six_xi_c"] == pytest.approx(21.76, abs=0.01) and cell_row["inside"] == 1
  theory = plotting.read_rows(str(out / "theory.csv"))
  assert np.isclose([t["sigma_w2"] for t in theory], 1.0).any()
  assert any(line.startswith("trainable region follows") for line in lines)
  assert any(line.startswith("the delta-orthogonal net keeps training") for line in lines)


def test_the_committed_quick_results_say_what_their_readme_says():
  """results/phase_diagram: the lines recomputed from the committed CSVs (the diagram's 96 runs
  and the 30 at criticality, 3 seeds) are the lines its README quotes, both claims shown."""
  out = os.path.join(registry.ROOT, "results", "phase_diagram")
  map_rows = plotting.read_rows(os.path.join(out, "phase_diagram.csv"))
  iso_rows = plotting.read_rows(os.path.join(out, "isometry.csv"))
  assert (len(map_rows), len(iso_rows)) == (96, 30)
  assert {r["seed"] for r in map_rows + iso_rows} == {0, 1, 2}
  lines = phase_diagram.accuracy_lines(map_rows, iso_rows) + [
    phase_diagram.region_follows_curve(map_rows),
    phase_diagram.orthogonal_keeps_training(iso_rows),
  ]
  assert_readme_quotes(out, lines)
  assert lines[-2].endswith(": shown") and lines[-1].endswith(": shown")
