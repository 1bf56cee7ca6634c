#!/usr/bin/env bash
# The Speed issue's pending GPU measurements, in parts that each fit one 10-minute device call.
#
#   bash benchmarks/gpu_session.sh step     # ~7 min: bare step, bn_impl fused vs flax, depths 20/56/110
#                                           #   (full unroll) and 1202 (remat, unroll 4), bf16, batch 128;
#                                           #   and ResNet-56's kernel count compiled on the GPU
#   bash benchmarks/gpu_session.sh loop     # ~4 min: the training loop's share of the bare step, 56/110
#   bash benchmarks/gpu_session.sh recipe   # <10 min if the goal holds: He et al.'s ResNet-110 recipe,
#                                           #   64k iterations with evaluation and checkpoints, on the
#                                           #   synthetic CIFAR-shaped data; wall time in status.json
#
# Records go to $OUT (the device tool's folder) or results/benchmarks/. loop and recipe go through
# train.py and need ml_collections and tensorboardX (not in the device image): carry their wheels in
# .whl/ (benchmarks/NOTES.md); they are installed from there when present.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-results/benchmarks}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/device.txt" || true

case "${1:-}" in
  step)
    python3 scripts/benchmark.py --what=step --depths=20,56,110 --unroll=0 --bn_impls=fused,flax \
        --tag="session 3: fused BN+ReLU vs flax BN, one-reduction norms" --out_dir="$out"
    python3 scripts/benchmark.py --what=step --depths=1202 --unroll=4 --remat --bn_impls=fused,flax \
        --tag="session 3: fused BN+ReLU vs flax BN, one-reduction norms" --out_dir="$out"
    # the kernel count of a compile on the GPU itself, against the deviceless record (NOTES.md)
    python3 scripts/benchmark.py --what=kernels --target_config=local --depths=56 --unroll=64 \
        --bn_impls=fused,flax --tag="compiled on the GPU" --out_dir="$out"
    ;;
  loop)
    python3 scripts/benchmark.py --what=loop --depths=56,110 --unroll=0 --loop_steps=3000 \
        --tag="session 3: loop share" --out_dir="$out"
    ;;
  recipe)
    # Stopped at 570 s so that a slower run still leaves its metrics for an extrapolation.
    timeout 570 python3 scripts/train.py --config=configs/cifar_resnet.py:depth=110 \
        --config.dataset.name=synthetic --config.model.dtype=bfloat16 --workdir=/tmp/recipe110 \
        2>&1 | grep -v "^step" || true
    cp /tmp/recipe110/status.json /tmp/recipe110/metrics.jsonl "$out/"
    python3 - "$out" <<'EOF'
import json, sys
status = json.load(open(f"{sys.argv[1]}/status.json"))
if status["status"] == "done":
  print(f"done: {status['timed_steps']} steps in {status['timed_seconds'] / 60:.2f} min after the first")
else:
  logs = [json.loads(l) for l in open(f"{sys.argv[1]}/metrics.jsonl")]
  rates = [r["images_per_sec"] for r in logs if "images_per_sec" in r][1:]
  print(f"{status['status']} at the time limit: {logs[-1]['step']} steps; median training rate "
        f"{sorted(rates)[len(rates) // 2]:,.0f} img/s between logs (evaluation excluded)")
EOF
    ;;
  *)
    echo "usage: bash benchmarks/gpu_session.sh step|loop|recipe" >&2
    exit 2
    ;;
esac
