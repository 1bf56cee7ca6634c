"""PyTorch weights in and out: torchvision, timm and the reference CIFAR ResNets (see
architectures.py), exact copies both ways (convert.py), as workdirs (workdirs.py)."""

from cnn_depth.interop import architectures, convert, files, workdirs  # noqa: F401
