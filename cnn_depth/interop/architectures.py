"""The published PyTorch nets we read and write: which of our families each one is, and the name its
`state_dict` gives each of our variables.

    arch = get("torchvision", "resnet50")
    arch.model  # {"family": "imagenet_resnet", "depth": 50, "bottleneck_stride": "3x3", ...}
    arch.torch_name(("stage1_block0", "proj", "conv"), "kernel")   # 'layer2.0.downsample.0.weight'

Sources:
* `torchvision`: torchvision.models.resnet18/34/50/101/152 (bottlenecks stride on the 3x3, "v1.5"),
  vgg11/13/16/19 and their _bn twins (our `vgg`/`vgg_bn` families), densenet121/169/201 (our
  `imagenet_densenet`).
* `timm`: timm's resnet18/34/50/101/152 (the same layout and names as torchvision's), usually as
  `.safetensors` from the Hugging Face hub.
* `cifar_reference`: the widely used CIFAR ResNet-20/32/44/56/110/1202 checkpoints
  (github.com/akamaster/pytorch_resnet_cifar10, `.th` files of a DataParallel model: `module.`
  prefixes, saved as {'state_dict': ...}): option A shortcuts that zero-pad planes//4 channels on
  each side, as `layers.shortcut_a` does.

Our variable paths are the unrolled ones (`stage{s}_block{b}`; models/layout.py converts).
Layouts are transposes (convert.py) except where an architecture names a tensor in `layouts`:
VGG's first classifier layer reads maps that PyTorch flattens channels-first and we flatten
channels-last (`FlattenedMaps`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable, Mapping, Protocol

import numpy as np

from cnn_depth import data
from cnn_depth.data.imagenet import IMAGENET_NAME
from cnn_depth.models.vgg import VGG_STAGES

Path = tuple[str, ...]


class Layout(Protocol):
  """How one tensor is laid out in PyTorch where a transpose does not say it (exact both ways)."""

  def to_torch(self, array: np.ndarray) -> np.ndarray: ...

  def from_torch(self, array: np.ndarray) -> np.ndarray: ...

  def torch_shape(self, shape: tuple) -> tuple: ...


@dataclasses.dataclass(frozen=True)
class FlattenedMaps:
  """The kernel of a dense layer that reads flattened (h, w, c) maps: we flatten them HWC,
  PyTorch CHW, so its input rows are permuted as well as transposed (a permutation: bit-exact)."""

  h: int
  w: int
  c: int

  def to_torch(self, kernel: np.ndarray) -> np.ndarray:  # (h*w*c, out) -> (out, c*h*w)
    out = kernel.shape[1]
    kernel = kernel.reshape(self.h, self.w, self.c, out).transpose(3, 2, 0, 1)
    return np.ascontiguousarray(kernel).reshape(out, -1)

  def from_torch(self, weight: np.ndarray) -> np.ndarray:  # (out, c*h*w) -> (h*w*c, out)
    out = weight.shape[0]
    weight = weight.reshape(out, self.c, self.h, self.w).transpose(2, 3, 1, 0)
    return np.ascontiguousarray(weight).reshape(-1, out)

  def torch_shape(self, shape: tuple) -> tuple:
    return (shape[1], shape[0])


@dataclasses.dataclass(frozen=True)
class Architecture:
  """One importable net: our model (config.model fields), its data, and its PyTorch names. Its
  classes and input shape are those of its dataset's `DatasetSpec`."""

  source: str
  name: str
  model: dict  # family, depth and the config.model fields that make our net this one
  config: str  # the configs/*.py file whose recipe fine-tunes it
  dataset: str  # a registered dataset (cnn_depth.data)
  module_name: Callable[[Path], str]  # our module path -> the torch module name
  layouts: Mapping[str, Layout] = dataclasses.field(default_factory=dict)  # torch key -> layout

  @property
  def key(self) -> str:
    return f"{self.source}:{self.name}"

  @property
  def num_classes(self) -> int:
    return data.get(self.dataset).num_classes

  @property
  def input_shape(self) -> tuple[int, int, int]:
    """H, W, C of the inputs the net is built for and the tests feed."""
    return tuple(data.get(self.dataset).image_shape)

  def torch_name(self, module: Path, leaf: str) -> str:
    """The state_dict key of our variable `leaf` (kernel, bias, scale, mean, var) of `module`."""
    return f"{self.module_name(module)}.{_LEAF[leaf]}"


_LEAF = {"kernel": "weight", "bias": "bias", "scale": "weight", "mean": "running_mean",
         "var": "running_var"}  # fmt: skip
_BLOCK = re.compile(r"stage(\d+)_block(\d+)$")
_IN_BLOCK = {("proj", "conv"): "downsample.0", ("proj", "bn"): "downsample.1"}


def resnet_names(head: str) -> Callable[[Path], str]:
  """torchvision's ResNet module names (conv1, bn1, layer{s}.{b}.conv1, ..., downsample.0/1, fc);
  `head` names the final linear layer ('fc', or 'linear' in the CIFAR reference)."""

  def name(module: Path) -> str:
    first, rest = module[0], tuple(module[1:])
    if first in ("conv_init", "bn_init", "head"):
      return {"conv_init": "conv1", "bn_init": "bn1", "head": head}[first]
    m = _BLOCK.match(first)
    if m is None:
      raise KeyError(f"no PyTorch name for our module {'/'.join(module)}")
    inner = _IN_BLOCK.get(rest, ".".join(rest))
    return f"layer{int(m.group(1)) + 1}.{m.group(2)}.{inner}"

  return name


