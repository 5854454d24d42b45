#!/usr/bin/env bash
# Must-show 4 of the weight-quantization issue (docs/quantization.md, "Decode speed"): decode
# tokens/s of F32, Q8_0, Q4_0 and Q4_K on a random-weight `shrink init` model at 1 and 2 threads,
# with the fraction of the read-bandwidth bound (whole run, and paired: each repetition against a
# probe run right after it), and the speed-up over F32 beside the ratio of bytes read per token.
#   bash scripts/decode_table.sh [PRESET] [DIR]   (default: llama-500m, files kept in /tmp/decode-PRESET)
# The first run makes the model and its RTN quantizations (a few GB in DIR); later runs reuse them.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHRINK=${SHRINK:-$ROOT/build/shrink}
PRESET=${1:-llama-500m}
DIR=${2:-/tmp/decode-$PRESET}
mkdir -p "$DIR"
[ -s "$DIR/f32.gguf" ] || "$SHRINK" init --preset "$PRESET" -o "$DIR/f32.gguf"
for t in q8_0 q4_0 q4_k; do
  [ -s "$DIR/$t.gguf" ] || "$SHRINK" quantize "$DIR/f32.gguf" --method rtn --type "$t" -o "$DIR/$t.gguf"
done
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for t in f32 q8_0 q4_0 q4_k; do
  "$SHRINK" bench "$DIR/$t.gguf" -p 1 -n 48 -r 3 -t 1,2 --json > "$DIR/$t.bench.json"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$PRESET" "$DIR" <<'PY'
import json, sys
preset, d = sys.argv[1:]
runs = {t: json.load(open(f"{d}/{t}.bench.json")) for t in ("f32", "q8_0", "q4_0", "q4_k")}
f32 = runs["f32"]
print(f"| {preset} | decode MiB/token | 1 t tok/s | of bound | paired | 2 t tok/s | of bound | paired "
      "| speed-up vs F32 (1 t / 2 t) | bytes ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for t, j in runs.items():
    r1, r2 = j["runs"]
    up = " / ".join(f'{r["tg_tps"] / f["tg_tps"]:.2f}' for r, f in zip(j["runs"], f32["runs"]))
    print(f'| {t.upper()} | {j["decode_bytes_per_token"] / 2**20:.0f} | {r1["tg_tps"]:.2f} | {100 * r1["bw_fraction"]:.0f}% '
          f'| {100 * r1["bw_fraction_paired"]:.0f}% | {r2["tg_tps"]:.2f} | {100 * r2["bw_fraction"]:.0f}% '
          f'| {100 * r2["bw_fraction_paired"]:.0f}% | {up} | {f32["decode_bytes_per_token"] / j["decode_bytes_per_token"]:.2f} |')
PY
