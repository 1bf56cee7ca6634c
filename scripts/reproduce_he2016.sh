#!/usr/bin/env bash
# He et al. 2016, "Deep residual learning", §4.2: plain nets vs ResNets of depth 6n+2 (Fig. 6, Table 6).
#
#   scripts/reproduce_he2016.sh --quick            # embedded digits, depths 8-44, 800 steps: minutes on 2 CPU cores
#   scripts/reproduce_he2016.sh --data_dir=DIR     # the paper: CIFAR-10, depths 20-110 plain and ResNet, 64k
#                                                  # iterations, and ResNet-1202 (GPU days in all)
#
# Options: --runs=DIR (workdirs, default runs/he2016), --out=DIR (figures + table, default results/he2016),
# --steps=N (quick mode's steps per run, default 800), --depths=LIST (default 8,20,32,44 quick;
# 20,32,44,56,110 and ResNet-1202 full), --seeds=LIST (default 0,1,2 quick, 0 full; with several,
# the table gives mean ± std and best, table_by_seed.csv each run, the figure each net's mean ± std).
# Runs go through scripts/sweep.py: finished runs are reused, interrupted ones resume. The figures and
# the table are re-made from the workdirs every time (scripts/make_figures.py), also when a run failed
# (the exit status is then 1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mode=full data_dir="" runs=runs/he2016 out=results/he2016 steps=800 depths="" seeds="" failed=0
for arg in "$@"; do
  case $arg in
    --quick) mode=quick ;;
    --data_dir=*) data_dir=${arg#*=} ;;
    --runs=*) runs=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    --steps=*) steps=${arg#*=} ;;
    --depths=*) depths=${arg#*=} ;;
    --seeds=*) seeds=${arg#*=} ;;
    *) echo "unknown argument: $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ "$mode" = quick ]; then
  # Four checkpoints through training: the Hessian spectra of scripts/reproduce_li2018.sh read them.
  "$PY" scripts/sweep.py --config="configs/quickstart.py:steps=$steps" --workdir="$runs" \
    --depths="${depths:-8,20,32,44}" --seeds="${seeds:-0,1,2}" --residual=true,false \
    --extra="--config.checkpoint_every_steps=$((steps >= 4 ? steps / 4 : 1)),--config.keep_checkpoints=4" || failed=1
  caption="embedded digits (1,500 train / 297 test, 8x8), width 16, batch 128, $steps steps, lr 0.1 /10 at 50% and 75%; train error = training-mode mini-batch error (dashed), test error bold"
  ymax=60
else
  [ -n "$data_dir" ] || { echo "the full mode needs --data_dir=DIR holding CIFAR-10 (see README, Data)" >&2; exit 2; }
  "$PY" scripts/sweep.py --config=configs/cifar_resnet.py --workdir="$runs" \
    --depths="${depths:-20,32,44,56,110}" --seeds="${seeds:-0}" --residual=true,false \
    --extra="--config.dataset.data_dir=$data_dir" || failed=1
  if [ -z "$depths" ]; then  # the whole Table 6: ResNet-1202 too, unless depths were chosen
    "$PY" scripts/sweep.py --config=configs/cifar_resnet.py --workdir="$runs" --depths=1202 --seeds=0 \
      --residual=true --extra="--config.dataset.data_dir=$data_dir" || failed=1
  fi
  caption="CIFAR-10, batch 128, 64k iterations, lr 0.1 /10 at 32k and 48k, weight decay 1e-4, option A shortcuts; train error dashed, test error bold"
  ymax=20
fi
"$PY" scripts/make_figures.py --runs_dir="$runs" --out_dir="$out" --ymax=$ymax \
  --caption="$caption; $(date -u +%F), $(uname -n) ($(nproc) cores)"
exit $failed
