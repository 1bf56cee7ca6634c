"""The Balduzzi et al. 2017 study's figure (cnn_depth/studies/balduzzi2017.py): the gradient
correlation curves from the CSV the shattered-gradients analysis writes (tiny made-up values,
written by its own CSV writer; the quick mode end to end: tests/scripts/test_reproduce.py)."""

import numpy as np
from helpers.figures import NETS, nonempty

from cnn_depth.analysis import shattered
from cnn_depth.studies import balduzzi2017


def test_gradient_correlation_figure(tmp_path):
  curves = {
    (m, d, s, t): np.exp(-np.arange(9) / (d * (2 if m == "cifar_resnet" else 0.5) * (1 + s)))
    for m, d in NETS
    for s in (0, 1)
    for t in (False, True)
  }
  path = str(tmp_path / "corr.csv")
  shattered.write_correlation_csv(path, curves)
  nonempty(balduzzi2017.gradient_correlation(path, str(tmp_path / "corr.png"), lag=4, caption="c"))


def test_shattering_is_shown_when_the_resnet_correlates_more_at_init_in_every_pair():
  from cnn_depth.studies import balduzzi2017

  curve = lambda v: np.full(9, v)
  results = {
    ("cifar_resnet", 8, 0, False): curve(0.9),
    ("cifar_plain", 8, 0, False): curve(0.5),
    ("cifar_resnet", 8, 0, True): curve(0.1),  # trained: not the phenomenon's
    ("cifar_plain", 8, 0, True): curve(0.6),
  }
  assert balduzzi2017.shattering_shown(results, 4).endswith("1 depth x seed pairs): shown")
  results[("cifar_plain", 20, 0, False)] = curve(0.95)
  results[("cifar_resnet", 20, 0, False)] = curve(0.9)
  assert balduzzi2017.shattering_shown(results, 4).endswith("NOT shown")
