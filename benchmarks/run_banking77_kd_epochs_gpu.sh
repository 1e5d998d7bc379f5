#!/usr/bin/env bash
# banking77 on one GPU, in one call: does KD need a longer schedule? One fp32 teacher (patience 0), then
# the TinyBERT-shape and BiLSTM students with none and soft for 20 and 40 epochs, as parallel processes.
# Needs a local all-MiniLM-L6-v2 folder (MINILM) and banking77 (DATA); figures go to $RESULTS.
set -u
MINILM=${MINILM:-.gpu/minilm}; DATA=${DATA:-.gpu/data}; RESULTS=${RESULTS:-benchmarks/results}; RUNS=${RUNS:-runs/b77kd}
export PYTHONPATH=src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
grid() { python3 benchmarks/distill_grid.py recipes/banking77.yaml --data-dir "$DATA" --results-dir "$RESULTS" \
  --set teacher.backbone="$MINILM" --set teacher.train.progress=false --set student.train.progress=false \
  --set teacher.train.patience=0 --set teacher.train.mixed_precision=no --set student.train.mixed_precision=no \
  ${EXTRA:-} "$@"; }
mkdir -p "$RESULTS" "$RUNS"
grid --name banking77_kd_teacher --out "$RUNS/t" > "$RUNS/t.log" 2>&1
T="$RUNS/t/teacher"
st() { name=$1; shift; grid --teacher "$T" --name "banking77_kd_$name" "$@" > "$RUNS/s_$name.log" 2>&1 & }
st tinybert_e20 --student "tinybert-4l-312:none,soft:epochs=20"
st tinybert_none_e40 --student "tinybert-4l-312:none:epochs=40"
st tinybert_soft_e40 --student "tinybert-4l-312:soft:epochs=40"
st bilstm_none_e40 --student "bilstm:none:lr=1e-3,epochs=40"
st bilstm_soft_e40 --student "bilstm:soft:lr=1e-3,epochs=40"
wait
tail -n 2 "$RUNS"/*.log
