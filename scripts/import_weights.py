r"""Import published PyTorch weights as a workdir that the analysis scripts (and fine-tuning) read.

  python scripts/import_weights.py --source=torchvision --arch=resnet50 \
      --weights=resnet50-11ad3fa6.pth --workdir=runs/tv_resnet50
  python scripts/import_weights.py --source=timm --arch=resnet50 \
      --weights=model.safetensors --workdir=runs/timm_resnet50
  python scripts/import_weights.py --source=cifar_reference --arch=resnet56 \
      --weights=resnet56-4bfd9763.th --workdir=runs/ref_resnet56

Sources and architectures: cnn_depth/interop/architectures.py (`--list` prints them). `.pth`/`.th`
files need PyTorch (`pip install -e '.[torch]'`); `.safetensors` files do not. A file whose keys or
shapes do not fit the architecture is refused in one sentence (exit 2) and nothing is written.
The workdir's config is the recipe of configs/<arch's config>.py for that net, so
`scripts/train.py --config=<that config> --workdir=W` with the same model fields fine-tunes it.
"""

import os
import sys

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SOURCE = flags.DEFINE_string("source", None, "torchvision | timm | cifar_reference")
_ARCH = flags.DEFINE_string("arch", None, "e.g. resnet50 (torchvision, timm), resnet56 (cifar)")
_WEIGHTS = flags.DEFINE_string("weights", None, "A .pth/.th/.pt or .safetensors file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "A new directory for the imported run.")
_LIST = flags.DEFINE_bool("list", False, "Print the importable architectures and exit.")


def load_config(name: str):
  """configs/<name>.py's get_config() (scripts may read configs/; the package does not)."""
  from cnn_depth import config as config_lib

  return config_lib.load_config_file(os.path.join(ROOT, "configs", f"{name}.py"))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from cnn_depth import console

  console.quiet_unless_verbose()
  from cnn_depth import interop

  if _LIST.value:
    print("\n".join(interop.architectures.names()))
    return 0
  missing = [f"--{f.name}" for f in (_SOURCE, _ARCH, _WEIGHTS, _WORKDIR) if not f.value]
  try:
    if missing:
      raise ValueError(
        f"{', '.join(missing)} required (see --help; --list names the architectures)"
      )
    arch = interop.architectures.get(_SOURCE.value, _ARCH.value)
    state_dict = interop.files.read_state_dict(_WEIGHTS.value)
    config = interop.workdirs.configure(load_config(arch.config), arch)
    source = {"source": arch.source, "architecture": arch.name,
              "weights": os.path.abspath(_WEIGHTS.value)}  # fmt: skip
    interop.workdirs.import_weights(config, arch, state_dict, _WORKDIR.value, source)
  except ValueError as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2
  print(f"imported {arch.source} {arch.name} from {_WEIGHTS.value} into {_WORKDIR.value}")
  return 0


if __name__ == "__main__":
  app.run(main)
