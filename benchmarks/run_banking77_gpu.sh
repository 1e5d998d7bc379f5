#!/usr/bin/env bash
# banking77 on one GPU, in one call: teacher settings trained in parallel, the best by VALIDATION
# macro-F1 becomes the teacher (test never decides), then the student grid in parallel processes.
# Every run writes benchmarks/results-style JSON into $RESULTS. Needs a local all-MiniLM-L6-v2 folder
# (MINILM) and banking77 (DATA). EXTRA adds --set overrides to every run (e.g. max_steps for a smoke test).
set -u
MINILM=${MINILM:-.gpu/minilm}; DATA=${DATA:-.gpu/data}; RESULTS=${RESULTS:-benchmarks/results}; RUNS=${RUNS:-runs/b77}
export PYTHONPATH=src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
grid() { python3 benchmarks/distill_grid.py recipes/banking77.yaml --data-dir "$DATA" --results-dir "$RESULTS" \
  --set teacher.backbone="$MINILM" --set teacher.train.progress=false --set student.train.progress=false \
  --set teacher.train.patience=0 ${EXTRA:-} "$@"; }
mkdir -p "$RESULTS" "$RUNS"
# teacher settings: random (unbucketed) batches; the peer's optimiser settings; more epochs
grid --name banking77_teacher_nobucket --out "$RUNS/nobucket" --set teacher.train.bucket=false > "$RUNS/t1.log" 2>&1 &
grid --name banking77_teacher_peerlike --out "$RUNS/peerlike" --set teacher.train.bucket=false \
  --set teacher.train.warmup_ratio=0 --set teacher.train.weight_decay=0 > "$RUNS/t2.log" 2>&1 &
grid --name banking77_teacher_e15 --out "$RUNS/e15" --set teacher.train.epochs=15 > "$RUNS/t3.log" 2>&1 &
wait
best=$(python3 - "$RESULTS" <<'PY'
import json, sys, pathlib
runs = [json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("banking77_teacher_*.json")]
best = max(runs, key=lambda r: r["runs"][0]["val_macro_f1"])  # selection on validation, never test
print(best["benchmark"].removeprefix("banking77_teacher_"))
PY
)
echo "teacher chosen on validation: $best"
T="$RUNS/$best/teacher"
st() { name=$1; shift; grid --teacher "$T" --name "banking77_$name" "$@" > "$RUNS/s_$name.log" 2>&1 & }
st tinybert_none --student "tinybert-4l-312:none"
st tinybert_soft --student "tinybert-4l-312:soft"
st tinybert_soft_a09 --student "tinybert-4l-312:soft:distill.alpha=0.9"
st tinybert_softhidden --student "tinybert-4l-312:soft+hidden"
st teacher_layers3 --student "tinybert-4l-312@teacher-layers:soft:lr=1e-4,epochs=10"
st bilstm --student "bilstm:none,soft:lr=1e-3"
wait
tail -n 2 "$RUNS"/*.log
