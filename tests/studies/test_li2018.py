"""Each figure of the Li et al. 2018 study (cnn_depth/studies/li2018.py) from the CSV its study
writes (tiny made-up values, written by the analyses' own CSV writers): the 1-D and 2-D loss
landscapes, the Hessian's extreme eigenvalues and its spectral density (the seed averaging behind
them: tests/analysis/test_plotting.py; the quick mode end to end: tests/scripts/test_reproduce.py).
"""

import numpy as np
from helpers.figures import NETS, nonempty

from cnn_depth.analysis import hessian, landscape
from cnn_depth.studies import li2018


def test_landscape_figures(tmp_path):
  alphas = np.linspace(-1, 1, 5)
  one = {
    (m, d, s): (alphas, 0.1 + alphas**2 * d, 0.05 + 0.4 * alphas**2)
    for m, d in NETS
    for s in (0, 1)
  }
  landscape.write_landscape_1d_csv(str(tmp_path / "l1.csv"), one)
  nonempty(li2018.landscape_1d(str(tmp_path / "l1.csv"), str(tmp_path / "l1.png")))
  a, b = np.meshgrid(alphas, alphas, indexing="ij")
  two = {(m, d, 0): (alphas, alphas, 0.1 + a**2 + 2 * b**2) for m, d in NETS}
  landscape.write_landscape_2d_csv(str(tmp_path / "l2.csv"), two)
  nonempty(li2018.landscape_2d(str(tmp_path / "l2.csv"), str(tmp_path / "l2.png"), seed=0))


def test_hessian_figures(tmp_path):
  rows = {
    (m, d, s): [(t, 10.0 + t + s, -0.1 * (1 + t)) for t in (0, 200, 400)]
    for m, d in NETS
    for s in (0, 1)
  }
  hessian.write_hessian_csv(str(tmp_path / "h.csv"), rows)
  nonempty(li2018.hessian(str(tmp_path / "h.csv"), str(tmp_path / "h.png")))
  grid = np.linspace(-1, 12, 50)
  density = {
    (m, d, s): [(400, grid + s, np.exp(-((grid - 3) ** 2)) / np.sqrt(np.pi))]
    for m, d in NETS
    for s in (0, 1)
  }
  hessian.write_density_csv(str(tmp_path / "d.csv"), density)
  nonempty(li2018.hessian_density(str(tmp_path / "d.csv"), str(tmp_path / "d.png")))


def test_sharpness_is_shown_when_the_deepest_plain_net_is_sharper_in_every_seed():
  from cnn_depth.studies import li2018

  extremes = {
    ("cifar_plain", 20, 0): [(0, 9.0, -1.0), (4, 50.0, -1.0)],
    ("cifar_resnet", 20, 0): [(0, 9.0, -1.0), (4, 10.0, -1.0)],
    ("cifar_plain", 8, 0): [(4, 1.0, -1.0)],  # not the deepest: not compared
    ("cifar_resnet", 8, 0): [(4, 5.0, -1.0)],
  }
  assert li2018.sharpness_shown(extremes).endswith("at the last step, 1 seeds): shown")
  extremes[("cifar_plain", 20, 1)] = [(4, 10.0, -1.0)]
  extremes[("cifar_resnet", 20, 1)] = [(4, 20.0, -1.0)]
  assert li2018.sharpness_shown(extremes).endswith("NOT shown")
