#!/usr/bin/env bash
# Veit et al. 2016, "Residual networks behave like ensembles of relatively shallow networks":
# lesion studies (§4, Figs. 3 and 5) and the gradient carried by paths of each length (§5, Fig. 6).
#
#   scripts/reproduce_veit2016.sh --quick          # embedded digits, ResNet-32 vs plain-32 and VGG-16: minutes on 2 CPU cores
#   scripts/reproduce_veit2016.sh --data_dir=DIR   # the paper: ResNet-110 on CIFAR-10 (64k iterations) vs
#                                                  # VGG-16 and plain-20, 1,000 sampled block sets per path length (a GPU)
#
# The single-path contrasts are the ResNet's plain twin (same net without shortcuts) and a VGG (Veit et
# al. use a 15-layer VGG): deleting a VGG layer replaces it by the identity where its input and output
# shapes agree (cnn_depth/models/vgg.py).
#
# Options: --runs=DIR (workdirs, default runs/veit2016), --out=DIR (CSVs + figures, default
# results/veit2016), --steps=N and --depth=N (quick mode's training steps and depth, default 800 and 32), --samples=N (sampled block sets
# per path length; default 100 quick, 1000 full), --lesion_samples=N (random block sets per k and
# reorderings, default 20).
# Training goes through scripts/train.py: finished runs are reused, interrupted ones resume. The analyses
# (scripts/lesion.py, scripts/path_gradients.py) read the checkpoints and never retrain.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mode=full data_dir="" runs=runs/veit2016 out=results/veit2016 steps=800 depth=32 samples="" lesion_samples=20
for arg in "$@"; do
  case $arg in
    --quick) mode=quick ;;
    --data_dir=*) data_dir=${arg#*=} ;;
    --runs=*) runs=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    --steps=*) steps=${arg#*=} ;;
    --depth=*) depth=${arg#*=} ;;
    --samples=*) samples=${arg#*=} ;;
    --lesion_samples=*) lesion_samples=${arg#*=} ;;
    *) echo "unknown argument: $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ "$mode" = quick ]; then
  resnet="$runs/resnet$depth" plain="$runs/plain$depth" vgg="$runs/vgg16"
  labels="ResNet-$depth,plain-$depth,VGG-16" samples=${samples:-100}
  for r in true false; do
    dir=$([ $r = true ] && echo "$resnet" || echo "$plain")
    "$PY" scripts/train.py --config="configs/quickstart.py:depth=$depth,residual=$r,steps=$steps" --workdir="$dir"
  done
  "$PY" scripts/train.py --config="configs/vgg_digits.py:depth=16,steps=$steps" --workdir="$vgg"
  data="embedded digits" nets="width 16, batch 128, $steps steps" test_images=297
else
  [ -n "$data_dir" ] || { echo "the full mode needs --data_dir=DIR holding CIFAR-10 (see README, Data)" >&2; exit 2; }
  resnet="$runs/resnet110" plain="$runs/plain20" vgg="$runs/vgg16" labels="ResNet-110,plain-20,VGG-16"
  samples=${samples:-1000}
  "$PY" scripts/train.py --config=configs/cifar_resnet.py:depth=110 --workdir="$resnet" \
    --config.dataset.data_dir="$data_dir"
  "$PY" scripts/train.py --config=configs/cifar_resnet.py:depth=20,residual=false --workdir="$plain" \
    --config.dataset.data_dir="$data_dir"
  "$PY" scripts/train.py --config=configs/cifar_vgg.py:depth=16 --workdir="$vgg" \
    --config.dataset.data_dir="$data_dir"
  data="CIFAR-10" nets="batch 128, 64k iterations" test_images=10,000
fi
when="$(date -u +%F), $(uname -n) ($(nproc) cores)"
"$PY" scripts/lesion.py --workdir="$resnet,$plain,$vgg" --labels="$labels" --out_dir="$out" \
  --samples="$lesion_samples" \
  --caption="$data, $nets; test error on the $test_images test images, $lesion_samples random sets per k; $when"
"$PY" scripts/path_gradients.py --workdir="$resnet" --samples="$samples" --batch=128 --out_dir="$out" \
  --caption="${labels%%,*} on $data ($nets); gradients on 128 training images, $samples sampled paths per length; $when"
