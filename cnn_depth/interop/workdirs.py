"""Published weights in as a normal workdir, and a workdir's net out in its source's names.

An imported workdir is what training would have left: `config.json` (the recipe that fine-tunes
the net), an orbax checkpoint at step 0 (the weights and BN statistics, a fresh optimiser state),
and `status.json` 'done' with where the weights came from. So `scripts/lesion.py`,
`scripts/path_gradients.py` and evaluation read it unchanged, and `scripts/train.py` on it (with
the same config) fine-tunes from those weights.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from cnn_depth import checkpoint as ckpt_lib
from cnn_depth import models, optim
from cnn_depth import state as state_lib
from cnn_depth import workdir as workdir_lib
from cnn_depth.interop import architectures, convert
from cnn_depth.models import layout


def configure(config, arch: architectures.Architecture):
  """`config` (the recipe of `arch.config`) with the model fields that make our net `arch`; fields
  its family does not read go back to their defaults (a VGG or DenseNet borrows the ImageNet
  ResNets' recipe, whose shortcut it has no use for)."""
  config = config.copy_and_resolve_references()
  family = models.registry.get(arch.model["family"])
  for field, default in models.registry.defaults().items():
    if field in config.model and field not in family.fields:
      config.model[field] = default
  for field, value in arch.model.items():
    config.model[field] = value
  config.model.dtype = "float32"
  config.dataset.name = arch.dataset
  return config


def import_weights(config, arch, state_dict, workdir: str, source: dict) -> dict:
  """Writes `workdir` from `state_dict` (see the module docstring); returns its status record.
  ValueError in one sentence, with nothing written, for weights that do not fit or a workdir that
  is in use."""
  if os.path.exists(workdir_lib.checkpoint_dir(workdir)) or workdir_lib.read_status(workdir):
    raise ValueError(f"--workdir {workdir} already holds a run; import into a new directory")
  variables = convert.from_torch(state_dict, arch, what=source.get("weights", "the file"))
  model = models.build_model(config.model, num_classes=arch.num_classes)
  if getattr(model, "stages", None) == "scan":
    variables = layout.convert_variables(variables, "scan")
  tx, _ = optim.from_config(config, steps_per_epoch=1000)  # the structure is all that is kept
  params = jax.tree.map(np.asarray, variables["params"])
  state = state_lib.TrainState(
    step=np.zeros((), np.int32),
    params=params,
    batch_stats=variables.get("batch_stats", {}),
    opt_state=tx.init(params),
    rng=jax.random.key(config.seed),
  )
  _check_structure(model, tx, config, arch, state)
  workdir_lib.check_workdir(workdir)
  with ckpt_lib.Checkpointer(workdir_lib.checkpoint_dir(workdir)) as ckpt:  # closed on every path
    ckpt.save(0, state, force=True)
  workdir_lib.write_config(workdir, config.to_dict())
  return workdir_lib.write_status(workdir, "done", step=0, steps=0, **source)


def _check_structure(model, tx, config, arch, state) -> None:
  """The imported state has exactly the tree (and shapes) training builds for this config."""
  x = np.zeros((1, *arch.input_shape), np.float32)
  expected = state_lib.train_state_shapes(model, tx, x.shape[1:])
  got = jax.tree.map(lambda a: (tuple(jax.numpy.shape(a)), str(a.dtype)), state)
  want = jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), expected)
  if jax.tree.structure(got) != jax.tree.structure(want) or got != want:
    raise AssertionError(f"imported state does not match the model of {arch.key}")


def export_weights(workdir: str, arch: architectures.Architecture) -> dict[str, np.ndarray]:
  """The workdir's latest weights and BN statistics as `arch`'s state_dict; a ValueError naming the
  first tensor whose shape is not the architecture's (a net of other inputs or classes)."""
  loaded = ckpt_lib.load_for_analysis(workdir_lib.checkpoint_dir(workdir))
  variables: dict[str, Any] = {"params": loaded["params"], "batch_stats": loaded["batch_stats"]}
  tensors = convert.to_torch(jax.tree.map(np.asarray, variables), arch)
  expected = convert.torch_keys(arch)
  for key, shape in expected.items():
    if key not in tensors or tuple(tensors[key].shape) != tuple(shape):
      found = list(tensors[key].shape) if key in tensors else "none"
      raise ValueError(
        f"the net in {workdir} is not {arch.source} {arch.name}: its {key} has shape {found}, "
        f"{arch.name} has {list(shape)} (other input channels or classes)"
      )
  return tensors


def architecture_of(config: dict, source: str | None = None) -> architectures.Architecture:
  """The registered architecture a saved config's model is (torchvision's before timm's, whose
  names are the same), or a ValueError."""
  model, defaults = config.get("model", {}), models.registry.defaults()
  matches = [
    a
    for a in (architectures.get(*k.split(":", 1)) for k in architectures.names(source))
    if all(model.get(f, defaults.get(f)) == v for f, v in a.model.items())
  ]
  matches.sort(key=lambda a: a.source != "torchvision")
  if not matches:
    raise ValueError(
      f"the workdir's net ({model.get('family')}, depth {model.get('depth')}) is none of the "
      f"architectures that can be exported ({', '.join(architectures.names(source))}); ImageNet "
      "ResNets need model.bottleneck_stride=3x3 to be torchvision's"
    )
  return matches[0]
