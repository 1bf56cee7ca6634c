#!/usr/bin/env bash
# Li et al. 2018, "Visualizing the loss landscape of neural nets": filter-normalised loss landscapes
# of plain nets and ResNets at two depths, and the Hessian's extreme eigenvalues (and its eigenvalue
# density, Ghorbani et al. 2019) through training.
#
#   scripts/reproduce_li2018.sh --quick            # embedded digits, plain vs ResNet at depths 20 and 44, 3 seeds
#   scripts/reproduce_li2018.sh --data_dir=DIR     # CIFAR-10, depths 20 and 56 (a GPU)
#
# The nets are He et al.'s (scripts/reproduce_he2016.sh, same --runs): finished runs are reused,
# missing ones trained (quick mode keeps 4 checkpoints through training for the Hessian).
# Options: --runs=DIR (default runs/he2016), --out=DIR (CSVs + figures, default results/li2018),
# --steps=N, --depths=LIST (two or more), --seeds=LIST (default 0,1,2), --points_2d=N (grid points
# per axis of the 2-D landscape, default 15; it is drawn for the first seed only), --hessian_examples=N
# (training images of the Hessian, default 256). The Hessian: 16 Lanczos steps per checkpoint for
# lambda_max and lambda_min, one start vector of 24 steps for the density at the last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mode=full data_dir="" runs=runs/he2016 out=results/li2018 steps=800 depths="" seeds=0,1,2
points_2d=15 hessian_examples=256 failed=0
for arg in "$@"; do
  case $arg in
    --quick) mode=quick ;;
    --data_dir=*) data_dir=${arg#*=} ;;
    --runs=*) runs=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    --steps=*) steps=${arg#*=} ;;
    --depths=*) depths=${arg#*=} ;;
    --seeds=*) seeds=${arg#*=} ;;
    --points_2d=*) points_2d=${arg#*=} ;;
    --hessian_examples=*) hessian_examples=${arg#*=} ;;
    *) echo "unknown argument: $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ "$mode" = quick ]; then
  depths=${depths:-20,44}
  bash scripts/reproduce_he2016.sh --quick --runs="$runs" --out="$runs/figures" --steps="$steps" \
    --depths="$depths" --seeds="$seeds" || failed=1
  data="embedded digits, width 16, batch 128, $steps steps"
else
  [ -n "$data_dir" ] || { echo "the full mode needs --data_dir=DIR holding CIFAR-10 (see README, Data)" >&2; exit 2; }
  depths=${depths:-20,56}
  bash scripts/reproduce_he2016.sh --data_dir="$data_dir" --runs="$runs" --out="$runs/figures" \
    --depths="$depths" --seeds="$seeds" || failed=1
  data="CIFAR-10, He et al.'s recipe (64k iterations)"
fi
workdirs=""
for seed in $(tr , " " <<< "$seeds"); do for d in $(tr , " " <<< "$depths"); do for net in plain resnet; do
  workdirs="$workdirs${workdirs:+,}$runs/${net}_d${d}_s$seed"
done; done; done
first_seed=${seeds%%,*}
"$PY" scripts/loss_landscape.py --workdir="$workdirs" --out_dir="$out" --points_2d="$points_2d" \
  --plane_seeds="$first_seed" --hessian_examples="$hessian_examples" --data_dir="$data_dir" \
  --lanczos_iters=16 --density_iters=24 --density_draws=1 \
  --caption="$data; BN in inference mode; landscapes over all training images, directions filter-normalised and drawn per seed; Hessian of the loss on $hessian_examples training images (Lanczos, 16 steps); seeds $seeds; $(date -u +%F), $(uname -n) ($(nproc) cores)" \
  || failed=1
exit $failed
