#!/usr/bin/env bash
# The main job: install, build, then measure the embedded default model —
# shrink's own models/shrink-kjv-3m.gguf (3.4 M parameters, trained from
# scratch by `shrink train` on the King James Bible; docs/training.md) on its
# held-out books (data/kjv-heldout.txt), with one row per compression method.
# When ../shared is present, stories260K and teacher-9M follow (their rows
# against llama.cpp's figures; SHRINK_DEMO_SHARED_TABLES=1 adds stories260K's
# compression tables too, as before; SHRINK_DEMO_SHARED=0 skips them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
S=./build/shrink
SHARED=${SHRINK_SHARED:-../shared}
OUT=out/demo
mkdir -p "$OUT"

report_row() {  # name model text ctx chunks
  local name=$1 model=$2 text=$3 ctx=$4 chunks=$5
  $S eval "$model" --ppl "$text" --ctx "$ctx" --chunks "$chunks" --json "$OUT/$name.eval.json" >/dev/null
  $S bench "$model" -p 64 -n 32 -r 3 -t 1 --no-bandwidth --json >"$OUT/$name.bench.json"
  jget() { grep -m1 -o "\"$1\": [-0-9.e+]*" "$2" | awk '{print $2}'; }
  awk -v n="$name" -v wb="$(jget weight_bytes "$OUT/$name.bench.json")" -v p="$(jget ppl "$OUT/$name.eval.json")" \
      -v pe="$(jget ppl_err "$OUT/$name.eval.json")" -v pp="$(jget pp_tps "$OUT/$name.bench.json")" \
      -v tg="$(jget tg_tps "$OUT/$name.bench.json")" \
      'BEGIN { printf "| %s | %.2f MiB | %.4f ± %.4f | %.0f | %.1f |\n", n, wb / 1048576, p, pe, pp, tg }'
}

# One row per weight-quantization method: the model quantized to TYPE by it,
# with size, bits per weight, perplexity/KLD/top-1 against the original and
# decode speed of the written GGUF.
quant_rows() {  # model text calib ctx chunks type
  local model=$1 text=$2 calib=$3 ctx=$4 chunks=$5 type=$6
  echo
  echo "| method | type | file | bits/weight (linears) | PPL | KLD vs original | top-1 | decode tok/s (1 thread) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for m in rtn imatrix gptq awq; do
    local q="$OUT/quant-$m-$type.gguf" cal=()
    [ "$m" = rtn ] || cal=(--calib "$calib" --calib-tokens 4096 --seq-len 128)
    $S quantize "$model" --method "$m" --type "$type" "${cal[@]}" --ppl "$text" --ctx "$ctx" --chunks "$chunks" \
      -o "$q" >/dev/null 2>"$OUT/quant-$m.log" || { echo "| $m | $type | failed: $(tail -1 "$OUT/quant-$m.log") |"; continue; }
    $S bench "$q" -p 16 -n 32 -r 3 -t 1 --no-bandwidth --json >"$OUT/quant-$m.bench.json"
    python3 - "$q.json" "$OUT/quant-$m.bench.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2])); e = j["evals"][0]
tg = b["runs"][0]["tg_tps"] if "runs" in b else b.get("tg_tps", 0)
print(f'| {j["method"]} | {j["target"]} | {j["file_bytes"] / 2**20:.2f} MiB | {j["linear_bits_per_weight"]:.2f} | '
      f'{e["ppl"]:.4f} (original {e["base_ppl"]:.4f}) | {e["kld"]:.5f} | {100 * e["top1"]:.2f}% | {tg:.1f} |')
PY
  done
}

# One row per activation-quantization method (W8A8, measured in place: W8A8
# models are not saved yet) and for the int8 KV cache.
act_rows() {  # model text calib ctx chunks
  local model=$1 text=$2 calib=$3 ctx=$4 chunks=$5
  echo
  echo "| method | weights / activations | bits/weight (linears) | PPL | KLD vs original | top-1 | decode tok/s (1 thread) |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for row in "dynamic" "w8a8 --observer percentile" "smoothquant --smooth-all --observer percentile" "llm-int8"; do
    local m=${row%% *} r="$OUT/act-${row// /_}.json" cal=()
    case $m in w8a8|smoothquant) cal=(--calib "$calib" --calib-tokens 4096 --seq-len 128) ;; esac
    # shellcheck disable=SC2086
    $S quantize "$model" --method $row "${cal[@]}" --ppl "$text" --ctx "$ctx" --chunks "$chunks" --bench \
      --report "$r" >/dev/null 2>"$OUT/act-$m.log" || { echo "| $row | failed: $(tail -1 "$OUT/act-$m.log") |"; continue; }
    python3 - "$r" "$row" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); e = j["evals"][0]
