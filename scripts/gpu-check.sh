#!/usr/bin/env bash
# GPU verification of the CUDA backend (needs a GPU, its driver, and compute-sanitizer from the CUDA
# toolkit). Builds dwd_fast in place with CUDA, runs the `cuda` tests plainly, then under
# compute-sanitizer's memcheck and racecheck tools. Without a usable GPU it says so and exits 0.
#
# Usage: scripts/gpu-check.sh [pytest args...]   (env: PYTHON, DWD_FAST_CUDA_ARCHS, SKIP_BUILD=1)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py=${PYTHON:-python}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  DWD_FAST_CUDA=1 "$py" setup.py -q build_ext --inplace
fi

reason=$("$py" -c "from dwd_fast._arrays import cuda_unusable_reason as r; print(r() or '')")
if [[ -n "$reason" ]]; then
  echo "gpu-check: skipped: $reason"
  exit 0
fi
"$py" -c "import dwd_fast, json; print(json.dumps(dwd_fast.info()['cuda'], indent=1))"

tests=(tests/test_cuda.py)
echo "== cuda tests"
"$py" -m pytest -q -m cuda -p no:cacheprovider "${tests[@]}" "$@"

sanitizer=$(command -v compute-sanitizer || true)
if [[ -z "$sanitizer" && -n "${CUDA_HOME:-}" ]]; then sanitizer="$CUDA_HOME/bin/compute-sanitizer"; fi
if [[ -z "$sanitizer" || ! -x "$sanitizer" ]]; then
  echo "gpu-check: compute-sanitizer not found (put the CUDA toolkit's bin on PATH)" >&2
  exit 1
fi
# The stream-ordered allocator's pool is fine under memcheck; --leak-check is off because the pool
# keeps freed workspace cached on purpose (csrc/cuda/cuda_exec.cuh).
for tool in memcheck racecheck; do
  echo "== compute-sanitizer --tool $tool"
  "$sanitizer" --tool "$tool" --error-exitcode 99 --target-processes all \
    "$py" -m pytest -q -m cuda -p no:cacheprovider -x "${tests[@]}" "$@"
done
echo "gpu-check: all passed"
