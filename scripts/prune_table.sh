#!/usr/bin/env bash
# Measures pruning methods on one model and prints a markdown table (the tables of
# docs/pruning.md). Every row is one `shrink prune` run (written as a dense GGUF) and one
# `shrink eval OUT --base MODEL` per EVAL text: perplexity, KLD and top-1 against the original.
#
#   bash scripts/prune_table.sh MODEL "EVAL1 [EVAL2]" CALIB "magnitude wanda sparsegpt" "0.3 0.5 0.7 2:4 4:8" [CTX] [CHUNKS]
# Every method gets --calib (magnitude's mask ignores it; it only adds each layer's output error
# to the report, which is what the table's "out err" column compares).
# Rows whose report and evaluations are already in OUT are reused, so an interrupted table resumes.
# Environment: SHRINK (binary, default build/shrink), OUT (work dir, default /tmp/prune_table),
# CALIB_TOKENS (default 16384), SEQ_LEN (default 256), THREADS (default 1: on a 2-core machine shared with
# other jobs, OpenMP's spinning team makes small models ~15x slower than one thread), EXTRA (more `shrink prune` flags, e.g. --global;
# it becomes part of the row names).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHRINK=${SHRINK:-$ROOT/build/shrink}
OUT=${OUT:-/tmp/prune_table}
MODEL=$1 EVAL=$2 CALIB=$3 METHODS=$4 SPARSITIES=$5 CTX=${6:-256} CHUNKS=${7:-40}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
hdr="| method | sparsity | achieved | mean out err |" sep="|---|---|---|---|"
for e in $EVAL; do n=$(basename "$e"); hdr+=" PPL $n | KLD $n | top-1 $n |"; sep+="---|---|---|"; done
echo "$hdr time |"; echo "$sep---|"
for s in $SPARSITIES; do
  for m in $METHODS; do
    name=$(basename "$MODEL" | tr '.' '_')-$m$(tr -d ' -' <<<"$EXTRA")-$(tr ':.' '__' <<<"$s")
    evals=()
    for e in $EVAL; do evals+=("$OUT/$name.$(basename "$e").eval.json"); done
    done_all=1
    [ -s "$OUT/$name.gguf.json" ] || done_all=0
    for j in "${evals[@]}"; do [ -s "$j" ] || done_all=0; done
    if [ $done_all = 0 ]; then
      # shellcheck disable=SC2086  # EXTRA is a list of flags
      if ! "$SHRINK" prune "$MODEL" -t "${THREADS:-1}" --method "$m" --sparsity "$s" $EXTRA --calib "$CALIB" \
           --calib-tokens "${CALIB_TOKENS:-16384}" --seq-len "${SEQ_LEN:-256}" -o "$OUT/$name.gguf" >"$OUT/$name.log" 2>&1; then
        echo "| $m | $s | failed: $(tail -1 "$OUT/$name.log") |"; continue
      fi
      i=0
      for e in $EVAL; do
        "$SHRINK" eval "$OUT/$name.gguf" -t "${THREADS:-1}" --base "$MODEL" --ppl "$e" --ctx "$CTX" --chunks "$CHUNKS" \
          --json "${evals[$i]}" >>"$OUT/$name.log" 2>&1 || { echo "| $m | $s | eval failed: $(tail -1 "$OUT/$name.log") |"; }
        i=$((i + 1))
      done
    fi
    python3 "$ROOT/scripts/prune_row.py" "$OUT/$name.gguf.json" "${evals[@]}"
  done
done
