#!/usr/bin/env bash
# Teacher-assistant distillation (Mirzadeh et al. 2020, "Improved Knowledge Distillation via Teacher
# Assistant") as a recipe of two `shrink distill` runs, beside distilling the same 2-layer student
# directly from the teacher at equal student steps (100) and at equal total steps (200).
#   teacher-9M (8 layers) -> TA: layers 0,2,4,6 (100 steps) -> student: TA's layers 0,2 (100 steps)
#   teacher-9M            -> student: layers 0,4 (100 and 200 steps)
# The student starts from the same teacher layers (0 and 4) either way.
# Usage: scripts/ta_chain.sh [OUT=/tmp/ta_chain]; env SHRINK, ASSETS, DATA as scripts/distill_table.sh.
set -euo pipefail
OUT=${1:-/tmp/ta_chain}
SHRINK=${SHRINK:-./build/shrink}
ASSETS=${ASSETS:-../shared/assets}
T=$ASSETS/models/teacher-9M
VALID=$ASSETS/text/gutenberg/valid.txt
mkdir -p "$OUT"
DATA=${DATA:-$OUT/gut8m.txt}
[ -s "$DATA" ] || gzip -dc "$ASSETS/text/gutenberg/train.txt.gz" | head -c 8000000 > "$DATA"
export OMP_WAIT_POLICY=PASSIVE
common=(--tokenizer "$T/tokenizer.model" --data "$DATA" --val "$VALID" --val-tokens 16384 --val-every 100
        --batch 8 --seq-len 256 --warmup 10 --lr 5e-4 --min-lr 5e-5 --loss fkl --alpha 0.9 --temperature 2
        --seed 1 -t 1)
run() { local name=$1; shift; [ -f "$OUT/$name.gguf" ] || "$SHRINK" distill "$@" "${common[@]}" -o "$OUT/$name.gguf" > "$OUT/$name.log" 2>&1; }
run ta --teacher "$T/llama2c/model.bin" --student-layers every:2 --steps 100 &
run direct --teacher "$T/llama2c/model.bin" --student-layers 0,4 --steps 100 &
wait
run via_ta --teacher "$OUT/ta.gguf" --student-layers every:2 --steps 100 &
run direct200 --teacher "$T/llama2c/model.bin" --student-layers 0,4 --steps 200 &
wait
for m in ta direct direct200 via_ta; do
  echo "$m: $("$SHRINK" eval "$OUT/$m.gguf" --ppl "$VALID" --ctx 256 --chunks 40 -t 2 2>/dev/null | grep '^PPL')"
done
