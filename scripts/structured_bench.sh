#!/usr/bin/env bash
# Decode speed of a structurally pruned model vs the original, in one run (docs/pruning.md,
# "Structured pruning"): prunes 30% of the FFN channels of MODEL by L2 norm (no calibration), then
# benchmarks both with the same settings, one thread, and prints the decode ratio.
#   bash scripts/structured_bench.sh [MODEL]   (default: a llama-500m made by `shrink init` at /tmp/l500.gguf)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHRINK=${SHRINK:-$ROOT/build/shrink}
M=${1:-/tmp/l500.gguf}
[ -s "$M" ] || "$SHRINK" init --preset llama-500m -o "$M"
P=${M%.gguf}-ch30.gguf
"$SHRINK" prune "$M" --structured channels --ratio 0.3 --importance l2 -o "$P"
uptime
for f in "$M" "$P"; do
  OMP_WAIT_POLICY=PASSIVE "$SHRINK" bench "$f" -t 1 -n 32 -p 16 -r 3 --json > "$f.bench.json"
done
python3 - "$M.bench.json" "$P.bench.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for j in (a, b):
    r = j["runs"][0]
    print(f'{j["model"]}: decode {r["tg_tps"]:.2f} ± {r["tg_sd"]:.2f} tok/s, prefill {r["pp_tps"]:.2f} tok/s, '
          f'{j["decode_bytes_per_token"] / 1e6:.0f} MB read per token')
print(f'decode speed ratio pruned/original: {b["runs"][0]["tg_tps"] / a["runs"][0]["tg_tps"]:.3f} '
      f'(bytes per token ratio {a["decode_bytes_per_token"] / b["decode_bytes_per_token"]:.3f})')
PY
uptime
