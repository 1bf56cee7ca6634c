"""The Veit et al. 2016 study (cnn_depth/studies/veit2016.py) over seeds, with known numbers in
place of the measurements: the lesion study groups the workdirs of a label by their seed, the path
gradient study averages its seeds (the measurements themselves: tests/analysis/test_lesion.py,
tests/analysis/test_paths.py; the quick mode end to end: tests/scripts/test_reproduce.py)."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
from helpers.nets import random_variables

from cnn_depth import models


@pytest.fixture(scope="module")
def net():
  """ResNet-14 at width 4 (6 blocks) on 50 random 16x16 images (batches of 16: the last is
  padded)."""
  model = models.cifar_resnet(14, width=4)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (50, 16, 16, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, 50).astype(np.int32)
  return model, random_variables(model, (16, 16, 3)), images, labels


@pytest.fixture(scope="module")
def resnet():
  model = models.cifar_resnet(14, width=4)
  images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
  labels = np.arange(8) % 10
  return model, random_variables(model, (16, 16, 3)), images, labels


def test_lesion_study_groups_the_seeds_of_a_label(tmp_path, net, monkeypatch):
  """Workdirs sharing a label are that net's seeds (config.seed): known per-block errors per seed
  give the CSV rows, the means and the per-seed numbers. A label's seed seen twice: another net."""
  from types import SimpleNamespace

  from cnn_depth.studies import veit2016 as studies

  model = net[0]  # 6 blocks
  # workdir -> (seed, error offset); a deleted set S costs 0.1 |S| + 0.01 sum(S).
  fake = {"r/s0": (0, 0.1), "r/s1": (1, 0.3), "r/other": (0, 0.5), "p/s2": (2, 0.0)}

  def load_trained(workdir, data_dir=None, streamed=False):
    seed, offset = fake[workdir]
    return model, {"offset": offset}, {"seed": seed}, SimpleNamespace(streamed=False)

  def error_function(model, variables, ds, batch_size):
    def error(gates=None, variables_=None):
      deleted = np.flatnonzero(np.asarray(gates) == 0)
      return variables["offset"] + 0.1 * len(deleted) + 0.01 * float(np.sum(deleted))

    return error

  monkeypatch.setattr(studies.runs, "load_trained", load_trained)
  monkeypatch.setattr(studies, "_error_function", error_function)
  out = studies.lesion_study(list(fake), str(tmp_path), ["R", "R", "R", "P"], reorder=False)
  assert list(out) == ["R", "R (other)", "P"]
  r = out["R"]
  assert list(r["by_seed"]) == [0, 1] and r["intact"] == pytest.approx(0.2)
  np.testing.assert_allclose(r["errors"], 0.3 + 0.01 * np.arange(6))
  np.testing.assert_allclose(r["by_seed"][1]["errors"], 0.4 + 0.01 * np.arange(6))
  assert r["by_seed"][0]["intact"] == pytest.approx(0.1)
  assert list(out["R (other)"]["by_seed"]) == [0] and list(out["P"]["by_seed"]) == [2]

  with open(tmp_path / "lesion_single.csv") as f:
    single = list(csv.DictReader(f))
  assert [(row["model"], row["seed"]) for row in single if row["block"] == "-1"] == [
    ("R", "0"),
    ("R", "1"),
    ("R (other)", "0"),
    ("P", "2"),
  ]
  with open(tmp_path / "lesion_multi.csv") as f:
    multi = list(csv.DictReader(f))
  # Every set of k of the 6 blocks is evaluated (no more than 20): the mean of 0.01 sum(S) is
  # 0.025 k.
  offset = {("R", "0"): 0.1, ("R", "1"): 0.3, ("R (other)", "0"): 0.5, ("P", "2"): 0.0}
  for row in multi:
    expect = offset[row["model"], row["seed"]] + 0.125 * int(row["k"])
    assert float(row["test_error_mean"]) == pytest.approx(expect)
  assert len(multi) == 4 * 6
  for name in ("lesion_single.png", "lesion_multi.png"):
    assert os.path.getsize(tmp_path / name) > 5000


