"""The PyTorch fixtures (tests/fixtures/torch_equality, made by
tests/fixtures/make_torch_fixtures.py from the weights tests/fixtures/torch_weights.py generates),
weights for the weight scripts, and their one-line errors."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
from safetensors.numpy import save_file

from cnn_depth.interop import architectures, convert
from helpers.runner import ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "torch_equality")


def _load(name: str, path: str):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


# Not through sys.path: tests/fixtures is no package root.
torch_weights = _load("torch_weights", os.path.join(ROOT, "tests", "fixtures", "torch_weights.py"))


def fixture(name: str):
  data = np.load(os.path.join(FIXTURES, f"{name}.npz"))
  keys = [(k, tuple(s)) for k, s in json.loads(str(data["keys"]))]
  return data, keys


def reference_weights(tmp_path, arch_name="resnet20", source="cifar_reference"):
  arch = architectures.get(source, arch_name)
  keys = list(convert.torch_keys(arch).items())
  weights = torch_weights.generate(keys)
  path = str(tmp_path / f"{arch_name}.safetensors")
  save_file(weights, path)
  return path, weights


def one_error_line(proc, *fragments):
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]
