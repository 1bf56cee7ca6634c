#!/usr/bin/env bash
# Huang et al. 2016, "Deep networks with stochastic depth": constant depth vs stochastic depth (p_L = 0.5).
#
#   scripts/reproduce_huang2016.sh --quick            # embedded digits, ResNet-32, 800 steps each: minutes on 2 CPU cores
#   scripts/reproduce_huang2016.sh --data_dir=DIR     # the paper: ResNet-110 on CIFAR-10, 500 epochs each (a GPU)
#
# Options: --runs=DIR (workdirs, default runs/huang2016), --out=DIR (figure + CSV, default results/huang2016),
# --steps=N (quick mode's training steps per run, default 800), --seeds=LIST (default 0,1,2,3,4 quick,
# 0 full; the figure shows each variant's mean ± std, curves.csv its mean, std and seed count).
# Finished runs are reused (relaunching resumes); the figure is re-made from the workdirs every time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
mode=full data_dir="" runs=runs/huang2016 out=results/huang2016 steps=800 seeds=""
for arg in "$@"; do
  case $arg in
    --quick) mode=quick ;;
    --data_dir=*) data_dir=${arg#*=} ;;
    --runs=*) runs=${arg#*=} ;;
    --out=*) out=${arg#*=} ;;
    --steps=*) steps=${arg#*=} ;;
    --seeds=*) seeds=${arg#*=} ;;
    *) echo "unknown argument: $arg (see the header of $0)" >&2; exit 2 ;;
  esac
done
if [ "$mode" = quick ]; then
  for seed in $(tr , " " <<< "${seeds:-0,1,2,3,4}"); do for p in 1.0 0.5; do
    "$PY" scripts/train.py --config=configs/quickstart.py:depth=32,residual=true,steps=$steps,seed=$seed \
      --config.model.survival_last=$p --workdir="$runs/quick_pL${p}_s$seed"
  done; done
  prefix="$runs/quick_pL" caption="embedded digits, ResNet-32 (width 16), batch 128, $steps steps, lr /10 at 50% and 75%"
else
  [ -n "$data_dir" ] || { echo "the full mode needs --data_dir=DIR holding CIFAR-10 (see README, Data)" >&2; exit 2; }
  for seed in $(tr , " " <<< "${seeds:-0}"); do for p in 1.0 0.5; do
    "$PY" scripts/train.py --config=configs/stochastic_depth.py:survival_last=$p,seed=$seed \
      --workdir="$runs/r110_pL${p}_s$seed" --config.dataset.data_dir="$data_dir"
  done; done
  prefix="$runs/r110_pL" caption="CIFAR-10, ResNet-110, 500 epochs, Nesterov, lr /10 at 250 and 375"
fi
"$PY" scripts/plot_stochastic_depth.py --runs="${prefix}1.0_s*,${prefix}0.5_s*" \
  --labels="constant depth,stochastic depth (p_L=0.5)" --out_dir="$out" \
  --caption="$caption; $(date -u +%F), $(uname -n) ($(nproc) cores)"
