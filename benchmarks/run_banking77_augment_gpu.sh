#!/usr/bin/env bash
# Issue 9 on one GPU, in one call: a banking77 teacher, then the students with and without augmentation
# (Tang et al. 2019: N=20 new texts per training text, labelled by the teacher) in parallel processes, and a
# 20-trial sweep of T, alpha, lr and epochs for the TinyBERT-shaped student. MINILM: a local all-MiniLM-L6-v2
# folder; DATA: a folder holding banking77/. Every run writes JSON into $RESULTS.
set -u
MINILM=${MINILM:-.gpu/minilm}; DATA=${DATA:-.gpu/data}; RESULTS=${RESULTS:-benchmarks/results}; RUNS=${RUNS:-runs/aug}
AUGMENT=${AUGMENT:-20}
export PYTHONPATH=src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
grid() { python3 benchmarks/distill_grid.py recipes/banking77.yaml --data-dir "$DATA" --results-dir "$RESULTS" \
  --set teacher.backbone="$MINILM" --set teacher.train.progress=false --set student.train.progress=false \
  --set teacher.train.patience=0 "$@"; }
mkdir -p "$RESULTS" "$RUNS"
grid --name banking77_aug_teacher --out "$RUNS/t" > "$RUNS/teacher.log" 2>&1
T="$RUNS/t/teacher"
st() { name=$1; shift; grid --teacher "$T" --out "$RUNS/$name" --name "banking77_$name" "$@" > "$RUNS/$name.log" 2>&1 & }
st tinybert_soft --student "tinybert-4l-312:none,soft"
st tinybert_soft_aug --student "tinybert-4l-312:soft:distill.augment=$AUGMENT"
st bilstm_soft --student "bilstm:none,soft:lr=1e-3"
st bilstm_soft_aug --student "bilstm:soft:lr=1e-3,distill.augment=$AUGMENT"
python3 -m textkd sweep --teacher "$T" recipes/banking77.yaml --data-dir "$DATA" --trials 20 -o "$RUNS/sweep" \
  --train.progress false > "$RUNS/sweep.log" 2>&1 &
wait
cp "$RUNS/sweep/sweep.json" "$RESULTS/banking77_sweep_tinybert.json" 2>/dev/null
tail -n 2 "$RUNS"/*.log