def vgg_names(stage_sizes, bn: bool) -> Callable[[Path], str]:
  """torchvision's VGG module names: `features.{i}` numbers every conv, BN, ReLU and max pool in
  order (a pool ends each of the five stages), `classifier.0/3/6` the three linear layers."""
  index, i = {}, 0
  for s, n in enumerate(stage_sizes):
    for b in range(n):
      index[(f"stage{s}_block{b}", "conv")] = f"features.{i}"
      index[(f"stage{s}_block{b}", "bn")] = f"features.{i + 1}"
      i += 3 if bn else 2
    i += 1
  index.update({("fc1",): "classifier.0", ("fc2",): "classifier.3", ("head",): "classifier.6"})
  return functools.partial(_lookup, index)


_DENSE = {"conv_init": "conv0", "bn_init": "norm0", "bn_final": "norm5"}
_TRANSITION = re.compile(r"transition(\d+)_(bn|conv)$")


def densenet_names(module: Path) -> str:
  """torchvision's DenseNet module names: `features.conv0/norm0`,
  `features.denseblock{s+1}.denselayer{b+1}.norm1/conv1/norm2/conv2`, `features.transition{s}.norm/
  conv` (ours transition{s} comes before our stage s, theirs after their denseblock{s}: the same
  one), `features.norm5`, `classifier`."""
  first, rest = module[0], tuple(module[1:])
  if module == ("head",):
    return "classifier"
  if first in _DENSE and not rest:
    return f"features.{_DENSE[first]}"
  if (m := _TRANSITION.match(first)) and not rest:
    return f"features.transition{m.group(1)}.{'norm' if m.group(2) == 'bn' else 'conv'}"
  if (m := _BLOCK.match(first)) and len(rest) == 1 and rest[0][:-1] in ("bn", "conv"):
    layer = f"{'norm' if rest[0].startswith('bn') else 'conv'}{rest[0][-1]}"
    return f"features.denseblock{int(m.group(1)) + 1}.denselayer{int(m.group(2)) + 1}.{layer}"
  raise KeyError(f"no PyTorch name for our module {'/'.join(module)}")


def _lookup(index: Mapping[Path, str], module: Path) -> str:
  if tuple(module) not in index:
    raise KeyError(f"no PyTorch name for our module {'/'.join(module)}")
  return index[tuple(module)]


_REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
  if arch.key in _REGISTRY:
    raise ValueError(f"architecture {arch.key} is registered twice")
  _REGISTRY[arch.key] = arch
  return arch


def get(source: str, name: str) -> Architecture:
  """The architecture, or a ValueError in one sentence listing those of the source."""
  arch = _REGISTRY.get(f"{source}:{name}")
  if arch is None:
    sources = sorted({a.source for a in _REGISTRY.values()})
    if source not in sources:
      raise ValueError(f"--source must be one of {', '.join(sources)}; got {source!r}")
    names = sorted((a.name for a in _REGISTRY.values() if a.source == source), key=_natural)
    raise ValueError(f"{source} has no architecture {name!r}; it has {', '.join(names)}")
  return arch


def names(source: str | None = None) -> list[str]:
  return sorted(a.key for a in _REGISTRY.values() if source in (None, a.source))


def _natural(name: str):
  return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


for _source in ("torchvision", "timm"):
  for _depth in (18, 34, 50, 101, 152):
    register(
      Architecture(
        _source, f"resnet{_depth}",
        {"family": "imagenet_resnet", "depth": _depth, "width": 64, "shortcut": "B",
         "bottleneck_stride": "3x3"},
        "imagenet_resnet", IMAGENET_NAME, resnet_names("fc"),
      )
    )  # fmt: skip

for _depth in (20, 32, 44, 56, 110, 1202):
  register(
    Architecture(
      "cifar_reference", f"resnet{_depth}",
      {"family": "cifar_resnet", "depth": _depth, "width": 16, "shortcut": "A"},
      "cifar_resnet", "cifar10", resnet_names("linear"),
    )
  )  # fmt: skip

for _depth, _sizes in VGG_STAGES.items():
  for _bn in (False, True):
    register(
      Architecture(
        "torchvision", f"vgg{_depth}{'_bn' if _bn else ''}",
        {"family": "vgg_bn" if _bn else "vgg", "depth": _depth, "width": 64},
        "imagenet_resnet", IMAGENET_NAME, vgg_names(_sizes, _bn),
        layouts={"classifier.0.weight": FlattenedMaps(7, 7, 512)},
      )
    )  # fmt: skip

for _depth in (121, 169, 201):
  register(
    Architecture(
      "torchvision", f"densenet{_depth}", {"family": "imagenet_densenet", "depth": _depth},
      "imagenet_resnet", IMAGENET_NAME, densenet_names,
    )
  )  # fmt: skip
