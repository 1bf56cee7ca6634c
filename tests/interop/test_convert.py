"""cnn_depth/interop against torchvision's ResNets, VGGs and DenseNets, timm's and the reference
CIFAR ResNets' own classes: convert.py (keys, import, export) through architectures.py and files.py
(the SGD steps against torch.optim.SGD: tests/test_optim.py).

tests/fixtures/make_torch_fixtures.py ran those classes (versions in
tests/fixtures/torch_equality/versions.json) on weights that tests/fixtures/torch_weights.py
generates from the state_dict keys; here the same weights go through our importer and our nets.

Measured (this machine): inference-mode logits in float32 agree to 1.4e-7 .. 6.4e-7 of their
largest magnitude for the ResNets (ResNet-152: 6.4e-7; the 1202-layer net, logits up to 220:
1.4e-7), the DenseNets and the VGGs with BN (2.5e-7 .. 6.3e-7), 1.7e-6 for the VGGs without BN
(sums of 25,088 products in the first classifier layer); tested at 1e-5. Training mode and the SGD
steps are compared in float64 (see their tests).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.interop import FIXTURES, fixture, torch_weights
from helpers.runner import ROOT, run_script

from cnn_depth.interop import architectures, convert, files
from cnn_depth.models import layout

NETS = sorted(
  os.path.basename(p)[:-4] for p in glob.glob(os.path.join(FIXTURES, "*.npz"))
  if not os.path.basename(p).startswith("sgd_")
)  # fmt: skip
# A VGG (133-144M weights) or DenseNet costs 5-17 s a test on 2 cores: by default their logits and
# round trips are tested for one plain VGG, one with BN and one DenseNet (every net's keys and
# shapes always); CNN_DEPTH_TEST_ALL_NETS=1 tests every fixture (about 3 minutes more).
ALL_NETS = os.environ.get("CNN_DEPTH_TEST_ALL_NETS", "") not in ("", "0")
SAMPLED = ("torchvision_vgg11", "torchvision_vgg16_bn", "torchvision_densenet121")
TESTED = [n for n in NETS if ALL_NETS or n in SAMPLED or not re.search(r"_(vgg|densenet)\d", n)]


SOURCES = sorted({key.split(":", 1)[0] for key in architectures.names()}, key=len, reverse=True)


def arch_of(name: str) -> architectures.Architecture:
  """The architecture of a fixture named `{source}_{arch}` (both may hold '_': vgg16_bn)."""
  source = next((s for s in SOURCES if name.startswith(f"{s}_")), None)
  if source is None:
    raise ValueError(f"fixture {name} names none of the sources {SOURCES}")
  return architectures.get(source, name[len(source) + 1 :])


def test_every_architecture_has_a_fixture():
  assert {f"{a.source}_{a.name}" for a in map(arch_of, NETS)} == set(NETS)
  assert {key.replace(":", "_") for key in architectures.names()} >= set(NETS)
  assert {f"torchvision_{n.split(':')[1]}" for n in architectures.names("torchvision")} <= set(NETS)
  for source in ("torchvision", "timm", "cifar_reference"):
    assert any(n.startswith(source) for n in NETS), source


def our_net(arch, weights, dtype="float32"):
  """Our model of `arch` with `weights` imported, scanned stages as training runs them where the
  family scans (the 1202-layer net would take minutes to compile unrolled; from_torch gives the
  unrolled layout; VGGs and DenseNets are always unrolled)."""
  np_dtype = np.float64 if dtype == "float64" else np.float32
  variables = convert.from_torch(weights, arch, dtype=np_dtype)
  bn = {"bn_impl": "flax"} if dtype == "float64" else {}  # the fused BN computes in float32
  model = convert.build(arch, stages="scan", dtype=dtype, **bn)
  return model, layout.convert_variables(variables, model.stages)


@pytest.mark.parametrize("name", NETS)
def test_state_dict_keys_and_shapes_equal_the_pytorch_class(name):
  """Every net, cheaply: our names and layouts give exactly the keys and shapes of its class."""
  _, keys = fixture(name)
  assert convert.torch_keys(arch_of(name)) == dict(keys)


@pytest.mark.slow
@pytest.mark.parametrize("name", TESTED)
def test_inference_logits_equal_the_pytorch_class(name, tmp_path):
  data, keys = fixture(name)
  arch = arch_of(name)
  weights = torch_weights.generate(keys)
  if "vgg" not in name:  # through timm's hub format, read without PyTorch; a VGG's 0.5 GB file
    path = str(tmp_path / "w.safetensors")  # took 2 of its 7 s and tests no other reader
    files.write_state_dict(path, weights, "safetensors")
    weights = files.read_state_dict(path)
  model, variables = our_net(arch, weights)
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  logits = apply(variables, jnp.asarray(data["x"].transpose(0, 2, 3, 1)))
  scale = np.abs(data["eval_logits"]).max()
  np.testing.assert_allclose(logits, data["eval_logits"], rtol=0, atol=1e-5 * scale)


# Batch statistics (and ghost-free BN semantics) need one basic and one option-A net (and with
# CNN_DEPTH_TEST_ALL_NETS a DenseNet, BN over concatenated maps), not every depth: the inference
# test covers the architectures. (VGG's dropout draws differ from PyTorch's: not compared.)
TRAIN_NETS = ["torchvision_resnet18", "cifar_reference_resnet20"]
TRAIN_NETS += ["torchvision_densenet121"] if ALL_NETS else []  # compiles for 40 s


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAIN_NETS)
def test_training_mode_logits_and_running_statistics_equal_the_pytorch_class(name):
  """In float64 on both sides (PyTorch's own float32 batch statistics over 2x2 maps of 2 images
  differ from its float64 ones by ~1e-4 of the logits; ours in float32 by as much)."""
  data, keys = fixture(name)
  arch = arch_of(name)
  weights = torch_weights.generate(keys)
  x = data["x"].transpose(0, 2, 3, 1)
  scale = np.abs(data["train_logits"]).max()
  with jax.enable_x64(True):
    model, variables = our_net(arch, weights, "float64")
    train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
    logits, updated = train(variables, jnp.asarray(x, jnp.float64))
    # The nets return float32 logits: the one rounding left is that cast (~6e-8).
    np.testing.assert_allclose(logits, data["train_logits"], rtol=0, atol=2e-7 * scale)
    stats = {k[len("after_train/") :]: data[k] for k in data.files if k.startswith("after_train/")}
    assert_running_stats(updated, arch, weights, stats, jnp.asarray(x, jnp.float64))
  model, variables = our_net(arch, weights)  # float32, the fused BN
  logits, _ = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(
    variables, jnp.asarray(x)
  )
  np.testing.assert_allclose(logits, data["train_logits"], rtol=0, atol=2e-4 * scale)


def assert_running_stats(updated, arch, before, torch_after, x):
  """Running means equal PyTorch's; running variances differ by exactly PyTorch's unbiased batch
  variance: torch keeps 0.9 rv + 0.1 var * m/(m-1) over m = n*h*w values, we keep 0.9 rv + 0.1 var
  (flax). Up to 2e-3 relative at 2x2 maps of 2 images; we check the formula, not a tolerance."""
  ours = convert.to_torch({"batch_stats": updated["batch_stats"]}, arch)  # either layout
  before = {k: v.astype(np.float64) for k, v in before.items()}
  maps, n = _bn_map_sizes(arch, x), x.shape[0]
  for key, value in torch_after.items():
    if key.endswith("running_mean"):
      np.testing.assert_allclose(ours[key], value, rtol=1e-9, atol=1e-12, err_msg=key)
    else:
      m = n * maps[key.rsplit(".", 1)[0]]
      batch_var = (ours[key] - 0.9 * before[key]) / 0.1
      np.testing.assert_allclose(0.9 * before[key] + 0.1 * batch_var * m / (m - 1), value,
                                 rtol=1e-9, atol=1e-12, err_msg=key)  # fmt: skip


def _bn_map_sizes(arch, x) -> dict:
  """BN module name -> h*w of the maps it normalises, from a forward pass's intermediates."""
  model = convert.build(arch)

  def shapes(x):  # traced, not run: a 121-layer net would run op by op for a minute
    variables = model.init(jax.random.key(0), x, train=False)
    _, inter = model.apply(variables, x, train=False, capture_intermediates=True,
                           mutable=["intermediates"])  # fmt: skip
    return variables["batch_stats"], inter["intermediates"]

  stats, inter = jax.eval_shape(shapes, jax.ShapeDtypeStruct((1, *x.shape[1:]), jnp.float32))
  norms = {path[:-1] for path in convert._flatten(stats)}
  return {
    arch.module_name(path[:-1]): int(np.prod(value[0].shape[1:3]))
    for path, value in convert._flatten(inter).items()
    if path[:-1] in norms
  }


