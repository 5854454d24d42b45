#!/usr/bin/env bash
# The main job: install, build, then measure the embedded default model —
# stories260K (and teacher-9M) from ../shared when present, otherwise a
# random-weight model made by `shrink init` (whose quality figures are meaningless).
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

echo
echo "| model | weights | PPL (llama.cpp protocol) | prefill tok/s (1 thread) | decode tok/s (1 thread) |"
echo "|---|---:|---:|---:|---:|"
if [ -f "$SHARED/assets/models/stories260K/stories260K.bin" ]; then
  WIKI=$SHARED/assets/text/wikitext-2-raw/wiki.test.raw
  report_row stories260K "$SHARED/assets/models/stories260K/stories260K.bin" "$WIKI" 256 100
  T9=$SHARED/assets/models/teacher-9M/llama2c/model.bin
  [ -f "$T9" ] && report_row teacher-9M "$T9" "$SHARED/assets/text/gutenberg/valid.txt" 256 40
  echo
  echo "References (llama.cpp, ../shared/reference): stories260K wiki.test.raw c=256 100 chunks 115.7021;"
  echo "teacher-9M gutenberg/valid.txt c=256 40 chunks 37.9103."
  echo
  $S run "$SHARED/assets/models/stories260K/stories260K.bin" -p "Once upon a time" -n 40 --no-stats
else
  echo "(../shared not found: using a random-weight model from 'shrink init'; its perplexity is MEANINGLESS —"
  echo " only the speed figures are real.)" >&2
  $S init --preset tiny -o "$OUT/tiny-random.gguf" 2>/dev/null
  report_row tiny-random "$OUT/tiny-random.gguf" data/demo.txt 64 -1
fi
