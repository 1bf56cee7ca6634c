"""scripts/import_weights.py end to end: a normal workdir in (that fine-tunes, and that
scripts/export_weights.py writes back as the same tensors), one sentence (exit 2, nothing written)
for a file that does not fit or a PyTorch file without PyTorch, and Veit et al.'s ImageNet lesion on
an imported ResNet-50 (the export's own refusals: tests/scripts/test_export_weights.py)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os

import numpy as np
import pytest
from helpers.data_files import write_cifar_pickles, write_tfds
from helpers.interop import one_error_line, reference_weights
from helpers.runner import run_script
from safetensors.numpy import load_file

HAVE_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.slow
def test_import_export_round_trip_and_fine_tuning(tmp_path):
  path, weights = reference_weights(tmp_path)
  workdir = tmp_path / "ref20"
  out = run_script(
    "scripts/import_weights.py",
    "--source=cifar_reference",
    "--arch=resnet20",
    f"--weights={path}",
    f"--workdir={workdir}",
  )
  assert out.returncode == 0, out.stderr[-2000:]
  status = json.load(open(workdir / "status.json"))
  assert status["status"] == "done" and status["source"] == "cifar_reference"
  assert status["weights"] == path and status["architecture"] == "resnet20"
  config = json.load(open(workdir / "config.json"))
  assert config["model"]["family"] == "cifar_resnet" and config["model"]["depth"] == 20

  exported = str(tmp_path / "out.safetensors")
  out = run_script("scripts/export_weights.py", f"--workdir={workdir}", f"--out={exported}")
  assert out.returncode == 0, out.stderr[-2000:]
  back = load_file(exported)
  assert set(back) == set(weights)  # every key torch's strict load_state_dict needs
  for key, value in weights.items():
    assert np.array_equal(back[key], value) and back[key].dtype == value.dtype, key

  # Fine-tuning: scripts/train.py with the recipe resumes from the imported step 0 (a recipe
  # field that decides resuming, e.g. batch_size, must match the imported config's).
  write_cifar_pickles(tmp_path / "cifar", per_batch=32, num_test=16)  # 160 images, one batch
  out = run_script(
    "scripts/train.py",
    "--config=configs/cifar_resnet.py:depth=20",
    f"--workdir={workdir}",
    f"--config.dataset.data_dir={tmp_path / 'cifar'}",
    "--config.num_train_steps=2",
    "--config.log_every_steps=1",
    "--config.eval_every_steps=2",
    "--verbosity=-1",
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert json.load(open(workdir / "status.json"))["step"] == 2
  first = json.loads(open(workdir / "metrics.jsonl").readline())
  assert first["step"] == 1  # continued from the imported step 0, not a fresh init


@pytest.mark.slow
def test_a_file_for_another_architecture_is_refused_and_nothing_is_written(tmp_path):
  path, _ = reference_weights(tmp_path, "resnet32")
  workdir = tmp_path / "w"
  out = run_script(
    "scripts/import_weights.py",
    "--source=cifar_reference",
    "--arch=resnet20",
    f"--weights={path}",
    f"--workdir={workdir}",
  )
  one_error_line(out, "does not fit cifar_reference resnet20", "layer1.3.")
  assert not workdir.exists()
  out = run_script(
    "scripts/import_weights.py",
    "--source=torchvision",
    "--arch=resnet42",
    f"--weights={path}",
    f"--workdir={workdir}",
  )
  one_error_line(out, "no architecture 'resnet42'", "resnet50")
  assert not workdir.exists()


@pytest.mark.skipif(HAVE_TORCH, reason="PyTorch is installed here: the message for its absence")
def test_a_pytorch_file_without_pytorch_says_how_to_read_it(tmp_path):
  pth = tmp_path / "resnet20-12fca82f.th"
  pth.write_bytes(b"not read")
  out = run_script(
    "scripts/import_weights.py",
    "--source=cifar_reference",
    "--arch=resnet20",
    f"--weights={pth}",
    f"--workdir={tmp_path / 'w'}",
  )
  one_error_line(out, "needs PyTorch", "pip install -e '.[torch]'", ".safetensors")
  assert not (tmp_path / "w").exists()


def write_imagenet_validation(data_dir, n=4):
  """A tiny TFDS imagenet2012 with ImageNet's 1000 classes (an imported net's head has 1000)."""
  import tensorflow_datasets as tfds
  from PIL import Image

  rng = np.random.default_rng(0)
  examples = [
    {"image": Image.fromarray(rng.integers(0, 255, (240, 260, 3), np.uint8)), "label": int(k),
     "file_name": f"v{i}.JPEG"}
    for i, k in enumerate(rng.integers(0, 1000, n))
  ]  # fmt: skip
  features = {
    "image": tfds.features.Image(encoding_format="jpeg"),
    "label": tfds.features.ClassLabel(num_classes=1000),
    "file_name": tfds.features.Text(),
  }
  write_tfds(data_dir, "imagenet2012", features, {"train": examples, "validation": examples},
             version="5.1.0")  # fmt: skip


@pytest.mark.slow
def test_veit_imagenet_lesion_on_an_imported_resnet50(tmp_path):
  """Veit et al. Fig. 3b's study, end to end: a torchvision ResNet-50 file imported, its single-
  block lesion on TFDS imagenet2012's validation split (streamed), downsampling blocks marked."""
  path, _ = reference_weights(tmp_path, "resnet50", "torchvision")
  workdir = tmp_path / "tv_resnet50"
  out = run_script(
    "scripts/import_weights.py",
    "--source=torchvision",
    "--arch=resnet50",
    f"--weights={path}",
    f"--workdir={workdir}",
  )
  assert out.returncode == 0, out.stderr[-2000:]
  write_imagenet_validation(tmp_path / "tfds")
  out = run_script(
    "scripts/lesion.py",
    f"--workdir={workdir}",
    f"--data_dir={tmp_path / 'tfds'}",
    "--k_max=1",
    "--samples=1",
    "--batch=4",
    f"--out_dir={tmp_path / 'out'}",
    timeout=600,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  with open(tmp_path / "out" / "lesion_single.csv") as f:
    rows = list(csv.DictReader(f))
  assert [int(r["block"]) for r in rows] == list(range(-1, 16))  # intact, then 3+4+6+3 blocks
  assert [r["block"] for r in rows if r["downsampling"] in ("1", "True", "true")] == [
    "0",
    "3",
    "7",
    "13",
  ]
  assert all(0.0 <= float(r["test_error"]) <= 1.0 for r in rows)
  assert os.path.getsize(tmp_path / "out" / "lesion_single.png") > 5000
