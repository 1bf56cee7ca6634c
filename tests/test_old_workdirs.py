"""Workdirs written by older code still open, restore and resume.

`tests/fixtures/workdirs_e358d80/` holds two tiny runs trained for 2 steps by commit e358d80 (before
the models/ and data/ packages): a scanned CIFAR ResNet-14 (width 4) and a DenseNet-BC-10 (k = 4),
both on the embedded digits. Their parameter paths, config.json and orbax checkpoints are what
users' workdirs of that time look like.
"""

import os
import shutil

import jax
import ml_collections
import numpy as np
import pytest

from cnn_depth import config as config_lib
from cnn_depth import models, train
from cnn_depth import workdir as workdir_lib
from cnn_depth.analysis import lesion, runs

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "workdirs_e358d80")


def shapes(tree):
  return jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)


def saved_config(workdir) -> ml_collections.ConfigDict:
  """config.base() with every value the workdir's config.json holds."""
  config = config_lib.base()
  for key, value in workdir_lib.read_config(workdir).items():
    if isinstance(value, dict):
      for sub, v in value.items():
        config[key][sub] = v
    else:
      config[key] = tuple(value) if isinstance(value, list) else value
  return config


@pytest.mark.parametrize("name", ["resnet14", "densenet_bc10"])
def test_an_old_workdir_restores_and_resumes(tmp_path, name):
  workdir = str(tmp_path / name)
  shutil.copytree(os.path.join(FIXTURES, name), workdir)

  model, variables, config, ds = runs.load_trained(workdir)
  fresh = models.init_shapes(model, ds.image_shape)
  assert shapes(variables["params"]) == shapes(fresh["params"])
  assert shapes(variables["batch_stats"]) == shapes(fresh["batch_stats"])
  error = lesion.make_error_fn(model, variables, ds.test_images, ds.test_labels, ds.mean, ds.std)
  # The saved test error of step 2, measured again from the restored variables.
  assert error() == pytest.approx(workdir_lib.read_status(workdir)["test_error"], abs=1e-6)

  c = saved_config(workdir)
  c.num_train_steps = 3
  final = train.train_and_evaluate(c, workdir)
  assert final["steps"] == 3 and workdir_lib.read_status(workdir)["status"] == "done"
  assert [m["step"] for m in workdir_lib.read_metrics(workdir)] == [1, 2, 3]
  assert np.isfinite(final["test_error"])
