#!/usr/bin/env bash
# Measures structured pruning on one model and prints a markdown table (docs/pruning.md,
# "Structured pruning"). Every row is one `shrink prune --structured` run (a smaller dense GGUF)
# and one `shrink eval OUT --base MODEL` per EVAL text: perplexity, KLD and top-1 against the original.
#
#   bash scripts/structured_table.sh MODEL "EVAL1 [EVAL2]" CALIB "heads channels" "l1 l2 activation taylor" "0.1 0.2 0.3" "1 2 3" [CTX] [CHUNKS]
# The 7th argument lists how many layers to remove by block importance ("" for none).
# Rows already in OUT are reused, so an interrupted table resumes.
# Environment: SHRINK (binary, default build/shrink), OUT (default /tmp/structured_table), CALIB_TOKENS
# (default 8192), SEQ_LEN (default 256), THREADS (default 1), EXTRA (more flags, e.g. --global; part of row names).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHRINK=${SHRINK:-$ROOT/build/shrink}
OUT=${OUT:-/tmp/structured_table}
MODEL=$1 EVAL=$2 CALIB=$3 KINDS=$4 CRITERIA=$5 RATIOS=$6 LAYERS=$7 CTX=${8:-256} CHUNKS=${9:-40}
EXTRA=${EXTRA:-}
mkdir -p "$OUT"
hdr="| remove | importance | params after | removed (model) | file |" sep="|---|---|---|---|---|"
for e in $EVAL; do n=$(basename "$e"); hdr+=" PPL $n | KLD $n |"; sep+="---|---|"; done
echo "$hdr"; echo "$sep"
row() {  # name, label, prune flags...
  local name=$1 label=$2; shift 2
  local evals=() done_all=1
  for e in $EVAL; do evals+=("$OUT/$name.$(basename "$e").eval.json"); done
  [ -s "$OUT/$name.gguf.json" ] || done_all=0
  for j in "${evals[@]}"; do [ -s "$j" ] || done_all=0; done
  if [ $done_all = 0 ]; then
    # shellcheck disable=SC2086
    if ! "$SHRINK" prune "$MODEL" -t "${THREADS:-1}" "$@" $EXTRA --calib "$CALIB" --calib-tokens "${CALIB_TOKENS:-8192}" \
         --seq-len "${SEQ_LEN:-256}" -o "$OUT/$name.gguf" >"$OUT/$name.log" 2>&1; then
      echo "| $label | failed: $(tail -1 "$OUT/$name.log") |"; return
    fi
    local i=0
    for e in $EVAL; do
      "$SHRINK" eval "$OUT/$name.gguf" -t "${THREADS:-1}" --base "$MODEL" --ppl "$e" --ctx "$CTX" --chunks "$CHUNKS" \
        --json "${evals[$i]}" >>"$OUT/$name.log" 2>&1 || echo "| $label | eval failed: $(tail -1 "$OUT/$name.log") |"
      i=$((i + 1))
    done
  fi
  python3 - "$label" "$OUT/$name.gguf.json" "${evals[@]}" <<'PY'
import json, sys
label, rep = sys.argv[1], json.load(open(sys.argv[2]))
row = (f'| {label} | {rep["importance"]} | {rep["params_after"]:,} | {100 * rep["removed_share_of_model"]:.1f}% '
       f'| {rep["file_bytes"] / 1e6:.3f} MB |')
for p in sys.argv[3:]:
    e = json.load(open(p))
    row += f' {e["ppl"]:.3f} ± {e["ppl_err"]:.3f} | {e["kld"]:.4f} |'
print(row)
PY
}
base=$(basename "$MODEL" | tr '.' '_')
for k in $KINDS; do
  for r in $RATIOS; do
    for c in $CRITERIA; do
      row "$base-$k-$c-$r$(tr -d ' -' <<<"$EXTRA")" "$k $r$EXTRA" --structured "$k" --ratio "$r" --importance "$c"
    done
  done
done
for n in $LAYERS; do
  row "$base-layers-$n" "$n layer(s)" --structured layers --remove-layers "$n" --importance block
done
