"""cnn_depth: depth studies of convolutional networks in JAX/Flax (README.md)."""

from __future__ import annotations

import importlib.util
import sys
import types


def lazy_import(name: str) -> types.ModuleType:
  """Module `name`, imported when first used (importlib's LazyLoader). What a process may not need
  is imported this way: SciPy by the activation maps that only the DKS/TAT solver and the mean-field
  theory evaluate (0.35 s of every training process's start), and the studies' instruments (JAX,
  flax, matplotlib), so that `scripts/reproduce.py --list` and its refusals answer in 0.4 s."""
  if name in sys.modules:
    return sys.modules[name]
  spec = importlib.util.find_spec(name)
  spec.loader = importlib.util.LazyLoader(spec.loader)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  spec.loader.exec_module(module)
  parent, _, child = name.rpartition(".")
  if parent:  # as an import does: `package.child` names it too
    setattr(sys.modules[parent], child, module)
  return module
