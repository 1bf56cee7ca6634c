"""The Huang et al. 2016 study's figure and CSV (cnn_depth/studies/huang2016.py): the test error
curves of constant and stochastic depth, drawn and written as the mean and std over seeds, from tiny
fake workdirs (plotting.error_curves draws the same groups; the quick mode end to end:
tests/scripts/test_reproduce.py)."""

import numpy as np
from helpers.figures import fake_run, nonempty

from cnn_depth.analysis import plotting, results
from cnn_depth.studies import huang2016


def test_stochastic_depth_curves_and_csv(tmp_path):
  runs = {
    "constant depth": fake_run(tmp_path / "c", "cifar_resnet", 20, 0.1),
    "stochastic depth": fake_run(tmp_path / "s", "cifar_resnet", 20, 0.05),
  }
  for run in runs.values():
    for r in run.metrics:
      r["train_loss"] = 1.0 / r["step"]
  nonempty(huang2016.stochastic_depth_curves(runs, str(tmp_path / "huang.png"), steps_per_epoch=10))
  huang2016.write_curves_csv(runs, str(tmp_path / "curves.csv"), steps_per_epoch=10)
  lines = (tmp_path / "curves.csv").read_text().splitlines()
  assert lines[0] == "variant,epoch,test_error,test_error_std,seeds"
  assert lines[1].startswith("constant depth,1.0,")
  assert len(lines) == 1 + 2 * 10


def test_seeds_drawn_as_mean_and_std(tmp_path):
  """Three seeds of a net: mean_curve averages them step by step, the figure draws the band and
  curves.csv gains the std and the seed count."""
  seeds = [
    fake_run(tmp_path / f"s{i}", "cifar_resnet", 20, e) for i, e in enumerate((0.1, 0.2, 0.3))
  ]
  steps, mean, std = results.mean_curve(seeds, "test_error")
  assert list(steps) == list(range(10, 110, 10))
  np.testing.assert_allclose(mean, 0.25)
  np.testing.assert_allclose(std, np.std([0.15, 0.25, 0.35]))
  for run in seeds:
    for r in run.metrics:
      r["train_loss"] = 1.0 / r["step"]
  groups = {"constant depth": seeds, "one seed": seeds[0]}
  nonempty(huang2016.stochastic_depth_curves(groups, str(tmp_path / "h.png"), steps_per_epoch=10))
  nonempty(plotting.error_curves([("ResNets", groups)], str(tmp_path / "e.png")))
  huang2016.write_curves_csv(groups, str(tmp_path / "curves.csv"), steps_per_epoch=10)
  lines = (tmp_path / "curves.csv").read_text().splitlines()
  assert lines[0] == "variant,epoch,test_error,test_error_std,seeds"
  assert lines[1].startswith("constant depth,1.0,0.25,0.0816") and lines[1].endswith(",3")
  assert lines[-1].endswith(",0.0,1")


def test_regularisation_is_shown_only_with_lower_test_error_and_higher_training_loss(tmp_path):
  def variant(name, test_error, train_loss):
    run = fake_run(tmp_path / name, "cifar_resnet", 20, test_error - 0.05)
    for r in run.metrics:
      r["train_loss"] = train_loss
    return [run]

  constant = variant("c", 0.10, 0.01)
  assert huang2016.regularisation_shown(
    {"constant": constant, "stochastic": variant("s", 0.08, 0.05)}
  ).endswith(": shown")
  assert huang2016.regularisation_shown(
    {"constant": constant, "stochastic": variant("w", 0.12, 0.05)}
  ).endswith("NOT shown")
