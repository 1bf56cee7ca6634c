"""Lesion studies (cnn_depth/analysis/lesion.py; Veit et al. 2016 §4): one compilation for every
pattern, known answers (deleting a deleted block changes nothing, zero swaps is the trained net,
Kendall tau of a reversal is -1), the CSV files with and without seeds (load_trained and a lesion
on a real tiny run: tests/analysis/test_runs.py; the study over seeds:
tests/studies/test_veit2016.py).

Variables of the random test nets are drawn with numpy (`random_variables`, helpers/nets.py): flax's
`init` under XLA:CPU compiles for about ten seconds, longer than everything it would test.
"""

from __future__ import annotations

import csv
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.nets import random_variables

from cnn_depth import models, steps
from cnn_depth.analysis import lesion

MEAN, STD = (120.0, 115.0, 110.0), (60.0, 62.0, 64.0)


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
def error_fn(net):
  model, v, images, labels = net
  return lesion.make_error_fn(model, v, images, labels, MEAN, STD, batch_size=16)


def direct_error(model, v, images, labels, gates=None):
  x = steps.normalize(jnp.asarray(images), MEAN, STD)
  logits = jax.jit(lambda v, x, g: model.apply(v, x, train=False, gates=g))(v, x, gates)
  return float(np.mean(np.argmax(logits, -1) != labels))


def test_error_fn_is_the_error_of_the_whole_set(net, error_fn):
  model, v, images, labels = net
  gates = lesion.deletion_gates(model.num_blocks, [1, 4])
  assert error_fn(gates) == pytest.approx(direct_error(model, v, images, labels, gates), abs=1e-6)
  assert error_fn() == pytest.approx(direct_error(model, v, images, labels), abs=1e-6)


def test_error_fn_compiles_once(net, error_fn):
  n = net[0].num_blocks
  errors = [
    error_fn(lesion.deletion_gates(n, s))
    for k in (0, 1, 3, 6)
    for s in itertools.islice(itertools.combinations(range(n), k), 3)
  ]
  errors.append(error_fn(np.full(n, 0.5)))  # any gate values, same program
  assert all(0.0 <= e <= 1.0 for e in errors)
  assert error_fn.traces == 1 and error_fn.jitted._cache_size() == 1
  with pytest.raises(ValueError, match="shape"):
    error_fn(np.ones(n + 1))


def test_deleting_a_deleted_block_changes_nothing(net, error_fn):
  n = net[0].num_blocks
  for block in range(n):
    once = lesion.deletion_gates(n, [block])
    twice = lesion.deletion_gates(n, [block]) * lesion.deletion_gates(n, [block])
    np.testing.assert_array_equal(once, twice)
    assert error_fn(twice) == error_fn(once)


def test_single_block_lesion(net, error_fn):
  n = net[0].num_blocks
  intact, errors = lesion.single_block_lesion(error_fn, n)
  assert errors.shape == (n,) and np.all((errors >= 0) & (errors <= 1))
  assert intact == error_fn(np.ones(n))
  assert errors[2] == error_fn(lesion.deletion_gates(n, [2]))


def test_multi_block_lesion(net, error_fn):
  n = net[0].num_blocks
  ks = [0, 1, 2, 6]
  means, stds = lesion.multi_block_lesion(error_fn, n, ks, samples=4, seed=0)
  assert means.shape == stds.shape == (4,)
  assert means[0] == error_fn() and stds[0] == 0.0  # k = 0: the intact net, one set
  assert stds[3] == 0.0  # k = n: one set
  assert means[3] == error_fn(np.zeros(n))
  again = lesion.multi_block_lesion(error_fn, n, ks, samples=4, seed=0)
  np.testing.assert_array_equal(again[0], means)  # seeded
  # C(6, 1) = 6 > 4 samples: random sets of one block, drawn from the single-block errors.
  _, single = lesion.single_block_lesion(error_fn, n)
  assert single.min() <= means[1] <= single.max()
  assert error_fn.traces == 1


def test_kendall_tau():
  assert lesion.kendall_tau(range(10)) == 1.0
  assert lesion.kendall_tau(range(9, -1, -1)) == -1.0
  assert lesion.kendall_tau([1, 0, 2]) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant
  assert lesion.kendall_tau([0, 3, 2, 1]) == pytest.approx((3 - 3) / 6)


def test_swappable_groups(net):
  model, v, _, _ = net
  assert lesion.swappable_groups(model, v) == [
    [0, 1]
  ]  # stage 0; stages 1, 2 have one movable block
  model20 = models.cifar_resnet(20, width=4)
  v20 = models.init_shapes(model20, (16, 16, 3))
  assert lesion.swappable_groups(model20, v20) == [[0, 1, 2], [4, 5], [7, 8]]


def test_reorder_with_no_swap_is_the_trained_net(net, error_fn):
  model, v, images, labels = net
  out = lesion.reorder_lesion(
    model, v, images, labels, MEAN, STD, max_swaps=0, samples=2, batch_size=16
  )
  assert [t for t, _ in out] == [1.0, 1.0]
  for _, e in out:
    assert e == pytest.approx(error_fn(), abs=1e-6)


