"""The ImageNet path of the training loop (grain over TFDS imagenet2012) on a tiny fake dataset."""

import os

import jax
import pytest
from test_data import write_fake_imagenet

from cnn_depth import config as config_lib
from cnn_depth import train
from cnn_depth import workdir as workdir_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def imagenet_config(arg):
  return config_lib.load_config_file(os.path.join(ROOT, "configs", f"imagenet_resnet.py:{arg}"))


def test_imagenet_config_trains_two_steps_on_fake_data(tmp_path):
  write_fake_imagenet(tmp_path / "tfds")
  config = imagenet_config("depth=18")
  config.dataset.data_dir = str(tmp_path / "tfds")
  config.model.width = 4
  config.model.dtype = "float32"
  config.batch_size = 8
  config.num_epochs = -1.0
  config.num_train_steps = 2
  config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 2
  final = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert final["steps"] == 2 and 0.0 <= final["test_error"] <= 1.0
  assert workdir_lib.read_status(str(tmp_path / "run"))["status"] == "done"
  [record] = [r for r in workdir_lib.read_metrics(str(tmp_path / "run")) if "test_error" in r]
  assert record["step"] == 2 and len(record["block_grad_norms"]) == 8


def test_imagenet_without_data_is_one_clear_error(tmp_path):
  config = imagenet_config("depth=18")
  config.dataset.data_dir = str(tmp_path / "nothing")
  with pytest.raises(ValueError, match="imagenet2012"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert jax.device_count() == 8
