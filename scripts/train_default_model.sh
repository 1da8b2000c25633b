#!/usr/bin/env bash
# The recipe of the model shipped as dwd_fast/torch/models/default.pt: an engraved DeepScoresV2-format corpus
# made by this package, `dwd-fast train` on it, the final checkpoint packaged with how it was made.
# Usage: bash scripts/train_default_model.sh [WORK_DIR]   (needs the [pages] and [torch] extras)
# STEPS, SIZES (the size encoding: linear or log), THREADS and JOBS may be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/dwd-default-model}
STEPS=${STEPS:-4000}
SIZES=${SIZES:-log}
THREADS=${THREADS:-1}
mkdir -p "$WORK"
start=$SECONDS
# 240 pages: random piano music in the five SMuFL fonts + the bundled pieces; 20% held out (test split)
dwd-fast make-dataset "$WORK/corpus" --pages 240 --seed 0 --jobs "${JOBS:-2}" --quiet
ARGS="--steps $STEPS --batch 4 --crop 256 --threads $THREADS --degrade 0.5 --eval-every 1000 --eval-pages 2 --checkpoint-every 250 --seed 0 --sizes $SIZES"
# shellcheck disable=SC2086
dwd-fast train "$WORK/corpus" --out "$WORK/run" $ARGS --quiet
python scripts/package_model.py "$WORK/run" dwd_fast/torch/models/default.pt \
  --recipe "bash scripts/train_default_model.sh (STEPS=$STEPS SIZES=$SIZES THREADS=$THREADS): dwd-fast train CORPUS $ARGS" \
  --corpus "dwd-fast make-dataset --pages 240 --seed 0 (dwd_fast $(python -c 'import dwd_fast; print(dwd_fast.__version__)'))" \
  --size-mode "${SIZE_MODE:-blend}"
echo "done in $((SECONDS - start)) s"
