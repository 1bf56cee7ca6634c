"""Reading and writing PyTorch weight files as dicts of numpy arrays.

* `.safetensors` (timm's hub files, and ours on export): the `safetensors` library, no PyTorch.
* `.pth` / `.pt` / `.th` (torchvision's downloads, the CIFAR reference's `.th`): pickles of torch
  tensors, so reading them needs PyTorch (`pip install -e '.[torch]'`); it is imported here only,
  and without it the error says how to get it or to use a `.safetensors` file instead. Loaded with
  `weights_only=True`: no code from the file runs.

A checkpoint that wraps its weights (`{'state_dict': ...}`, `{'model': ...}`) is unwrapped, and a
`module.` prefix (a DataParallel model's, as in the CIFAR reference files) is dropped.
"""

from __future__ import annotations

import os
import tempfile
from typing import Mapping

import numpy as np

TORCH_SUFFIXES = (".pth", ".pt", ".th", ".bin")
WRAPPERS = ("state_dict", "model", "model_state", "net")
TORCH_MISSING = (
  "reading {path} needs PyTorch, which is not installed (it is an optional extra: pip install -e "
  "'.[torch]'); or convert the file to .safetensors where PyTorch is installed and import that"
)


def _torch():
  try:
    import torch
  except ImportError:
    return None
  return torch


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """The file's weights by state_dict key (unwrapped, `module.` dropped); ValueError in one sentence
  for a missing, unreadable or unsupported file."""
  if not os.path.isfile(path):
    raise ValueError(f"--weights {path} is not a file")
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file

    try:
      tensors = load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError
      raise ValueError(f"cannot read {path} as safetensors ({' '.join(str(e).split())})") from e
  elif path.endswith(TORCH_SUFFIXES):
    torch = _torch()
    if torch is None:
      raise ValueError(TORCH_MISSING.format(path=path))
    try:
      loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
      raise ValueError(f"cannot read {path} with torch.load ({' '.join(str(e).split())})") from e
    tensors = {k: _numpy(v) for k, v in _unwrap(loaded, path).items() if hasattr(v, "numpy")}
  else:
    raise ValueError(
      f"--weights {path}: expected a .safetensors file or a PyTorch {'/'.join(TORCH_SUFFIXES)} file"
    )
  return {k.removeprefix("module."): v for k, v in tensors.items()}


def _unwrap(loaded, path: str) -> Mapping:
  while isinstance(loaded, Mapping):
    inner = next((loaded[w] for w in WRAPPERS if isinstance(loaded.get(w), Mapping)), None)
    if inner is None:
      return loaded
    loaded = inner
  raise ValueError(f"{path} holds a {type(loaded).__name__}, not a state_dict")


def _numpy(tensor) -> np.ndarray:
  tensor = tensor.detach().cpu()
  return tensor.float().numpy() if str(tensor.dtype) == "torch.bfloat16" else tensor.numpy()


def check_out_path(path: str) -> None:
  """Refuses, in one sentence naming --out, a file that cannot be written: an empty name, an
  existing folder (or a name ending in '/'), a folder that does not exist or is not writable.
  Checks only: nothing is created."""
  if not path:
    raise ValueError("--out is empty; name the file to write, e.g. --out=net.safetensors")
  if path.endswith(os.sep) or os.path.isdir(path):
    raise ValueError(
      f"--out={path} is a folder; name the file to write in it, e.g. "
      f"--out={os.path.join(path, 'net.safetensors')}"
    )
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise ValueError(
      f"--out={path}: its folder {folder} does not exist; create it first or choose another path"
    )
  if not os.access(folder, os.W_OK | os.X_OK):
    raise ValueError(f"--out={path}: its folder {folder} is not writable; choose another path")


def write_state_dict(path: str, tensors: Mapping[str, np.ndarray], fmt: str) -> None:
  """Writes `tensors` as `fmt` ('safetensors', or 'torch': a torch.save'd state_dict), through a
  temporary file beside `path` renamed into place (no half-written file on failure), with the
  permissions of any other output: 0666 less the umask (the safetensors library itself creates
  files 0600). ValueError naming --out where the file cannot be written."""
  if fmt not in ("safetensors", "torch"):
    raise ValueError(f"--format must be safetensors or torch, got {fmt!r}")
  torch = _torch() if fmt == "torch" else None
  if fmt == "torch" and torch is None:
    raise ValueError(TORCH_MISSING.format(path=path).replace("reading", "writing"))
  check_out_path(path)
  folder, name = os.path.split(os.path.abspath(path))
  handle, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
  os.close(handle)
  try:
    if fmt == "safetensors":
      from safetensors.numpy import save_file

      save_file({k: np.array(v, order="C") for k, v in tensors.items()}, tmp)  # keeps 0-d
    else:
      torch.save({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()}, tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  except Exception as e:
    if os.path.exists(tmp):
      os.remove(tmp)
    if isinstance(e, OSError) or type(e).__name__ == "SafetensorError":
      raise ValueError(
        f"--out={path} could not be written ({' '.join(str(e).split())}); free space, fix "
        "permissions or choose another path"
      ) from e
    raise
