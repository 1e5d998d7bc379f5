#!/usr/bin/env bash
# banking77 on one GPU, every phase with a time limit so the whole run fits one lease:
#   1. teachers: every seed in SEEDS x label smoothing in SMOOTHING, trained in parallel processes; the best by
#      VALIDATION macro-F1 becomes the teacher (test never decides; every candidate's test figure is recorded);
#   2. students of that teacher in parallel processes (the teacher's cache lock lets the first build each cached
#      output while the others wait, then read it): tinybert-4l-312 none / soft / soft + augmentation,
#      bilstm none / soft / soft + augmentation, and a 3-layer teacher-layers student;
#   3. with PEER=<peer script>: textkd against the peer pipeline, alone on the GPU (gpu_vs_peer.py).
# Needs a local all-MiniLM-L6-v2 folder (MINILM) and a folder holding banking77/ (DATA). Every run writes
# benchmarks/results-style JSON into $RESULTS, named $PREFIX_banking77_*. EXTRA adds --set overrides to every run
# (e.g. "--set teacher.train.max_steps=3 --set student.train.max_steps=3" for a smoke test on CPU).
set -u
MINILM=${MINILM:-.gpu/minilm}; DATA=${DATA:-.gpu/data}; RESULTS=${RESULTS:-benchmarks/results}
RUNS=${RUNS:-runs/b77}; PREFIX=${PREFIX:-gpu}; PRECISION=${PRECISION:-no}
SEEDS=${SEEDS:-"42 1 2 3"}; SMOOTHING=${SMOOTHING:-"0 0.1"}
AUGMENT=${AUGMENT:-16}; AUG_EPOCHS=${AUG_EPOCHS:-3}
TEACHER_LIMIT=${TEACHER_LIMIT:-300}; STUDENT_LIMIT=${STUDENT_LIMIT:-480}
export PYTHONPATH=src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
LIMIT=$TEACHER_LIMIT
grid() { timeout "$LIMIT" python3 benchmarks/distill_grid.py recipes/banking77.yaml --data-dir "$DATA" \
  --results-dir "$RESULTS" --set teacher.backbone="$MINILM" --set teacher.train.progress=false \
  --set student.train.progress=false --set teacher.train.patience=0 \
  --set teacher.train.mixed_precision="$PRECISION" --set student.train.mixed_precision="$PRECISION" ${EXTRA:-} "$@"; }
mkdir -p "$RESULTS" "$RUNS"
echo "$(date +%T) phase 1: teachers (seeds: $SEEDS; label smoothing: $SMOOTHING; limit ${TEACHER_LIMIT} s)"
for seed in $SEEDS; do
  for ls in $SMOOTHING; do
    name="teacher_s${seed}_ls${ls}"
    grid --name "${PREFIX}_banking77_$name" --out "$RUNS/$name" --set teacher.train.seed="$seed" \
      --set teacher.label_smoothing="$ls" > "$RUNS/$name.log" 2>&1 &
  done
done
wait
best=$(python3 - "$RESULTS" "$PREFIX" <<'PY'
import json, sys, pathlib
runs = [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob(f"{sys.argv[2]}_banking77_teacher_*.json")]
for r in sorted(runs, key=lambda r: r["benchmark"]):
    t = r["runs"][0]
    print(f"{r['benchmark']:40s} val macro-F1 {t['val_macro_f1']:.4f}  test acc {t['accuracy']:.4f}", file=sys.stderr)
best = max(runs, key=lambda r: r["runs"][0]["val_macro_f1"])  # selection on validation, never test
print(best["benchmark"].split("_banking77_", 1)[1])
PY
)
if [ -z "$best" ]; then echo "no teacher finished"; exit 1; fi
echo "$(date +%T) teacher chosen on validation: $best"
T="$RUNS/$best/teacher"
LIMIT=$STUDENT_LIMIT
echo "$(date +%T) phase 2: students (augment $AUGMENT x $AUG_EPOCHS epochs; limit ${STUDENT_LIMIT} s)"
st() {
  name=$1; shift
  grid --teacher "$T" --out "$RUNS/$name" --name "${PREFIX}_banking77_$name" "$@" \
    > "$RUNS/$name.log" 2>&1 &
}
st tinybert_none --student "tinybert-4l-312:none"
st tinybert_soft --student "tinybert-4l-312:soft"
st tinybert_soft_aug --student "tinybert-4l-312:soft:epochs=$AUG_EPOCHS,distill.augment=$AUGMENT"
st bilstm_none --student "bilstm:none:lr=1e-3"
st bilstm_soft --student "bilstm:soft:lr=1e-3"
st bilstm_soft_aug --student "bilstm:soft:lr=1e-3,epochs=$AUG_EPOCHS,distill.augment=$AUGMENT"
st teacher_layers3 --student "tinybert-4l-312@teacher-layers:soft:lr=1e-4,epochs=10"
wait
grep -h "acc " "$RUNS"/*.log
if [ -n "${PEER:-}" ]; then
  echo "$(date +%T) phase 3: textkd vs the peer, alone on the GPU"
  python3 benchmarks/gpu_vs_peer.py --minilm "$MINILM" --data-dir "$DATA" --peer "$PEER" --out "$RUNS/vs_peer" \
    --results-dir "$RESULTS" --name "${PREFIX}_banking77_vs_peer" ${PEER_ARGS:-} > "$RUNS/vs_peer.log" 2>&1
  tail -n 8 "$RUNS/vs_peer.log"
fi
echo "$(date +%T) done"
