#!/usr/bin/env bash
# Balduzzi et al. 2017, "The shattered gradients problem": the correlation of input gradients along a
# line of inputs decays with depth in plain nets, far more slowly with skip connections.
#
#   scripts/reproduce_balduzzi2017.sh --quick            # embedded digits, plain vs ResNet, depths 8-44, 3 seeds
#   scripts/reproduce_balduzzi2017.sh --data_dir=DIR     # CIFAR-10, depths 20-110 (a GPU)
#
# The nets are He et al.'s (scripts/reproduce_he2016.sh, same --runs): finished runs are reused, missing
# ones trained. Each net is measured at its initialisation (re-drawn from its seed) and trained.
# Options: --runs=DIR (workdirs, default runs/he2016), --out=DIR (CSV + figure, default
# results/balduzzi2017), --steps=N, --depths=LIST, --seeds=LIST (passed to reproduce_he2016.sh;
# default 0,1,2), --lines=N and --points=N (lines of inputs per net and inputs per line, default 6
# and 128), --radius=R (half-length of a line in per-pixel stds, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mode=full data_dir="" runs=runs/he2016 out=results/balduzzi2017 steps=800 depths="" seeds=0,1,2
lines=6 points=128 radius=1 failed=0
for arg in "$@"; do
  case $arg in
    --quick) mode=quick ;;
    --data_dir=*) data_dir=${arg#*=} ;;
    --runs=*) runs=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    --steps=*) steps=${arg#*=} ;;
    --depths=*) depths=${arg#*=} ;;
    --seeds=*) seeds=${arg#*=} ;;
    --lines=*) lines=${arg#*=} ;;
    --points=*) points=${arg#*=} ;;
    --radius=*) radius=${arg#*=} ;;
    *) echo "unknown argument: $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ "$mode" = quick ]; then
  depths=${depths:-8,20,32,44}
  bash scripts/reproduce_he2016.sh --quick --runs="$runs" --out="$runs/figures" --steps="$steps" \
    --depths="$depths" --seeds="$seeds" || failed=1
  data="embedded digits, width 16, batch 128, $steps steps" test="test digits"
else
  [ -n "$data_dir" ] || { echo "the full mode needs --data_dir=DIR holding CIFAR-10 (see README, Data)" >&2; exit 2; }
  depths=${depths:-20,32,44,56,110}
  bash scripts/reproduce_he2016.sh --data_dir="$data_dir" --runs="$runs" --out="$runs/figures" \
    --depths="$depths" --seeds="$seeds" || failed=1
  data="CIFAR-10, He et al.'s recipe (64k iterations)" test="test images"
fi
workdirs=""
for seed in $(tr , " " <<< "$seeds"); do for d in $(tr , " " <<< "$depths"); do for net in plain resnet; do
  workdirs="$workdirs${workdirs:+,}$runs/${net}_d${d}_s$seed"
done; done; done
"$PY" scripts/shattered_gradients.py --workdir="$workdirs" --out_dir="$out" --lines="$lines" \
  --points="$points" --radius="$radius" --data_dir="$data_dir" \
  --caption="$data; gradient of the predicted class's logit w.r.t. the input at $points points of a line through each of $lines $test (±$radius per-pixel std, a random direction), correlation of gradients k points apart, mean over lines; seeds $seeds; $(date -u +%F), $(uname -n) ($(nproc) cores)"
exit $failed
