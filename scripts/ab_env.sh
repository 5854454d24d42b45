#!/usr/bin/env bash
# Decode speed of one shrink binary under several environment settings, alternated run by run so
# the host's drift (other tenants move its bandwidth by up to 2x within minutes) falls on all alike:
# prints, per setting, the median decode tok/s over the rounds, its ratio to the first setting's,
# and every run. Medians, because on a loaded host single runs can fall to a quarter of the rest.
#   bash scripts/ab_env.sh MODEL THREADS ROUNDS SETTING...
#   e.g. bash scripts/ab_env.sh q4_k.gguf 2 8 SHRINK_REPACK=0 SHRINK_REPACK=1
# A SETTING is one or more VAR=VALUE words in one argument ("A=1 B=2"). SHRINK (default
# build/shrink beside this script) picks the binary.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 MODEL THREADS ROUNDS SETTING..." >&2; exit 2; }
M=$1 T=$2 R=$3
shift 3
BIN=${SHRINK:-$(dirname "$0")/../build/shrink}
[ -x "$BIN" ] || { echo "$0: $BIN is not an executable (set SHRINK=...)" >&2; exit 2; }
[ -f "$M" ] || [ -d "$M" ] || { echo "$0: no model at $M" >&2; exit 2; }
tps() {
  # shellcheck disable=SC2086  # the setting is split into its VAR=VALUE words on purpose
  env $1 "$BIN" bench "$M" -p 1 -n 48 -t "$T" -r 2 --no-bandwidth --json |
    python3 -c "import json, sys; print('%.2f' % json.load(sys.stdin)['runs'][0]['tg_tps'])"
}
for _ in $(seq "$R"); do
  for s in "$@"; do echo "$s|$(tps "$s")"; done
done | python3 -c '
import statistics, sys
runs = {}
for line in sys.stdin:
    setting, tps = line.rstrip("\n").rsplit("|", 1)
    runs.setdefault(setting, []).append(float(tps))
base = None
for setting, v in runs.items():
    m = statistics.median(v)
    base = base or m
    print(f"{setting:40s} median {m:7.2f} tok/s  ratio {m / base:.3f}  runs {v}")
'
