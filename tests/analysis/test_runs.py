"""Opening a workdir (cnn_depth/analysis/runs.py) at any saved step: the checkpoints through
training and the initialisation the run started from, on a real tiny run; load_trained gives the
net whose lesion (cnn_depth/analysis/lesion.py) measures the loop's final test error; a workdir
without checkpoint is refused."""

import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers.runner import ROOT

from cnn_depth import checkpoint
from cnn_depth import config as config_lib
from cnn_depth import workdir as workdir_lib
from cnn_depth.analysis import lesion, runs

REPO = Path(ROOT)


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
  """ResNet-8 (width 4) trained 2 steps at learning rate 0: its parameters never move, its BN
  statistics do; a checkpoint after each step."""
  from cnn_depth import train

  config = config_lib.load_config_file(
    f"{REPO}/configs/quickstart.py:depth=8,residual=True,steps=2,seed=3"
  )
  config.model.width = 4
  config.batch_size = 32
  config.learning_rate = 0.0
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 1
  config.keep_checkpoints = 2
  config.eval_train_set = False
  workdir = str(tmp_path_factory.mktemp("frozen"))
  train.train_and_evaluate(config, workdir)
  return workdir


def leaves(tree):
  return [np.asarray(a) for a in jax.tree_util.tree_leaves(tree)]


@pytest.mark.slow
def test_every_step_and_the_initialisation(frozen_run):
  assert runs.checkpoint_steps(frozen_run) == [1, 2]
  _, init, config, _ = runs.load_trained(frozen_run, step=0)
  _, first, _, _ = runs.load_trained(frozen_run, step=1)
  _, last, _, _ = runs.load_trained(frozen_run)
  assert config["seed"] == 3
  # At learning rate 0 the trained parameters are the initial draw, bit for bit.
  for a, b in zip(leaves(init["params"]), leaves(last["params"]), strict=True):
    np.testing.assert_array_equal(a, b)
  # BN statistics moved with each step: step 1 and step 2 are different checkpoints.
  stats = zip(leaves(first["batch_stats"]), leaves(last["batch_stats"]), strict=True)
  assert any(not np.array_equal(a, b) for a, b in stats)
  with pytest.raises(checkpoint.CheckpointError, match="no checkpoint for step 3"):
    runs.load_trained(frozen_run, step=3)


def test_initialisation_depends_on_the_seed(frozen_run):
  model, init, config, ds = runs.load_trained(frozen_run, step=0)
  other = runs.initial_variables(model, {**config, "seed": 4}, ds.image_shape)
  pairs = zip(leaves(init["params"]), leaves(other["params"]), strict=True)
  assert any(not np.array_equal(a, b) for a, b in pairs)


def test_initial_bn_statistics_are_the_batch_statistics(frozen_run):
  """At step 0 inference-mode BN, with the statistics of the training images, computes exactly
  what train-mode BN computes on them."""
  from cnn_depth import steps

  model, init, config, ds = runs.load_trained(frozen_run, step=0)
  images = ds.train_images[: runs.INIT_STATISTICS_EXAMPLES]
  x = steps.normalize(images, ds.mean, ds.std)
  inference = model.apply(init, x, train=False)
  train, _ = model.apply(init, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(inference, train, rtol=1e-4, atol=1e-4)
  # The running statistics the draw starts with (0 and 1) would compute something else.
  raw = runs.initial_variables(model, config, ds.image_shape)
  assert not np.allclose(model.apply(raw, x, train=False), train, rtol=1e-2, atol=1e-2)


# --------------------------------------------------------------------------------------------------
# load_trained on a real tiny run, and a lesion of it.


def _quickstart_config(arg):
  return config_lib.load_config_file(f"{REPO / 'configs' / 'quickstart.py'}:{arg}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  from cnn_depth import train

  config = _quickstart_config("depth=8,residual=True,steps=4")
  config.model.width = 4
  config.batch_size = 32
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 4
  config.eval_train_set = False
  workdir = str(tmp_path_factory.mktemp("resnet8"))
  final = train.train_and_evaluate(config, workdir)
  return workdir, final


def test_load_trained_and_lesion(trained):
  workdir, final = trained
  model, variables, config, ds = runs.load_trained(workdir)
  assert config["model"]["depth"] == 8 and model.num_blocks == 3
  assert ds.name == "digits" and ds.test_images.shape[1:] == (8, 8, 1)
  err = lesion.make_error_fn(model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std)
  # The training loop's final evaluation saw the same checkpointed state and the same test set.
  assert err() == pytest.approx(final["test_error"], abs=1e-6)
  intact, errors = lesion.single_block_lesion(err, model.num_blocks)
  assert errors.shape == (3,) and intact == pytest.approx(final["test_error"], abs=1e-6)
  assert err.traces == 1


def test_load_trained_without_checkpoint(tmp_path, tiny_workdirs):
  workdir = tiny_workdirs[True]  # conftest.py's ResNet-14: only its config.json is read
  with open(os.path.join(workdir, workdir_lib.CONFIG_FILE)) as f:
    config = json.load(f)
  fresh = tmp_path / "fresh"
  fresh.mkdir()
  workdir_lib.write_config(str(fresh), config)
  with pytest.raises(ValueError, match=r"no checkpoint in .*fresh/checkpoints: train it first"):
    runs.load_trained(fresh)
  (fresh / "checkpoints").mkdir()  # an empty checkpoint folder (a run killed before its first save)
  with pytest.raises(ValueError, match="train it first"):
    runs.load_trained(fresh)
