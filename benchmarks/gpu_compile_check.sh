#!/usr/bin/env bash
# The GPU path without a GPU: compile the train step of every registered model family for an H100
# on this CPU (`scripts/benchmark.py --what=kernels`, deviceless compilation) and check that each
# compiles and launches kernels.
#
#   bash benchmarks/gpu_compile_check.sh [OUT_DIR]     # or: make test-gpu-compile
#
# The compile needs the jax CUDA plugin wheels of the installed jax (jax-cuda12-plugin and
# jax-cuda12-pjrt, ~180 MB, no driver). They go into .venv-cuda, a venv of its own that sees
# .venv's packages through a .pth file, so .venv never holds the plugin (whose "no CUDA driver"
# lines would reach every other test). Made once; later runs reuse it, and reinstall the wheels
# only when the jax of .venv changes.
#
# OUT_DIR (default: a new temporary folder) gets one folder of records (kernels_<target>.jsonl and
# .md) and one log per family; never results/. Prints one line per family (depth, kernels, compile
# seconds of the host) and exits 1 if any family did not compile or launches no kernel.
# Each family runs at its smallest depth whose stages still scan (a loop in the GPU program) and at
# batch GPU_CHECK_BATCH (8), GPU_CHECK_JOBS (2) compiles at a time, each in the one process that
# benchmark.py starts (--one_process: without it a second process compiles, and each start of jax
# with its CUDA plugin costs ~2.7 CPU-s here).
# So does every fix for depth of cnn_depth/models/fixes.py (its preset's net and optimiser, at
# the smallest depth whose stages scan: ResNet-20), each fix once (`fixes.distinct_fixes`: the
# bottleneck presets, whose fixes the basic ones have, took 100 of the check's 356 s on the 2-core
# CI machine): one line each, all compiled in one process (`--one_process`: one start of jax and its
# CUDA plugin for all), whose records and log are OUT_DIR/fixes and OUT_DIR/fixes.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
batch="${GPU_CHECK_BATCH:-8}"
parallel="${GPU_CHECK_JOBS:-2}"
out="${1:-$(mktemp -d -t gpu_compile_check.XXXXXX)}"
case "$(realpath -m "$out")/" in
  "$root/results/"*)
    echo "error: records of this check do not go into results/ (got $out)" >&2
    exit 2
    ;;
esac
mkdir -p "$out"

# Depths other than the family's smallest published one: the smallest whose stages scan (ResNets),
# and DenseNets of one layer a block (their blocks are unrolled: compile time grows with depth;
# DenseNet-121 took 114 of the check's 295 s on 2 cores, 60 CPU-s, for the layers DenseNet-13 has).
declare -A DEPTH=(
  [cifar_preact]=29 [imagenet_resnet]=34 [imagenet_plain]=34
  [cifar_densenet]=7 [cifar_densenet_bc]=10 [imagenet_densenet]=13
)
# Families that cannot compile here, and the words their failure must say (none today: each family
# compiles at its own input shape, AlexNet and the ImageNet nets at 224x224, LeNet at 32x32x1).
declare -A KNOWN_FAILURE=()
# The longest compiles first, so that the others fill the second slot beside them.
SLOW=(googlenet imagenet_resnet)

if [[ ! -x .venv/bin/python ]]; then
  echo "error: no .venv here: make venv first" >&2
  exit 2
fi
jax_version=$(.venv/bin/python -c 'import jax; print(jax.__version__)')
purelib='import sysconfig; print(sysconfig.get_paths()["purelib"])'
main_site=$(.venv/bin/python -c "$purelib")
version='import sys; print(sys.version)'
if [[ -x .venv-cuda/bin/python &&
  "$(.venv-cuda/bin/python -c "$version")" != "$(.venv/bin/python -c "$version")" ]]; then
  rm -rf .venv-cuda  # .venv was remade on another Python: its packages would not load here
fi
[[ -x .venv-cuda/bin/python ]] || .venv/bin/python -m venv .venv-cuda
cuda_site=$(.venv-cuda/bin/python -c "$purelib")
echo "import site; site.addsitedir('$main_site')" > "$cuda_site/cnn_depth_main_venv.pth"
if [[ ! -d "$cuda_site/jax_cuda12_plugin-$jax_version.dist-info" ||
  ! -d "$cuda_site/jax_cuda12_pjrt-$jax_version.dist-info" ]]; then
  echo "installing jax-cuda12-plugin and jax-cuda12-pjrt $jax_version into .venv-cuda" >&2
  .venv-cuda/bin/pip install --quiet --disable-pip-version-check --no-deps \
    "jax-cuda12-plugin==$jax_version" "jax-cuda12-pjrt==$jax_version"
fi

