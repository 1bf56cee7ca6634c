r"""Export a workdir's net as PyTorch weights in its source's names, loadable with
`load_state_dict(strict=True)` into its PyTorch twin. Only nets with a twin can be written
(cnn_depth/interop/architectures.py):
  torchvision resnet18/34/50/101/152         imagenet_resnet, shortcut B, width 64, trained with
                                             model.bottleneck_stride=3x3 (--source=timm: timm's)
  torchvision vgg11/13/16/19 (and _bn)       vgg and vgg_bn, width 64
  torchvision densenet121/169/201            imagenet_densenet
  cifar_reference resnet20/32/44/56/110/1202 cifar_resnet, shortcut A, width 16
Any other net (a plain twin, another depth, width or shortcut) is refused in one line, exit 2.

  python scripts/export_weights.py --workdir=runs/r56 --format=safetensors --out=r56.safetensors
  python scripts/export_weights.py --workdir=runs/tv_resnet50 --format=torch --out=resnet50.pth

`--format=torch` needs PyTorch (`pip install -e '.[torch]'`); safetensors does not. --out names a
file in an existing, writable folder (checked before the checkpoint is read; exit 2 otherwise); it
is written whole or not at all, with the permissions of any other output (0666 less the umask).
"""

import importlib.util
import sys

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained or imported workdir.")
_FORMAT = flags.DEFINE_string("format", "safetensors", "safetensors | torch")
_OUT = flags.DEFINE_string("out", None, "The file to write.")
_SOURCE = flags.DEFINE_string("source", None, "Name the weights as this source's (default: any).")
flags.mark_flags_as_required(["workdir", "out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from cnn_depth import console

  console.quiet_unless_verbose()
  from cnn_depth import interop
  from cnn_depth import workdir as workdir_lib
  from cnn_depth.checkpoint import CheckpointError

  try:
    if _FORMAT.value not in ("safetensors", "torch"):
      raise ValueError(f"--format must be safetensors or torch, got {_FORMAT.value!r}")
    if _FORMAT.value == "torch" and importlib.util.find_spec("torch") is None:
      raise ValueError(
        "--format=torch needs PyTorch, which is not installed (an optional extra: pip install -e "
        "'.[torch]'); or write --format=safetensors, which torch reads with safetensors.torch"
      )
    interop.files.check_out_path(_OUT.value)  # before the checkpoint is read
    config = workdir_lib.read_config(_WORKDIR.value)
    if config is None:
      raise ValueError(f"--workdir {_WORKDIR.value} holds no config.json: not a run's workdir")
    arch = interop.workdirs.architecture_of(config, _SOURCE.value)
    tensors = interop.workdirs.export_weights(_WORKDIR.value, arch)
    interop.files.write_state_dict(_OUT.value, tensors, _FORMAT.value)
  except (ValueError, CheckpointError) as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return 2
  print(f"wrote {arch.source} {arch.name} ({len(tensors)} tensors) to {_OUT.value}")
  return 0


if __name__ == "__main__":
  app.run(main)
