#!/usr/bin/env bash
# Measures weight-quantization methods on one model and prints a markdown table
# (the table of docs/quantization.md). Every row is one `shrink quantize` run:
# quantize, then perplexity/KLD/top-1 against the original on each EVAL text.
#
#   bash scripts/quant_table.sh MODEL "EVAL1 [EVAL2]" CALIB "rtn imatrix gptq awq" "q4_k q4_0 int4g128 Q4_K_M" [CTX] [CHUNKS]
# (lower case: a ggml type or group format, --type; upper case: a llama-quantize recipe, --preset)
# Rows whose report is already in OUT are reused, so an interrupted table resumes.
# Environment: SHRINK (binary, default build/shrink), OUT (work dir, default /tmp/quant_table),
# CALIB_TOKENS (default 16384), SEQ_LEN (default 256).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHRINK=${SHRINK:-$ROOT/build/shrink}
OUT=${OUT:-/tmp/quant_table}
MODEL=$1 EVAL=$2 CALIB=$3 METHODS=$4 TYPES=$5 CTX=${6:-256} CHUNKS=${7:-40}
mkdir -p "$OUT"
hdr="| method | type | bits/weight (linears) | file |" sep="|---|---|---|---|"
for e in $EVAL; do n=$(basename "$e"); hdr+=" PPL $n | KLD $n | top-1 $n |"; sep+="---|---|---|"; done
echo "$hdr time | peak RSS |"; echo "$sep---|---|"
for t in $TYPES; do
  for m in $METHODS; do
    name=$(basename "$MODEL" | tr '.' '_')-$m-$t
    case $t in Q*) kind=--preset ;; *) kind=--type ;; esac  # upper case: a llama-quantize recipe (Q4_K_M)
    args=(quantize "$MODEL" --method "$m" "$kind" "$t" --ctx "$CTX" --chunks "$CHUNKS" --report "$OUT/$name.json")
    for e in $EVAL; do args+=(--ppl "$e"); done
    [ "$m" = rtn ] || args+=(--calib "$CALIB" --calib-tokens "${CALIB_TOKENS:-16384}" --seq-len "${SEQ_LEN:-256}")
    # Group formats go to a Hugging Face directory (compressed-tensors), block types to a GGUF.
    case $t in int*|nf*|fp*) args+=(-o "$OUT/$name") ;; *) args+=(-o "$OUT/$name.gguf") ;; esac
    # A row already measured (its report names every eval text and the file size) is reused: a long table resumes.
    if [ -s "$OUT/$name.json" ] && [ "$(grep -c '"ppl_err"' "$OUT/$name.json")" = "$(wc -w <<<"$EVAL")" ] &&
       grep -q '"file_bytes"' "$OUT/$name.json"; then :
    elif ! "$SHRINK" "${args[@]}" >"$OUT/$name.log" 2>&1; then
      echo "| $m | $t | failed: $(tail -1 "$OUT/$name.log") |"; continue
    fi
    python3 "$ROOT/scripts/report_row.py" "$OUT/$name.json"
  done
done
