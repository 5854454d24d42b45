#!/usr/bin/env bash
# Decode speed of compressed 2:4 and low-rank models against dense on the
# llama-500m `init` model (issue 5, must-show 4; docs/pruning.md, docs/lowrank.md):
#   dense F32  vs 2:4 compressed f32 values     (shrink prune --sparsity 2:4 --compress)
#   dense BF16 vs 2:4 compressed bf16 values
#   dense F32  vs low-rank SVD at ratio 0.5, f32 factors (shrink factorize --svd randomized)
#   dense F32  vs 70% magnitude-pruned, bitmask compressed (shrink prune --sparsity 0.7 --compress; SET=mask)
# The machine is shared: every model is benched once per round, rounds
# interleave the models, and the table gives medians over rounds of the
# tokens/s, of the fraction of the bandwidth bound (`shrink bench`'s "of bound",
# measured beside each run) and of the per-round speed-up against the dense
# model of the same dtype. The load average is printed for every round.
#   bash scripts/sparse_speed.sh [ROUNDS]        (default 3)
# Env: SHRINK (binary), L500 / L500_BF16 (dense models; made by `shrink init` /
# `shrink convert` when missing), OUT (work directory for the derived models
# and JSON), THREADS (default "1 2"), BENCH (bench flags), SET (sparse | lowrank |
# mask | all, default all: which comparisons to run; mask is not part of all).
set -euo pipefail
ROUNDS=${1:-3}
SHRINK=${SHRINK:-./build/shrink}
L500=${L500:-/tmp/kv_l500.gguf}
L500_BF16=${L500_BF16:-/tmp/kv_l500-bf16.gguf}
OUT=${OUT:-/tmp/sp24}
THREADS=${THREADS:-"1 2"}
BENCH=${BENCH:-"-p 16 -n 32 -r 2"}
SET=${SET:-all}
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$OUT"

make_model() {  # make_model FILE command...
  local f=$1; shift
  [ -f "$f" ] && return 0
  echo "making $f: $*" >&2
  "$@" >&2
}
make_model "$L500" "$SHRINK" init --preset llama-500m -o "$L500"
[ "$SET" = mask ] || make_model "$L500_BF16" "$SHRINK" convert "$L500" --dtype bf16 -o "$L500_BF16"
if [ "$SET" = mask ]; then
  make_model "$OUT/l500-m70.gguf" "$SHRINK" prune "$L500" --sparsity 0.7 --compress -o "$OUT/l500-m70.gguf"
  MODELS=("dense-f32 $L500 dense-f32" "mask70-f32 $OUT/l500-m70.gguf dense-f32")
fi
[ "$SET" = mask ] || make_model "$OUT/l500-24c.gguf" "$SHRINK" prune "$L500" --sparsity 2:4 --compress -o "$OUT/l500-24c.gguf"
[ "$SET" = mask ] || make_model "$OUT/l500-bf16-24c.gguf" "$SHRINK" prune "$L500_BF16" --sparsity 2:4 --compress -o "$OUT/l500-bf16-24c.gguf"
[ "$SET" = sparse ] || [ "$SET" = mask ] || make_model "$OUT/l500-lr50.gguf" "$SHRINK" factorize "$L500" --method svd --svd randomized --ratio 0.5 \
  -o "$OUT/l500-lr50.gguf"

# name file baseline-name
[ "$SET" = mask ] || MODELS=("dense-f32 $L500 dense-f32")
[ "$SET" = lowrank ] || [ "$SET" = mask ] || MODELS+=(
  "2:4-f32 $OUT/l500-24c.gguf dense-f32"
  "dense-bf16 $L500_BF16 dense-bf16"
  "2:4-bf16 $OUT/l500-bf16-24c.gguf dense-bf16")
[ "$SET" = sparse ] || [ "$SET" = mask ] || MODELS+=("lowrank0.5-f32 $OUT/l500-lr50.gguf dense-f32")
OUT=$OUT/$SET
mkdir -p "$OUT"
rm -f "$OUT"/speed-*.json
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round: $(uptime)" >&2
  for t in $THREADS; do
    for m in "${MODELS[@]}"; do
      read -r name file _ <<<"$m"
      # shellcheck disable=SC2086
      "$SHRINK" bench "$file" $BENCH -t "$t" --json > "$OUT/speed-r$round-t$t-${name/:/_}.json" 2>/dev/null
    done
  done
done
echo "after: $(uptime)" >&2

python3 - "$OUT" "$ROUNDS" "$THREADS" "${MODELS[@]}" <<'EOF'
import json, statistics, sys
out, rounds, threads, models = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), [m.split() for m in sys.argv[4:]]
def run(name, r, t):
    j = json.load(open(f"{out}/speed-r{r}-t{t}-{name.replace(':', '_')}.json"))
    return j, j["runs"][0]
print("| model | decode bytes/token | bytes ratio | " + " | ".join(
    f"{t} thread{'s' if t != '1' else ''} tok/s | of bound | speed-up" for t in threads) + " |")
print("|---|---:|---:|" + "---:|---:|---:|" * len(threads))
for name, _, base in models:
    j, _ = run(name, 1, threads[0])
    jb, _ = run(base, 1, threads[0])
    cells = [name, f"{j['decode_bytes_per_token'] / 2**20:.0f} MiB",
             f"{jb['decode_bytes_per_token'] / j['decode_bytes_per_token']:.2f}x"]
    for t in threads:
        tps = [run(name, r, t)[1]["tg_tps"] for r in range(1, rounds + 1)]
        frac = [run(name, r, t)[1]["bw_fraction"] for r in range(1, rounds + 1)]
        up = [run(name, r, t)[1]["tg_tps"] / run(base, r, t)[1]["tg_tps"] for r in range(1, rounds + 1)]
        cells += [f"{statistics.median(tps):.2f}", f"{100 * statistics.median(frac):.0f}%",
                  f"{statistics.median(up):.2f}x ({min(up):.2f}-{max(up):.2f})"]
    print("| " + " | ".join(cells) + " |")
EOF
