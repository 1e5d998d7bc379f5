#!/usr/bin/env bash
# A born-again banking77 teacher (Furlanello et al. 2018): three all-MiniLM-L6-v2 teachers from different seeds,
# their ensemble measured, then distilled (soft KD on the averaged targets) into a fresh all-MiniLM-L6-v2.
# Every choice is made on the validation carve-out; test is only evaluated. One job at a time (CPU or GPU).
#
#   DATA_DIR=../shared/data bash benchmarks/run_banking77_born_again.sh
#
# Settings (environment): DATA_DIR, OUT (runs/born_again), PREFIX (result-name prefix, default the machine
# kind: cpu or gpu), SEEDS ("3 1 2"), EXTRA (more distill_grid.py options; a smoke run:
# EXTRA="--set teacher.train.max_steps=2 --set student.train.max_steps=2"). Results: benchmarks/results/<PREFIX>_banking77_born_again_*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR=${DATA_DIR:-${TEXTKD_DATA_DIR:-../shared/data}}
OUT=${OUT:-runs/born_again}
SEEDS=${SEEDS:-3 1 2}
PY=${PYTHON:-python}
PREFIX=${PREFIX:-$($PY -c "import torch; print('gpu' if torch.cuda.is_available() else 'cpu')")}
EXTRA=${EXTRA:-}
common=(recipes/banking77.yaml --data-dir "$DATA_DIR" --set teacher.train.progress=false
        --set student.train.progress=false)

teachers=()
for seed in $SEEDS; do
  # shellcheck disable=SC2086
  $PY benchmarks/distill_grid.py "${common[@]}" --set teacher.label_smoothing=0.1 --set teacher.train.seed="$seed" \
      --name "${PREFIX}_banking77_born_again_seed$seed" --out "$OUT/seed$seed" $EXTRA
  teachers+=("$OUT/seed$seed/teacher")
done
$PY benchmarks/teacher_ensemble.py "${teachers[@]}" --data-dir "$DATA_DIR" --name "${PREFIX}_banking77_born_again_ensemble"
others=$(IFS=,; echo "${teachers[*]:1}")
# The student: all-MiniLM-L6-v2 as shipped (mean pooling, linear head), the teacher's lr and epochs.
# shellcheck disable=SC2086
$PY benchmarks/distill_grid.py "${common[@]}" --teacher "${teachers[0]}" --set distill.teachers="$others" \
    --name "${PREFIX}_banking77_born_again" --out "$OUT/born_again" \
    --student "tinybert-4l-312@minilm-l6:soft:lr=1e-4,epochs=10" $EXTRA
echo "born-again teacher: $OUT/born_again/students/tinybert-4l-312@minilm-l6/tinybert-4l-312-soft"
