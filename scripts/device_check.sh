#!/usr/bin/env bash
# The GPU check in one command (issue #12). On the GPU machine, from the repository root:
#
#     bash scripts/device_check.sh                      # CUDA; needs .whl carried (scripts/device_prepare.sh)
#     bash scripts/device_check.sh --device cpu --tiny  # the same steps at tiny sizes on a CPU (the slow test)
#
# Installs what the machine lacks from .whl (scripts/device_install.py; torch is never touched), then runs
# scripts/device_check.py under a hard time limit. Results: $OUT/device_check.json and .md ($OUT unset:
# ./device_check_out). Every extra argument goes to device_check.py (--help lists them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${NNSYNTH_PYTHON:-python3}"          # the machine's python3, which holds its CUDA torch
WORK="${NNSYNTH_DEVICE_WORK:-/tmp/nnsynth_device}"
LIMIT="${NNSYNTH_CHECK_SECONDS:-470}"   # the whole check, install included, must end within 8 minutes
OUT="${OUT:-$PWD/device_check_out}"
mkdir -p "$OUT" "$WORK"
export OUT PYTHONUNBUFFERED=1
START=$(date +%s)

"$PY" scripts/device_install.py --site "$WORK/site" --wheels "${NNSYNTH_WHEELS:-.whl}" --report "$WORK/install.json" \
    2>&1 | tee "$OUT/install.log"
export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}" PATH="$WORK/site/bin:$PATH"

LEFT=$(( LIMIT - ($(date +%s) - START) ))
if (( LEFT < 30 )); then echo "device_check.sh: install left ${LEFT} s of ${LIMIT} s: no time for the check" >&2; exit 3; fi
# device_check.py keeps its own deadline (it skips steps that no longer fit); timeout is the backstop
timeout --kill-after=10 "$LEFT" "$PY" scripts/device_check.py --work "$WORK" --out "$OUT" \
    --install-report "$WORK/install.json" --started-at "$START" --time-limit "$LIMIT" "$@" 2>&1 \
    | tee "$OUT/device_check.log"
exit "${PIPESTATUS[0]}"
