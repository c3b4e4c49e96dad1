#!/usr/bin/env bash
# Rebuild, from scratch, what `scripts/device_check.sh` carries to the GPU machine: .whl/ (the wheels it
# lacks, as one xz archive; see scripts/device_prepare.py) and print the size that travels per call.
# Run here, in the repository root's venv (the pinned versions CI tests):  bash scripts/device_prepare.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-.venv/bin/python}"
rm -rf .whl
"$PY" scripts/device_prepare.py --out .whl "$@"
du -b .whl/* | awk '{printf "%8.1f MiB  %s\n", $1 / 1048576, $2}'
echo "device command: run(command=\"bash scripts/device_check.sh\", carry=[\".whl\"], timeout_s=540)"
