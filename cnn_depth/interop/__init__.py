"""PyTorch weights in and out: torchvision's ResNets, VGGs and DenseNets, timm's and the reference
CIFAR ResNets (see architectures.py), exact copies both ways (convert.py), as workdirs
(workdirs.py)."""

from cnn_depth.interop import architectures, convert, files, workdirs  # noqa: F401
