#!/usr/bin/env bash
# Build dwd_fast._cpu with AddressSanitizer + UndefinedBehaviorSanitizer into a scratch copy of the
# package and run the test suite against it. Usage: scripts/sanitize.sh [pytest args...]
# Needs the test dependencies in the current Python environment.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/setup.py" "$root/pyproject.toml" "$root/README.md" "$root/csrc" "$root/dwd_fast" "$root/tests" "$work/"
rm -f "$work"/dwd_fast/*.so
cd "$work"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
CFLAGS="$san" LDFLAGS="$san" DWD_FAST_CUDA=0 DWD_FAST_BUILD_JOBS=2 python setup.py -q build_ext --inplace >/dev/null
export LD_PRELOAD
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
python -m pytest -q -p no:cacheprovider "$@" tests