print(f'| {sys.argv[2]} | int8 / {j["target"]} | {j["linear_bits_per_weight"]:.2f} | '
      f'{e["ppl"]:.4f} (original {e["base_ppl"]:.4f}) | {e["kld"]:.5f} | {100 * e["top1"]:.2f}% | {j["bench"]["tg_tps"]:.1f} |')
PY
  done
  $S eval "$model" --ppl "$text" --ctx "$ctx" --chunks "$chunks" --kv-cache int8 --base "$model" --json "$OUT/kv-int8.eval.json" >/dev/null 2>"$OUT/kv-int8.log"
  $S bench "$model" -p 16 -n 32 -r 3 -t 1 --no-bandwidth --kv-cache int8 --json >"$OUT/kv-int8.bench.json"
  python3 - "$OUT/kv-int8.eval.json" "$OUT/kv-int8.bench.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
tg = b["runs"][0]["tg_tps"] if "runs" in b else b.get("tg_tps", 0)
print(f'| int8 KV cache | original / f32, cache int8 | - | {e["ppl"]:.4f} (original {e["base_ppl"]:.4f}) | '
      f'{e["kld"]:.5f} | {100 * e["top1_agreement"]:.2f}% | {tg:.1f} |')
PY
}

# One row per pruning / factorization method of issue 5 (docs/pruning.md, docs/lowrank.md):
# the model pruned to 50% and to 2:4 (the 2:4 file stored compressed: kept
# values + 2-bit indices) by magnitude, Wanda and SparseGPT, and factorized by
# SVD, ASVD and SVD-LLM at one kept-parameter ratio; size, bits per weight of
# the Linears, perplexity / KLD / top-1 against the original, decode speed of
# the written GGUF, beside the original's.
sparse_rows() {  # model text calib ctx chunks ratio
  local model=$1 text=$2 calib=$3 ctx=$4 chunks=$5 ratio=$6
  local cal=(--calib "$calib" --calib-tokens 4096 --seq-len 128)
  echo
  echo "| method | stored as | file | bits/weight (linears) | PPL | KLD vs original | top-1 | decode tok/s (1 thread) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  row() {  # label stored file
    local label=$1 stored=$2 f=$3 base=$OUT/sparse-$(basename "$3" .gguf)
    $S eval "$f" --ppl "$text" --ctx "$ctx" --chunks "$chunks" --base "$model" --json "$base.eval.json" >/dev/null 2>&1
    $S bench "$f" -p 16 -n 32 -r 3 -t 1 --no-bandwidth --json >"$base.bench.json"
    python3 - "$label" "$stored" "$f" "$base.eval.json" "$base.bench.json" <<'PY'
import json, os, sys
label, stored, f = sys.argv[1:4]; e = json.load(open(sys.argv[4])); b = json.load(open(sys.argv[5]))
print(f'| {label} | {stored} | {os.path.getsize(f) / 2**20:.2f} MiB | {b["linear_bits_per_weight"]:.2f} | '
      f'{e["ppl"]:.4f} | {e["kld"]:.5f} | {100 * e["top1_agreement"]:.2f}% | {b["runs"][0]["tg_tps"]:.1f} |')
PY
  }
  $S convert "$model" -o "$OUT/sparse-original.gguf" 2>/dev/null
  row original "dense, its own dtype" "$OUT/sparse-original.gguf"
  for m in magnitude wanda sparsegpt; do
    local c=(); [ "$m" = magnitude ] || c=("${cal[@]}")
    for sp in 0.5 2:4; do
      local f=$OUT/sparse-prune-$m-${sp/:/_}.gguf extra=() stored="dense, zeros kept"
      [ "$sp" = 2:4 ] && extra=(--compress) stored="2:4 compressed (values + 2-bit indices)"
      $S prune "$model" -t 1 --method "$m" --sparsity "$sp" "${c[@]}" "${extra[@]}" -o "$f" >/dev/null 2>&1 ||
        { echo "| prune $m $sp | failed |"; continue; }
      row "prune $m $sp" "$stored" "$f"
    done
  done
  # Structured: a smaller dense model (docs/pruning.md, "Structured pruning").
  for st in "channels --ratio 0.2 taylor" "heads --ratio 0.25 activation" "layers --remove-layers 1 block"; do
    set -- $st
    local f=$OUT/sparse-structured-$1.gguf
    $S prune "$model" -t 1 --structured "$1" "$2" "$3" --importance "$4" "${cal[@]}" -o "$f" >/dev/null 2>&1 ||
      { echo "| structured $1 | failed |"; continue; }
    row "structured $1 $2 $3 ($4)" "smaller dense, its own dtype" "$f"
  done
  for m in svd asvd svd-llm; do
    local f=$OUT/sparse-factorize-$m.gguf c=(); [ "$m" = svd ] || c=("${cal[@]}")
    $S factorize "$model" -t 1 --method "$m" --ratio "$ratio" "${c[@]}" -o "$f" >/dev/null 2>&1 ||
      { echo "| factorize $m | failed |"; continue; }
    row "factorize $m $ratio" "low-rank U V, f32" "$f"
  done
}

