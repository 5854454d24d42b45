#!/usr/bin/env bash
# Reproduces shrink's own demo model, models/shrink-kjv-3m.gguf, on a fresh
# Debian 12 machine (docs/training.md, "shrink's own model"):
#
#   apt-get install bible-kjv sentencepiece && bash scripts/train_kjv_model.sh [WORKDIR]
#
# corpus (scripts/make_kjv_corpus.sh) -> tokenizer (scripts/make_kjv_tokenizer.sh)
# -> `shrink train` from scratch (models/shrink-kjv.json) -> bf16 GGUF. The run
# checkpoints every 50 steps; rerunning the script resumes it. On one machine,
# the same seed and thread count give bit-identical weights (docs/training.md);
# another CPU's GEMM kernels may round differently. The committed model was
# trained with -t 2 (61 min on two cores shared with other jobs).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-out/kjv-train}
S=./build/shrink
mkdir -p "$W"
bash scripts/make_kjv_corpus.sh "$W"
bash scripts/make_kjv_tokenizer.sh "$W" "$W/kjv-2k"
OMP_WAIT_POLICY=PASSIVE $S train --config models/shrink-kjv.json \
  --tokenizer "$W/kjv-2k.model" --data "$W/kjv-train.txt" --val "$W/kjv-val.txt" \
  --steps 900 --batch 16 --seq-len 256 --lr 2e-3 --min-lr 1e-4 --warmup 50 --wd 0.1 --clip 1 --seed 1 -t 2 \
  --val-every 50 --val-tokens 12288 --ckpt-dir "$W/ck" --ckpt-every 50 --log "$W/curve.csv" --resume \
  -o "$W/shrink-kjv-f32.gguf"
$S convert "$W/shrink-kjv-f32.gguf" --dtype bf16 -o "$W/shrink-kjv-3m.gguf"
echo "wrote $W/shrink-kjv-3m.gguf (tokenizer embedded) and $W/kjv-2k.model"
