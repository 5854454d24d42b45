#!/usr/bin/env bash
# The GPT-2 figures of docs/training.md ("GPT-2"): a small GPT-2-architecture
# model (models/gpt2-kjv.json) trained from scratch on shrink's KJV corpus,
# its training throughput beside a same-size Llama, held-out PPL with the
# protocol of shrink's own KJV model, an every-2nd-layer student distilled
# (KD) vs trained on the text (CE) at equal tokens, and a LoRA finetune.
#
#   bash scripts/gpt2_kjv_table.sh [WORKDIR] [speed|train|llama|distill|finetune|long|all]
#
# Needs the corpus (scripts/make_kjv_corpus.sh; apt-get install bible-kjv).
# Small runs, one seed: figures to show the path works, not a GPT-2 study.
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-out/gpt2-kjv}
PHASE=${2:-all}
S=./build/shrink
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$W"
[ -f "$W/kjv-train.txt" ] || bash scripts/make_kjv_corpus.sh "$W"
TOK=models/kjv-2k.model
DATA="--data $W/kjv-train.txt --val $W/kjv-val.txt --cache-dir $W/cache --seq-len 256 --seed 1"

# Throughput: 8 steps of 4 x 256 tokens, GPT-2 and a Llama of the same size
# (dim 192, 4 layers, 6 heads, SwiGLU 512 = GPT-2's 2 x 768 MLP weights),
# alternated so both see the same load; the log's median step tok/s.
speed() {
  cat > "$W/llama-same.json" <<'J'
{"dim": 192, "hidden_dim": 512, "n_layers": 4, "n_heads": 6, "n_kv_heads": 6, "vocab_size": 2048, "max_seq_len": 256, "tied_embeddings": true}
J
  for rep in 1 2; do
    for t in 1 2; do
      for arch in gpt2 llama; do
        cfg=models/gpt2-kjv.json; [ $arch = llama ] && cfg="$W/llama-same.json"
        $S train --config "$cfg" --tokenizer $TOK $DATA --steps 8 --batch 4 --warmup 2 --val-tokens 256 -t $t \
          --log "$W/speed-$arch-t$t-$rep.csv" -o "$W/speed.gguf" 2>/dev/null
        python3 -c "import csv,statistics,sys; r=[float(x['tok_per_s']) for x in csv.DictReader(open(sys.argv[1])) if x['tok_per_s']]; print(sys.argv[2], 'threads', sys.argv[3], 'median tok/s %.0f' % statistics.median(r[1:]))" \
          "$W/speed-$arch-t$t-$rep.csv" $arch $t
      done
    done
  done
  uptime
}

# From scratch: 600 steps of BATCH (4, or 8 for the "long" phase) x 256 tokens, lr 2e-3 cosine to 1e-4.
train() {
  local batch=${1:-4} name=${2:-gpt2-kjv}
  $S train --config models/gpt2-kjv.json --tokenizer $TOK $DATA --steps 600 --batch $batch --lr 2e-3 --min-lr 1e-4 \
    --warmup 30 --wd 0.1 --clip 1 -t 2 --val-every 50 --val-tokens 12288 --ckpt-dir "$W/ck-$name" --ckpt-every 50 \
    --log "$W/$name.csv" --resume -o "$W/$name.gguf"
  $S eval "$W/$name.gguf" --ppl data/kjv-heldout.txt --ctx 256
}

# The same-size Llama (llama-same.json, written by speed) with the same recipe: a PPL at equal tokens.
llama() {
  $S train --config "$W/llama-same.json" --tokenizer $TOK $DATA --steps 600 --batch 4 --lr 2e-3 --min-lr 1e-4 \
    --warmup 30 --wd 0.1 --clip 1 -t 2 --val-every 50 --val-tokens 12288 --log "$W/llama-curve.csv" \
    -o "$W/llama-same.gguf"
  $S eval "$W/llama-same.gguf" --ppl data/kjv-heldout.txt --ctx 256
}

# Student = the teacher's layers 0 and 2 (DistilBERT init), 150 steps each: KD (alpha 1, T 2) vs CE (alpha 0).
distill() {
  local name=${1:-gpt2-kjv}
  # The student as initialised (the teacher's layers 0 and 2, untrained): one step at lr 1e-12 changes nothing.
  $S distill --teacher "$W/$name.gguf" --student-layers every:2 $DATA --steps 1 --batch 1 --lr 1e-12 --min-lr 0 \
    --warmup 0 -t 2 -o "$W/$name-student-init.gguf"
  $S eval "$W/$name-student-init.gguf" --ppl data/kjv-heldout.txt --ctx 256
  for alpha in 1 0; do
    $S distill --teacher "$W/$name.gguf" --student-layers every:2 $DATA --steps 150 --batch 4 --lr 1e-3 \
      --min-lr 1e-4 --warmup 10 -t 2 --alpha $alpha --temperature 2 --log "$W/$name-distill-a$alpha.csv" \
      -o "$W/$name-student-a$alpha.gguf"
    $S eval "$W/$name-student-a$alpha.gguf" --ppl data/kjv-heldout.txt --ctx 256
  done
}

# LoRA r=8 on every block Linear (qkv, o, up, down), 150 steps on the training text.
finetune() {
  $S finetune "$W/gpt2-kjv.gguf" --lora r=8 $DATA --steps 150 --batch 4 --lr 1e-3 --min-lr 1e-4 --warmup 10 -t 2 \
    --log "$W/lora.csv" -o "$W/gpt2-kjv-lora.gguf"
  $S eval "$W/gpt2-kjv-lora.gguf" --ppl data/kjv-heldout.txt --ctx 256
}

case $PHASE in
  speed) speed ;; train) train ;; llama) llama ;; distill) distill ;; finetune) finetune ;;
  long) train 8 gpt2-kjv-b8; distill gpt2-kjv-b8 ;;  # a teacher trained on twice the tokens, distilled the same way
  all) speed; train; llama; distill; finetune; train 8 gpt2-kjv-b8; distill gpt2-kjv-b8 ;;
  *) echo "unknown phase $PHASE (speed|train|llama|distill|finetune|long|all)" >&2; exit 1 ;;
esac
