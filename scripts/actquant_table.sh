#!/usr/bin/env bash
# Measures activation quantization (W8A8) methods on one model and prints a markdown table
# (docs/quantization.md, "Activation quantization"). Every row is one `shrink quantize` run
# measured in place: perplexity/KLD/top-1 against the original on each EVAL text.
#
#   bash scripts/actquant_table.sh MODEL "EVAL1 [EVAL2]" CALIB "ROW ..." [CTX] [CHUNKS]
# A ROW is METHOD[:ARG]: dynamic, llm-int8[:THRESHOLD], w8a8:OBSERVER (minmax, ema, percentile,
# percentile:99.9, mse, kl), smoothquant:ALPHA[:OBSERVER] (static), smoothquant-pt:ALPHA (per token),
# smoothquant-all:ALPHA[:OBSERVER] (--smooth-all: o and down smoothed too).
# Rows whose report is already in OUT are reused. Environment: SHRINK, OUT (default
# /tmp/actquant_table), CALIB_TOKENS (default 16384), SEQ_LEN (default 256).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHRINK=${SHRINK:-$ROOT/build/shrink}
OUT=${OUT:-/tmp/actquant_table}
MODEL=$1 EVAL=$2 CALIB=$3 ROWS=$4 CTX=${5:-256} CHUNKS=${6:-40}
mkdir -p "$OUT"
hdr="| method | activations | bits/weight (linears) | file |" sep="|---|---|---|---|"
for e in $EVAL; do n=$(basename "$e"); hdr+=" PPL $n | KLD $n | top-1 $n |"; sep+="---|---|---|"; done
echo "$hdr time | peak RSS |"; echo "$sep---|---|"
for row in $ROWS; do
  IFS=: read -r m a1 a2 <<<"$row"
  args=(quantize "$MODEL" --ctx "$CTX" --chunks "$CHUNKS")
  case $m in
    dynamic) args+=(--method dynamic) ;;
    llm-int8) args+=(--method llm-int8 --outlier-threshold "${a1:-6.0}") ;;
    w8a8) args+=(--method w8a8 --observer "${a1}${a2:+:$a2}") ;;
    smoothquant) args+=(--method smoothquant --alpha "$a1" --observer "${a2:-minmax}") ;;
    smoothquant-pt) args+=(--method smoothquant --alpha "$a1" --per-token) ;;
    smoothquant-all) args+=(--method smoothquant --smooth-all --alpha "$a1" --observer "${a2:-minmax}") ;;
    *) echo "unknown row $row" >&2; exit 1 ;;
  esac
  case $m in w8a8|smoothquant*) args+=(--calib "$CALIB" --calib-tokens "${CALIB_TOKENS:-16384}" --seq-len "${SEQ_LEN:-256}") ;; esac
  for e in $EVAL; do args+=(--ppl "$e"); done
  name=$(basename "$MODEL" | tr '.' '_')-$(tr ':' '_' <<<"$row")
  args+=(--report "$OUT/$name.json")
  if [ -s "$OUT/$name.json" ] && [ "$(grep -c '"ppl_err"' "$OUT/$name.json")" = "$(wc -w <<<"$EVAL")" ]; then :
  elif ! "$SHRINK" "${args[@]}" >"$OUT/$name.log" 2>&1; then
    echo "| $row | failed: $(tail -1 "$OUT/$name.log") |"; continue
  fi
  python3 "$ROOT/scripts/report_row.py" "$OUT/$name.json" "$row"
done