def test_path_gradient_study_over_seeds(tmp_path, resnet, monkeypatch):
  """Two seeds whose per-length magnitudes are known (s * 0.5**k, std 0.1 s over the sampled paths):
  the mean over seeds, the std over seeds and the pooled within-seed std, in the CSVs and the
  result; workdirs of two nets, or one seed twice, are refused."""
  import os
  from types import SimpleNamespace

  from cnn_depth.studies import veit2016 as studies

  model = resnet[0]  # ResNet-14: 6 blocks
  fake = {"s0": (0, 1.0, 14), "s1": (1, 3.0, 14), "again": (1, 3.0, 14), "r20": (2, 1.0, 20)}
  data = SimpleNamespace(
    train_images=np.zeros((4, 16, 16, 3), np.uint8), train_labels=np.zeros(4), mean=0, std=1
  )

  def load_trained(workdir):
    seed, scale, depth = fake[workdir]
    config = {"seed": seed, "model": {"family": "cifar_resnet", "depth": depth}}
    return model, {"scale": scale}, config, data

  def norms(model, variables, images, labels, mean, std, ks, samples, seed):
    s = variables["scale"]
    return s * 0.5 ** np.asarray(ks, np.float64), np.full(len(ks), 0.1 * s)

  monkeypatch.setattr(studies.runs, "load_trained", load_trained)
  monkeypatch.setattr(studies.paths, "path_gradient_norms", norms)
  out = studies.path_gradient_study(["s0", "s1"], str(tmp_path), samples=5)
  ks = np.arange(7)
  np.testing.assert_allclose(out["mean"], 2.0 * 0.5**ks)
  np.testing.assert_allclose(out["seed_std"], 0.5**ks)
  np.testing.assert_allclose(out["std"], np.sqrt((0.1**2 + 0.3**2) / 2))
  assert out["label"] == "ResNet-14" and out["num_blocks"] == 6 and list(out["by_seed"]) == [0, 1]
  assert out["by_seed"][1]["effective"] == out["effective"]  # a scaled magnitude: the same paths
  with open(tmp_path / "path_gradients.csv") as f:
    rows = list(csv.DictReader(f))
  assert [float(r["grad_norm_mean"]) for r in rows] == pytest.approx(list(2.0 * 0.5**ks))
  assert [float(r["grad_norm_seed_std"]) for r in rows] == pytest.approx(list(0.5**ks))
  assert {r["seeds"] for r in rows} == {"2"}
  with open(tmp_path / "path_gradients_by_seed.csv") as f:
    rows = list(csv.DictReader(f))
  assert [(r["seed"], float(r["grad_norm_mean"])) for r in rows if r["k"] == "1"] == [
    ("0", 0.5),
    ("1", 1.5),
  ]
  assert os.path.getsize(tmp_path / "path_gradients.png") > 5000
  one = studies.path_gradient_study("s1", str(tmp_path / "one"), samples=5)  # a single workdir
  np.testing.assert_allclose(one["std"], 0.3)
  np.testing.assert_allclose(one["seed_std"], 0.0)
  for workdirs in (["s0", "r20"], ["s1", "again"]):
    with pytest.raises(ValueError, match="seeds of one net"):
      studies.path_gradient_study(workdirs, str(tmp_path / "refused"))


def test_resilience_is_shown_when_the_resnet_loses_least_in_every_seed():
  from cnn_depth.studies import veit2016

  def net(*per_seed):
    return {"by_seed": {s: {"errors": np.asarray(e)} for s, e in enumerate(per_seed)}}

  single = {"ResNet-8": net([0.1, 0.2], [0.1, 0.3]), "plain-8": net([0.9, 0.9], [0.8, 0.9])}
  assert veit2016.resilience_shown(single, "ResNet-8").endswith("2 net x seed pairs): shown")
  single["VGG-16"] = net([0.1, 0.1], [0.9, 0.9])
  assert veit2016.resilience_shown(single, "ResNet-8").endswith("NOT shown")
