#!/usr/bin/env bash
# Measures weight-quantization methods on one model and prints a markdown table
# (the table of docs/quantization.md). Every row is one `shrink quantize` run:
# quantize, then perplexity/KLD/top-1 against the original on EVAL.
#
#   bash scripts/quant_table.sh MODEL EVAL CALIB "rtn imatrix gptq awq" "q4_k q4_0 int4g128" [CTX] [CHUNKS]
# Environment: SHRINK (binary, default build/shrink), OUT (work dir, default /tmp/quant_table),
# CALIB_TOKENS (default 16384), SEQ_LEN (default 256).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHRINK=${SHRINK:-$ROOT/build/shrink}
OUT=${OUT:-/tmp/quant_table}
MODEL=$1 EVAL=$2 CALIB=$3 METHODS=$4 TYPES=$5 CTX=${6:-256} CHUNKS=${7:-40}
mkdir -p "$OUT"
echo "| method | type | bits/weight (linears) | file | PPL | KLD | top-1 | time | peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
for t in $TYPES; do
  for m in $METHODS; do
    name=$(basename "$MODEL" | tr '.' '_')-$m-$t
    args=(quantize "$MODEL" --method "$m" --type "$t" --ppl "$EVAL" --ctx "$CTX" --chunks "$CHUNKS"
          --report "$OUT/$name.json")
    [ "$m" = rtn ] || args+=(--calib "$CALIB" --calib-tokens "${CALIB_TOKENS:-16384}" --seq-len "${SEQ_LEN:-256}")
    case $t in int*|nf*|fp*) ;; *) args+=(-o "$OUT/$name.gguf") ;; esac
    if ! "$SHRINK" "${args[@]}" >"$OUT/$name.log" 2>&1; then
      echo "| $m | $t | failed: $(tail -1 "$OUT/$name.log") |"; continue
    fi
    python3 - "$OUT/$name.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); e = j["eval"]
size = f'{j["file_bytes"] / 2**20:.2f} MiB' if "file_bytes" in j else "-"
print(f'| {j["method"]} | {j["target"]} | {j["linear_bits_per_weight"]:.2f} | {size} | {e["ppl"]:.4f} ± {e["ppl_err"]:.4f} '
      f'| {e["kld"]:.5f} ± {e["kld_err"]:.5f} | {100 * e["top1"]:.2f}% | {j["seconds"]:.1f} s | {j["peak_rss_bytes"] / 2**20:.0f} MiB |')
PY
  done
done
