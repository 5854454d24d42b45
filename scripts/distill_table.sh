#!/usr/bin/env bash
# Issue 6, must-show 2: a student of half of teacher-9M's layers (DistilBERT init, layers 0,2,4,6)
# trained at an equal token budget with (a) CE only, (b) forward KL, (c) token-level reverse KL,
# (d) forward KL + TinyBERT hidden-state MSE; then `shrink eval` of each and of the teacher.
# More runs by name: fkl1 (α 1, T 1), fkla (forward KL + TinyBERT attention-score MSE on the same
# layer pairs), fklm (forward KL + MiniLM last-block attention and value-relation KL); fkla01 and
# fklm01: the same with the auxiliary weight 0.1 instead of 1.
# Usage: scripts/distill_table.sh [STEPS=200] [OUT=/tmp/distill_table] [RUNS="ce fkl rkl fklh"]
# Env: SHRINK (binary, default ./build/shrink), ASSETS (default ../shared/assets),
#      DATA (training text; default the first 8 MB of gutenberg/train.txt, made on first use),
#      PAR (runs at a time, default 2), THREADS (per run, default 1).
# Each run checkpoints every 50 steps into OUT/NAME.ckpt; re-running the script resumes it.
set -euo pipefail
STEPS=${1:-200}
OUT=${2:-/tmp/distill_table}
RUNS=${3:-"ce fkl rkl fklh"}
SHRINK=${SHRINK:-./build/shrink}
ASSETS=${ASSETS:-../shared/assets}
PAR=${PAR:-2}
THREADS=${THREADS:-1}
mkdir -p "$OUT"
# The llama2.c export: the GGUF says context 128 (llama.cpp's converter), the model was trained on 256.
TEACHER=$ASSETS/models/teacher-9M/llama2c/model.bin
TOK=$ASSETS/models/teacher-9M/tokenizer.model
VALID=$ASSETS/text/gutenberg/valid.txt
DATA=${DATA:-$OUT/gut8m.txt}
[ -s "$DATA" ] || gzip -dc "$ASSETS/text/gutenberg/train.txt.gz" | head -c 8000000 > "$DATA"
export OMP_WAIT_POLICY=PASSIVE

common=(--teacher "$TEACHER" --tokenizer "$TOK" --student-layers every:2
        --data "$DATA" --val "$VALID" --val-tokens 16384 --val-every 100
        --steps "$STEPS" --batch 8 --seq-len 256 --warmup 20 --lr 5e-4 --min-lr 5e-5
        --seed 1 --ckpt-every 50 -t "$THREADS")
flags_of() {
  case $1 in
    ce)   echo "--loss fkl --alpha 0" ;;
    fkl)  echo "--loss fkl --alpha 0.9 --temperature 2" ;;
    rkl)  echo "--loss rkl --alpha 0.9 --temperature 2" ;;
    fklh) echo "--loss fkl --alpha 0.9 --temperature 2 --hidden-loss 3 --hidden-map 0:1,1:3,2:5,3:7" ;;
    fkl1) echo "--loss fkl --alpha 1 --temperature 1" ;;
    fkla) echo "--loss fkl --alpha 0.9 --temperature 2 --attention-loss 1 --hidden-map 0:1,1:3,2:5,3:7" ;;
    fklm) echo "--loss fkl --alpha 0.9 --temperature 2 --minilm-loss 1" ;;
    fkla01) echo "--loss fkl --alpha 0.9 --temperature 2 --attention-loss 0.1 --hidden-map 0:1,1:3,2:5,3:7" ;;
    fklm01) echo "--loss fkl --alpha 0.9 --temperature 2 --minilm-loss 0.1" ;;
    *) echo "unknown run $1" >&2; exit 2 ;;
  esac
}
run_one() {
  local name=$1 resume=()
  [ -f "$OUT/$name.ckpt/last.ckpt" ] && resume=(--resume)
  # shellcheck disable=SC2046
  "$SHRINK" distill "${common[@]}" $(flags_of "$name") --ckpt-dir "$OUT/$name.ckpt" "${resume[@]}" \
    --log "$OUT/$name.csv" -o "$OUT/$name.gguf" > "$OUT/$name.log" 2>&1
}
evaluate() {
  "$SHRINK" eval "$1" --tokenizer "$TOK" --ppl "$VALID" --ctx 256 --chunks 40 -t "$THREADS" 2>&1 | grep '^PPL'
}
running=0
for r in $RUNS; do
  [ -f "$OUT/$r.gguf" ] && continue
  run_one "$r" & running=$((running + 1))
  if [ "$running" -ge "$PAR" ]; then wait -n; running=$((running - 1)); fi
done
wait
echo "teacher: $(evaluate "$ASSETS/models/teacher-9M/gguf/model-f32.gguf")"
for r in $RUNS; do echo "$r: $(evaluate "$OUT/$r.gguf")"; done
