#!/usr/bin/env bash
# Issue 10: fixed T=4 vs a decaying temperature (8 -> 1, linear and cosine) for the tinybert-4l-312 student,
# random init, method soft, alpha 0.7, 20 epochs, seed 42, the same reused banking77 teacher: three processes
# in parallel on one GPU, so their wall times compare. TEACHER is a trained teacher folder.
set -u
TEACHER=${TEACHER:?a trained banking77 teacher folder}; DATA=${DATA:-../shared/data}; RESULTS=${RESULTS:-benchmarks/results}
export PYTHONPATH=src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
g() { name=$1; shift; python3 benchmarks/distill_grid.py recipes/banking77.yaml --data-dir "$DATA" --results-dir "$RESULTS" \
  --teacher "$TEACHER" --set student.train.progress=false --out "runs/schedule/$name" --name "$name" "$@" \
  > "$RESULTS/$name.log" 2>&1 & }
g banking77_tinybert_soft_T4_fixed --student "tinybert-4l-312:soft"
g banking77_tinybert_soft_T8to1_linear \
  --student "tinybert-4l-312:soft:distill.temperature=8,distill.temperature_schedule=linear,distill.temperature_end=1"
g banking77_tinybert_soft_T8to1_cosine \
  --student "tinybert-4l-312:soft:distill.temperature=8,distill.temperature_schedule=cosine,distill.temperature_end=1"
wait
tail -n 2 "$RESULTS"/banking77_tinybert_soft_T*.log
