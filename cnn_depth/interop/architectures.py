"""The published PyTorch nets we read and write: which of our families each one is, and the name its
`state_dict` gives each of our variables.

    arch = get("torchvision", "resnet50")
    arch.model  # {"family": "imagenet_resnet", "depth": 50, "bottleneck_stride": "3x3", ...}
    arch.torch_name(("stage1_block0", "proj", "conv"), "kernel")   # 'layer2.0.downsample.0.weight'

Sources:
* `torchvision`: torchvision.models.resnet18/34/50/101/152 (bottlenecks stride on the 3x3, "v1.5").
* `timm`: timm's resnet18/34/50/101/152 (the same layout and names as torchvision's), usually as
  `.safetensors` from the Hugging Face hub.
* `cifar_reference`: the widely used CIFAR ResNet-20/32/44/56/110/1202 checkpoints
  (github.com/akamaster/pytorch_resnet_cifar10, `.th` files of a DataParallel model: `module.`
  prefixes, saved as {'state_dict': ...}): option A shortcuts that zero-pad planes//4 channels on
  each side, as `layers.shortcut_a` does.

Our variable paths are the unrolled ones (`stage{s}_block{b}`; models/layout.py converts).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Architecture:
  """One importable net: our model (config.model fields), its data, and its PyTorch names."""

  source: str
  name: str
  model: dict  # family, depth and the config.model fields that make our net this one
  config: str  # the configs/*.py file whose recipe fine-tunes it
  dataset: str
  num_classes: int
  input_shape: tuple[int, int, int]  # H, W, C of the inputs the tests feed
  module_name: Callable[[Path], str]  # our module path -> the torch module name

  @property
  def key(self) -> str:
    return f"{self.source}:{self.name}"

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
        "imagenet_resnet", "imagenet2012", 1000, (224, 224, 3), resnet_names("fc"),
      )
    )  # fmt: skip

for _depth in (20, 32, 44, 56, 110, 1202):
  register(
    Architecture(
      "cifar_reference", f"resnet{_depth}",
      {"family": "cifar_resnet", "depth": _depth, "width": 16, "shortcut": "A"},
      "cifar_resnet", "cifar10", 10, (32, 32, 3), resnet_names("linear"),
    )
  )  # fmt: skip