@pytest.mark.slow
@pytest.mark.parametrize("name", TESTED)
def test_import_then_export_returns_the_same_tensors_bit_for_bit(name, tmp_path):
  _, keys = fixture(name)
  arch = arch_of(name)
  weights = torch_weights.generate(keys)
  back = convert.to_torch(convert.from_torch(weights, arch), arch)
  assert list(back) == list(weights) or set(back) == set(weights)  # strict load: the same keys
  for key, value in weights.items():
    assert back[key].dtype == value.dtype and np.array_equal(back[key], value), key


def test_the_fixtures_are_what_the_fixture_script_writes_now(tmp_path):
  """Where PyTorch, torchvision and timm are installed, re-run the committed fixture script and
  compare (PyTorch's float32 kernels may differ across versions and machines by rounding)."""
  missing = [m for m in ("torch", "torchvision", "timm") if importlib.util.find_spec(m) is None]
  if missing:
    pytest.skip(f"{', '.join(missing)} not installed: the committed fixtures are not re-made here")
  script = os.path.join(ROOT, "tests", "fixtures", "make_torch_fixtures.py")
  proc = run_script(script, f"--out={tmp_path}", devices=8)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for path in glob.glob(os.path.join(FIXTURES, "*.npz")):
    committed, live = np.load(path), np.load(tmp_path / os.path.basename(path))
    assert committed.files == live.files
    for key in committed.files:
      if key == "keys":
        assert str(committed[key]) == str(live[key])
      else:
        scale = np.abs(committed[key]).max() + 1e-12
        np.testing.assert_allclose(live[key], committed[key], atol=1e-5 * scale, err_msg=key)
