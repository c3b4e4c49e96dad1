#!/usr/bin/env bash
# The evidence experiment (issues 14-16) on this 2-core CPU: a demo cohort with 40 test subjects and two
# acquisition variants, the cpu-small profile, paired CIs per arm. It resumes: runs whose
# docs/experiment_evidence/runs/<run>/result.json exists are skipped, so a later session re-creates the
# cohort (same seed, identical files) and continues where the last one stopped.
#
#   bash scripts/run_evidence.sh                                   # 10 real cases, 5 seeds, real vs synth
#   SIZES="10 20 all" SEEDS=5 ARMS="real synth nnUNetTrainerSynthInpaint" bash scripts/run_evidence.sh
#   EPOCHS=120 OUT=docs/experiment_protocol/epochs120 ARMS="real nnUNetTrainerSynthInpaint" SEEDS=3 \
#     bash scripts/run_evidence.sh                                 # a protocol candidate: a longer budget
#   PROFILE=cpu-2d OUT=docs/experiment_protocol/cpu2d SIZES="10 60" SEEDS=1 ARMS=real \
#     bash scripts/run_evidence.sh                                 # nnU-Net's 2d configuration, shrunk
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${NNSYNTH_EVIDENCE_WORK:-$REPO/evidence_work}"
export nnUNet_raw=$WORK/nnUNet_raw nnUNet_preprocessed=$WORK/nnUNet_preprocessed nnUNet_results=$WORK/nnUNet_results
export nnUNet_def_n_proc=1 nnUNet_compile=f
export PATH="$REPO/.venv/bin:$PATH"
ID=992
RAW=$nnUNet_raw/Dataset${ID}_NNSynthEvidence
if [ ! -f "$RAW/dataset.json" ]; then
  nnsynth demo-cohort --dataset-id $ID --name NNSynthEvidence --subjects 100 --test-fraction 0.4 \
    --variants scanner-b thick-slice -np 2
fi
CONFIG=3d_fullres
[ "${PROFILE:-cpu-small}" = cpu-2d ] && CONFIG=2d
if [ ! -d "$nnUNet_preprocessed/Dataset${ID}_NNSynthEvidence/nnUNetPlans_$CONFIG" ]; then
  nnUNet_n_proc_DA=1 nnUNetv2_plan_and_preprocess -d $ID -c $CONFIG -np 2 --verify_dataset_integrity
fi
export nnUNet_n_proc_DA=0
# shellcheck disable=SC2086
nnsynth experiment -d $ID --real-cases ${SIZES:-10} --seeds "${SEEDS:-5}" --arms ${ARMS:-real synth} \
  --extra-test "$RAW/test_scanner-b" "$RAW/test_thick-slice" -o "$REPO/${OUT:-docs/experiment_evidence}" -j 2 \
  --profile "${PROFILE:-cpu-small}" \
  ${EPOCHS:+--epochs "$EPOCHS"} ${ITERATIONS:+--iterations "$ITERATIONS"}
