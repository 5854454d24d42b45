#!/usr/bin/env bash
# Gradual (AGP) vs one-shot magnitude pruning, each followed by fine-tuning at an
# equal budget, plus the unpruned model fine-tuned the same way (docs/pruning.md,
# "Gradual pruning with fine-tuning").
#   bash scripts/agp_table.sh MODEL TRAIN_TEXT VALID_TEXT [OUTDIR]
# Env: RATIOS (default "0.7 0.5"), STEPS (200), THREADS (1). Resumable: finished
# models are kept, interrupted runs continue from their checkpoints.
set -euo pipefail
MODEL=$1 DATA=$2 VALID=$3 OUT=${4:-/tmp/agp}
S=${SHRINK:-$(dirname "$0")/../build/shrink}
STEPS=${STEPS:-200} THREADS=${THREADS:-1}
mkdir -p "$OUT"
C=(--data "$DATA" --val "$VALID" --val-tokens 32768 --steps "$STEPS" --batch 8 --seq-len 128
   --lr 3e-4 --min-lr 3e-5 --warmup 10 -t "$THREADS" --val-every 50 --ckpt-every 25)
train() {  # NAME ARGS...: one fine-tuning run, resumed if it was interrupted
  local name=$1; shift
  [ -f "$OUT/$name.gguf" ] && return
  local resume=(); [ -f "$OUT/ck-$name/last.ckpt" ] && resume=(--resume)
  "$S" train --init "$MODEL" "${C[@]}" "$@" --ckpt-dir "$OUT/ck-$name" --log "$OUT/$name.csv" \
    -o "$OUT/$name.gguf" "${resume[@]}"
}
ppl() { "$S" eval "$1" --ppl "$VALID" --ctx 256 --chunks 40 -t "$THREADS" 2>&1 | grep -o 'PPL = [0-9.]* +/- [0-9.]*'; }
train dense-ft
rows=("| model (unpruned) | 0 | $(ppl "$MODEL") |" "| fine-tuned, no pruning (control) | 0 | $(ppl "$OUT/dense-ft.gguf") |")
for R in ${RATIOS:-0.7 0.5}; do
  [ -f "$OUT/oneshot-$R.gguf" ] || "$S" prune "$MODEL" --method magnitude --sparsity "$R" -t "$THREADS" -o "$OUT/oneshot-$R.gguf"
  train ft-$R --prune-from "$R" --prune-to "$R" --prune-every 10
  train agp-$R --prune-to "$R" --prune-every 10
  rows+=("| one-shot magnitude | $R | $(ppl "$OUT/oneshot-$R.gguf") |"
         "| one-shot + masked fine-tune | $R | $(ppl "$OUT/ft-$R.gguf") |"
         "| AGP 0 → $R over steps 0..$((STEPS * 3 / 4 / 10 * 10)), then fine-tune | $R | $(ppl "$OUT/agp-$R.gguf") |")
done
echo "| run | sparsity | valid PPL (ctx 256, 40 chunks) |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
