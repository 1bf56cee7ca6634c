"""Each figure of the li2018 and balduzzi2017 studies from the CSV its study writes (tiny made-up
values, written by the studies' own CSV writers), and the seed averaging behind them."""

import os

import numpy as np

from cnn_depth.analysis import hessian, landscape, plotting, shattered
from cnn_depth.studies import balduzzi2017, li2018

NETS = [("cifar_resnet", 8), ("cifar_plain", 8), ("cifar_resnet", 20), ("cifar_plain", 20)]


def nonempty(png):
  assert os.path.getsize(png) > 5000
  assert os.path.getsize(png[:-4] + ".pdf") > 1000


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


def test_seed_means_and_types(tmp_path):
  rows = {("cifar_resnet", 8, s): [(0, 1.0 + s, -0.5), (200, 3.0 + s, -1.0)] for s in (0, 1, 2)}
  hessian.write_hessian_csv(str(tmp_path / "h.csv"), rows)
  read = plotting.read_rows(str(tmp_path / "h.csv"))
  assert (
    read[0]["step"] == 0 and isinstance(read[0]["step"], int) and read[0]["model"] == "cifar_resnet"
  )
  means = plotting.seed_means(read, ("model", "depth"), "step", "lambda_max")
  x, mean, std, n = means[("cifar_resnet", 8)]
  assert list(x) == [0, 200] and n == 3
  np.testing.assert_allclose(mean, [2.0, 4.0])
  np.testing.assert_allclose(std, np.std([0, 1, 2]))
  assert plotting.net_name("cifar_plain", 44) == "plain-44"