def test_reorder_compiles_once_and_moves_blocks(net, monkeypatch):
  model20 = models.cifar_resnet(20, width=4)
  v20 = random_variables(model20, (16, 16, 3), seed=1)
  _, _, images, labels = net
  made = []
  real = lesion.make_error_fn
  monkeypatch.setattr(
    lesion, "make_error_fn", lambda *a, **k: made.append(real(*a, **k)) or made[-1]
  )
  out = lesion.reorder_lesion(
    model20, v20, images, labels, MEAN, STD, max_swaps=3, samples=5, seed=0, batch_size=50
  )
  assert len(out) == 5 and len(made) == 1 and made[0].traces == 1
  assert all(-1.0 <= t <= 1.0 and 0.0 <= e <= 1.0 for t, e in out)
  assert min(t for t, _ in out) < 1.0


def test_permuting_blocks_moves_their_variables(net):
  model = models.cifar_resnet(20, width=4)
  flat = models.convert_variables(random_variables(model, (16, 16, 3)), "unroll")
  names = models.block_names(model)
  order = np.arange(9)
  order[[4, 5]] = [5, 4]
  moved = lesion.permute_blocks(flat, names, order)
  for col in ("params", "batch_stats"):
    assert moved[col]["stage1_block1"] is flat[col]["stage1_block2"]
    assert moved[col]["stage1_block2"] is flat[col]["stage1_block1"]
    assert moved[col]["stage0_block0"] is flat[col]["stage0_block0"]
  twice = lesion.permute_blocks(moved, names, order)
  assert twice["params"]["stage1_block1"] is flat["params"]["stage1_block1"]


def test_csv_files(tmp_path, net):
  model = net[0]
  down = models.downsampling_blocks(model)
  lesion.write_single_csv(tmp_path / "single.csv", {"resnet14": (0.1, [0.2] * 6, down)})
  with open(tmp_path / "single.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["model", "block", "downsampling", "test_error"]
  assert [int(r["block"]) for r in rows] == [-1, 0, 1, 2, 3, 4, 5]
  assert [int(r["downsampling"]) for r in rows] == [0, 0, 0, 1, 0, 1, 0]
  assert float(rows[0]["test_error"]) == 0.1
  lesion.write_multi_csv(
    tmp_path / "multi.csv",
    {"resnet14": ([0, 2], [0.1, 0.3], [0.0, 0.05]), "plain14": ([1], [0.9], [0.01])},
  )
  with open(tmp_path / "multi.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["model", "k", "test_error_mean", "test_error_std"]
  assert [(r["model"], int(r["k"]), float(r["test_error_std"])) for r in rows] == [
    ("resnet14", 0, 0.0),
    ("resnet14", 2, 0.05),
    ("plain14", 1, 0.01),
  ]
  lesion.write_reorder_csv(tmp_path / "reorder.csv", {"resnet14": [(1.0, 0.1), (0.6, 0.2)]})
  with open(tmp_path / "reorder.csv") as f:
    rows = list(csv.DictReader(f))
  assert [(float(r["kendall_tau"]), float(r["test_error"])) for r in rows] == [
    (1.0, 0.1),
    (0.6, 0.2),
  ]


# --------------------------------------------------------------------------------------------------
# Seeds of one net: the CSVs' seed column.


def test_csv_files_with_seeds(tmp_path):
  """label -> {seed: value}: one row per seed, the seed right after the model."""
  down = [False, True]
  lesion.write_single_csv(
    tmp_path / "single.csv", {"R": {0: (0.1, [0.2, 0.3], down), 1: (0.2, [0.4, 0.5], down)}}
  )
  with open(tmp_path / "single.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["model", "seed", "block", "downsampling", "test_error"]
  assert [(r["seed"], r["block"], float(r["test_error"])) for r in rows] == [
    ("0", "-1", 0.1),
    ("0", "0", 0.2),
    ("0", "1", 0.3),
    ("1", "-1", 0.2),
    ("1", "0", 0.4),
    ("1", "1", 0.5),
  ]
  lesion.write_multi_csv(
    tmp_path / "multi.csv",
    {"R": {3: ([1, 2], [0.1, 0.2], [0.0, 0.1])}, "P": {3: ([1], [0.9], [0])}},
  )
  with open(tmp_path / "multi.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["model", "seed", "k", "test_error_mean", "test_error_std"]
  assert [(r["model"], r["seed"], r["k"]) for r in rows] == [
    ("R", "3", "1"),
    ("R", "3", "2"),
    ("P", "3", "1"),
  ]
  lesion.write_reorder_csv(tmp_path / "reorder.csv", {"R": {0: [(1.0, 0.1)], 1: [(0.5, 0.3)]}})
  with open(tmp_path / "reorder.csv") as f:
    rows = list(csv.DictReader(f))
  assert list(rows[0]) == ["model", "seed", "kendall_tau", "test_error"]
  assert [(r["seed"], float(r["test_error"])) for r in rows] == [("0", 0.1), ("1", 0.3)]