# Every registered family, with the depth it is checked at.
mapfile -t registered < <(.venv/bin/python -c '
from cnn_depth import models
for name, family in models.FAMILIES.items():
  print(name, min((p.depth for p in family.published), default=0))')
declare -A depth_of=()
for line in "${registered[@]}"; do
  family=${line% *}
  depth_of[$family]=${DEPTH[$family]:-${line#* }}
done
order=()
for family in "${SLOW[@]}"; do [[ -n ${depth_of[$family]:-} ]] && order+=("$family"); done
for line in "${registered[@]}"; do
  family=${line% *}
  [[ " ${SLOW[*]} " == *" $family "* ]] || order+=("$family")
done

check() {  # one family: its records in $out/$1, everything it printed in $out/$1.log
  local family=$1 depth=${depth_of[$1]}
  if [[ $depth == 0 ]]; then
    echo "no depth to check $family at: give it one in DEPTH (benchmarks/gpu_compile_check.sh)" \
      > "$out/$family.log"
    return
  fi
  JAX_TRACEBACK_FILTERING=off .venv-cuda/bin/python scripts/benchmark.py --what=kernels \
    --families="$family" --depths="$depth" --batches="$batch" --one_process \
    --out_dir="$out/$family" > "$out/$family.log" 2>&1 || true
}

# Every fix preset, with the depth benchmark.py --fixes compiles it at.
mapfile -t presets < <(.venv/bin/python -c '
from cnn_depth.models import fixes
for preset in fixes.distinct_fixes():
  print(preset.name, fixes.loop_depth(preset))')
fix_names=$(IFS=,; echo "${presets[*]%% *}")

check_fixes() {  # every preset in one process: records in $out/fixes, its output in $out/fixes.log
  JAX_TRACEBACK_FILTERING=off .venv-cuda/bin/python scripts/benchmark.py --what=kernels \
    --fixes="$fix_names" --one_process --batches="$batch" --out_dir="$out/fixes" \
    > "$out/fixes.log" 2>&1 \
    || true
}

start=$SECONDS
check_fixes &  # the longest job (ten compiles) first: the families fill the other slot
for family in "${order[@]}"; do
  while (($(jobs -rp | wc -l) >= parallel)); do wait -n || true; done
  check "$family" &
done
wait

failed=0
for family in "${order[@]}"; do
  result=$(.venv/bin/python - "$out/$family" <<'EOF'
import glob, json, sys
records = [json.loads(l) for f in glob.glob(f"{sys.argv[1]}/kernels_*.jsonl") for l in open(f)]
print(" ".join(f"{r['kernels']} {r['compile_s']:.1f}" for r in records[-1:]))
EOF
  )
  kernels=${result% *} compile_s=${result#* }
  reason=$(grep -E "failed:|^error" "$out/$family.log" | tail -1 || true)
  reason=${reason:-$(tail -1 "$out/$family.log")}
  if [[ -n $result && $kernels -gt 0 ]]; then
    printf '%-18s depth %-4s kernels %-5s compile %6s s\n' \
      "$family" "${depth_of[$family]}" "$kernels" "$compile_s"
    [[ -n ${KNOWN_FAILURE[$family]:-} ]] && echo "  note: compiles now; drop it from KNOWN_FAILURE"
  elif [[ -n ${KNOWN_FAILURE[$family]:-} && $reason == *"${KNOWN_FAILURE[$family]}"* ]]; then
    printf '%-18s depth %-4s known failure: %s\n' "$family" "${depth_of[$family]}" \
      "${KNOWN_FAILURE[$family]}"
  else
    printf '%-18s depth %-4s FAILED: %s (log: %s)\n' "$family" "${depth_of[$family]}" \
      "${result:+no kernels}${result:-$reason}" "$out/$family.log"
    failed=1
  fi
done
declare -A fix_result=()
while read -r fix kernels compile_s; do
  fix_result[$fix]="$kernels $compile_s"
done < <(.venv/bin/python - "$out/fixes" <<'EOF'
import glob, json, sys
for f in glob.glob(f"{sys.argv[1]}/kernels_*.jsonl"):
  for r in map(json.loads, open(f)):
    print(r["fix"], r["kernels"], f"{r['compile_s']:.1f}")
EOF
)
for line in "${presets[@]}"; do
  fix=${line% *} depth=${line#* }
  result=${fix_result[$fix]:-}
  kernels=${result% *} compile_s=${result#* }
  if [[ -n $result && $kernels -gt 0 ]]; then
    printf '%-18s depth %-4s kernels %-5s compile %6s s  (fix for depth)\n' \
      "$fix" "$depth" "$kernels" "$compile_s"
  else
    reason=$(grep -F " $fix | " "$out/fixes.log" | grep "failed:" | tail -1 || true)
    reason=${reason:-$(grep -E "^error" "$out/fixes.log" | tail -1 || true)}
    reason=${reason:-$(tail -1 "$out/fixes.log")}
    printf '%-18s depth %-4s FAILED: %s (log: %s)\n' "$fix" "$depth" \
      "${result:+no kernels}${result:-$reason}" "$out/fixes.log"
    failed=1
  fi
done
echo "${#order[@]} families, ${#presets[@]} fixes for depth, batch $batch," \
  "$((SECONDS - start)) s; records in $out"
exit "$failed"
