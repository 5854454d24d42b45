#!/usr/bin/env bash
# Measures low-rank factorization methods on one model and prints a markdown table
# (the tables of docs/lowrank.md). Every row is one `shrink factorize` run:
# factorize at a kept-parameter ratio, write the low-rank GGUF, then perplexity/KLD/top-1
# against the original on each EVAL text (in the same process, as quant_table.sh does).
#
#   bash scripts/lowrank_table.sh MODEL "EVAL1 [EVAL2]" CALIB "svd asvd svd-llm" "0.9 0.8 0.6 0.4" [CTX] [CHUNKS]
# Rows whose report is already in OUT are reused, so an interrupted table resumes.
# Environment: SHRINK (binary, default build/shrink), OUT (work dir, default /tmp/lowrank_table),
# CALIB_TOKENS (default 16384), SEQ_LEN (default 256), EXTRA (more factorize flags, e.g. "--factor-dtype bf16").
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHRINK=${SHRINK:-$ROOT/build/shrink}
OUT=${OUT:-/tmp/lowrank_table}
MODEL=$1 EVAL=$2 CALIB=$3 METHODS=$4 RATIOS=$5 CTX=${6:-256} CHUNKS=${7:-40}
mkdir -p "$OUT"
hdr="| method | kept params | bits/weight (linears) | file |" sep="|---|---|---|---|"
for e in $EVAL; do n=$(basename "$e"); hdr+=" PPL $n | KLD $n | top-1 $n |"; sep+="---|---|---|"; done
echo "$hdr time | peak RSS |"; echo "$sep---|---|"
for r in $RATIOS; do
  for m in $METHODS; do
    name=$(basename "$MODEL" | tr '.' '_')-$m-$r
    args=(factorize "$MODEL" --method "$m" --ratio "$r" --ctx "$CTX" --chunks "$CHUNKS" --report "$OUT/$name.json"
          -o "$OUT/$name.gguf")
    for e in $EVAL; do args+=(--ppl "$e"); done
    # Plain SVD needs no data; ASVD and SVD-LLM calibrate on the same tokens GPTQ/AWQ use in docs/quantization.md.
    [ "$m" = svd ] || args+=(--calib "$CALIB" --calib-tokens "${CALIB_TOKENS:-16384}" --seq-len "${SEQ_LEN:-256}")
    # shellcheck disable=SC2206
    [ -z "${EXTRA:-}" ] || args+=($EXTRA)
    # A row already measured (its report names every eval text and the file size) is reused: a long table resumes.
    if [ -s "$OUT/$name.json" ] && [ "$(grep -c '"ppl_err"' "$OUT/$name.json")" = "$(wc -w <<<"$EVAL")" ] &&
       grep -q '"file_bytes"' "$OUT/$name.json"; then :
    elif ! "$SHRINK" "${args[@]}" >"$OUT/$name.log" 2>&1; then
      echo "| $m | $r | failed: $(tail -1 "$OUT/$name.log") |"; continue
    fi
    python3 "$ROOT/scripts/report_row.py" "$OUT/$name.json"
  done
done