model_table_header() {
  echo
  echo "| model | weights | PPL (llama.cpp protocol) | prefill tok/s (1 thread) | decode tok/s (1 thread) |"
  echo "|---|---:|---:|---:|---:|"
}

# shrink's own model, always present: the whole held-out file for its row, the
# first 40 windows of it for the compression tables (calibration: the
# validation books, data/kjv-val.txt — neither was trained on).
KJV=models/shrink-kjv-3m.gguf
HELD=data/kjv-heldout.txt
KCAL=data/kjv-val.txt
echo "shrink's own model: $KJV (KJV Bible, trained by shrink train; held-out books Joshua, Jonah, Mark)"
model_table_header
report_row shrink-kjv-3m "$KJV" "$HELD" 256 -1
quant_rows "$KJV" "$HELD" "$KCAL" 256 40 q4_0
act_rows "$KJV" "$HELD" "$KCAL" 256 40
sparse_rows "$KJV" "$HELD" "$KCAL" 256 40 0.6
echo "(The compression rows score the first 40 windows of 256 tokens of $HELD; the model row the whole file.)"
echo "(The model is bf16: 4-bit and 2:4 files shrink it, factorize writes U and V in f32 — bigger than the bf16"
echo " original at 0.6 of the parameters. Decode tok/s of a 7 MiB model mostly measures overhead; load varies.)"
echo
$S run "$KJV" -p "In the beginning" -n 40 --no-stats
echo
$S run "$KJV" -p "And Jesus said unto them" -n 40 --no-stats

if [ "${SHRINK_DEMO_SHARED:-1}" != 0 ] && [ -f "$SHARED/assets/models/stories260K/stories260K.bin" ]; then
  echo
  echo "Models from $SHARED/assets (checked against llama.cpp):"
  model_table_header
  WIKI=$SHARED/assets/text/wikitext-2-raw/wiki.test.raw
  report_row stories260K "$SHARED/assets/models/stories260K/stories260K.bin" "$WIKI" 256 100
  T9=$SHARED/assets/models/teacher-9M/llama2c/model.bin
  [ -f "$T9" ] && report_row teacher-9M "$T9" "$SHARED/assets/text/gutenberg/valid.txt" 256 40
  echo
  echo "References (llama.cpp, ../shared/reference): stories260K wiki.test.raw c=256 100 chunks 115.7021;"
  echo "teacher-9M gutenberg/valid.txt c=256 40 chunks 37.9103."
  if [ "${SHRINK_DEMO_SHARED_TABLES:-0}" = 1 ]; then
    OUT=out/demo/stories260K
    mkdir -p "$OUT"
    CALIB=$OUT/calib.txt
    zcat "$SHARED/assets/text/gutenberg/train.txt.gz" | head -c 300000 >"$CALIB" || true
    quant_rows "$SHARED/assets/models/stories260K/stories260K.bin" "$WIKI" "$CALIB" 256 20 q4_0
    echo "(stories260K's ffn_down rows are 172 long, which no 32-block fits: those stay F16, as llama.cpp cannot quantize it.)"
    act_rows "$SHARED/assets/models/stories260K/stories260K.bin" "$WIKI" "$CALIB" 256 20
    sparse_rows "$SHARED/assets/models/stories260K/stories260K.bin" "$WIKI" "$CALIB" 256 20 0.6
    echo "(stories260K's Linears are 64-172 wide: the low-rank rows keep 0.6 of their parameters (rank 18-27 of 64)"
    echo " and lose more than 50% pruning; SVD-LLM loses least: docs/lowrank.md.)"
  fi
  echo
  $S run "$SHARED/assets/models/stories260K/stories260K.bin" -p "Once upon a time" -n 40 --no-stats
fi
