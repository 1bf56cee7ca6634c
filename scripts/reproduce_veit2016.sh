#!/usr/bin/env bash
# Veit et al. 2016, "Residual networks behave like ensembles of relatively shallow networks":
# lesion studies (§4, Figs. 3 and 5) and the gradient carried by paths of each length (§5, Fig. 6).
#
#   scripts/reproduce_veit2016.sh --quick          # embedded digits, ResNet-32 vs plain-32 and VGG-16, seeds 0,1,2: about an hour on 2 CPU cores
#   scripts/reproduce_veit2016.sh --data_dir=DIR   # the paper: ResNet-110 on CIFAR-10 (64k iterations) vs
#                                                  # VGG-16 and plain-20, 1,000 sampled block sets per path length (a GPU)
#
# The single-path contrasts are the ResNet's plain twin (same net without shortcuts) and a VGG (Veit et
# al. use a 15-layer VGG): deleting a VGG layer replaces it by the identity where its input and output
# shapes agree (cnn_depth/models/vgg.py).
#
# Options: --runs=DIR (workdirs, default runs/veit2016), --out=DIR (CSVs + figures, default
# results/veit2016), --seeds=LIST (training seeds, comma-separated; default 0,1,2 quick, 0 full),
# --steps=N and --depth=N (quick mode's training steps and depth, default 800 and 32), --samples=N (sampled block sets
# per path length; default 100 quick, 1000 full), --lesion_samples=N (random block sets per k and
# reorderings, default 20).
# Every net is trained once per seed S, into $runs/resnet<depth>_sS, $runs/plain<depth>_sS and $runs/vgg16_sS
# (full mode: resnet110_sS, plain20_sS, vgg16_sS). One scripts/lesion.py call over all workdirs writes
# lesion_single.csv, lesion_multi.csv and lesion_reorder.csv with a row per net and seed (their seed
# column) and draws the mean over seeds with its std; one scripts/path_gradients.py call over the ResNet's
# seeds writes path_gradients.csv (mean over seeds, grad_norm_seed_std, seeds) and
# path_gradients_by_seed.csv.
# Training goes through scripts/train.py: finished runs are reused, interrupted ones resume. The analyses
# (scripts/lesion.py, scripts/path_gradients.py) read the checkpoints and never retrain.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mode=full data_dir="" runs=runs/veit2016 out=results/veit2016 steps=800 depth=32 samples="" lesion_samples=20 seeds=""
for arg in "$@"; do
  case $arg in
    --quick) mode=quick ;;
    --data_dir=*) data_dir=${arg#*=} ;;
    --runs=*) runs=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    --seeds=*) seeds=${arg#*=} ;;
    --steps=*) steps=${arg#*=} ;;
    --depth=*) depth=${arg#*=} ;;
    --samples=*) samples=${arg#*=} ;;
    --lesion_samples=*) lesion_samples=${arg#*=} ;;
    *) echo "unknown argument: $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ "$mode" = quick ]; then
  seeds=${seeds:-0,1,2}
else
  [ -n "$data_dir" ] || { echo "the full mode needs --data_dir=DIR holding CIFAR-10 (see README, Data)" >&2; exit 2; }
  seeds=${seeds:-0}
fi
IFS=, read -r -a seed_list <<< "$seeds"
[ ${#seed_list[@]} -gt 0 ] || { echo "--seeds needs at least one seed" >&2; exit 2; }
resnets=() plains=() vggs=()
for s in "${seed_list[@]}"; do
  if [ "$mode" = quick ]; then
    resnet="$runs/resnet${depth}_s$s" plain="$runs/plain${depth}_s$s"
    for r in true false; do
      dir=$([ $r = true ] && echo "$resnet" || echo "$plain")
      "$PY" scripts/train.py --config="configs/quickstart.py:depth=$depth,residual=$r,seed=$s,steps=$steps" \
        --workdir="$dir"
    done
    "$PY" scripts/train.py --config="configs/vgg_digits.py:depth=16,seed=$s,steps=$steps" --workdir="$runs/vgg16_s$s"
  else
    resnet="$runs/resnet110_s$s" plain="$runs/plain20_s$s"
    "$PY" scripts/train.py --config="configs/cifar_resnet.py:depth=110,seed=$s" --workdir="$resnet" \
      --config.dataset.data_dir="$data_dir"
    "$PY" scripts/train.py --config="configs/cifar_resnet.py:depth=20,residual=false,seed=$s" --workdir="$plain" \
      --config.dataset.data_dir="$data_dir"
    "$PY" scripts/train.py --config="configs/cifar_vgg.py:depth=16,seed=$s" --workdir="$runs/vgg16_s$s" \
      --config.dataset.data_dir="$data_dir"
  fi
  resnets+=("$resnet") plains+=("$plain") vggs+=("$runs/vgg16_s$s")
done
if [ "$mode" = quick ]; then
  names=("ResNet-$depth" "plain-$depth" VGG-16) samples=${samples:-100}
  data="embedded digits" nets="width 16, batch 128, $steps steps" test_images=297
else
  names=(ResNet-110 plain-20 VGG-16) samples=${samples:-1000}
  data="CIFAR-10" nets="batch 128, 64k iterations" test_images=10,000
fi
# One label per workdir: a net's label repeated once per seed, so that lesion.py groups the seeds.
workdirs=$(IFS=,; echo "${resnets[*]},${plains[*]},${vggs[*]}")
labels=$(for name in "${names[@]}"; do for s in "${seed_list[@]}"; do printf '%s,' "$name"; done; done)
labels=${labels%,}
if [ ${#seed_list[@]} -gt 1 ]; then
  seed_note="seeds $seeds (mean ± std over the ${#seed_list[@]} seeds)"
else
  seed_note="seed $seeds"
fi
when="$(date -u +%F), $(uname -n) ($(nproc) cores)"
"$PY" scripts/lesion.py --workdir="$workdirs" --labels="$labels" --out_dir="$out" \
  --samples="$lesion_samples" \
  --caption="$data, $nets, $seed_note; test error on the $test_images test images, $lesion_samples random sets per k; $when"
resnet_dirs=$(IFS=,; echo "${resnets[*]}")
"$PY" scripts/path_gradients.py --workdir="$resnet_dirs" --samples="$samples" --batch=128 --out_dir="$out" \
  --caption="${names[0]} on $data ($nets, $seed_note); gradients on 128 training images, $samples sampled paths per length; $when"
