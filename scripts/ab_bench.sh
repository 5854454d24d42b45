#!/usr/bin/env bash
# Decode speed of two shrink binaries on one model, alternated run by run so the machine's drift
# (other tenants of the host move its bandwidth by up to 2x within minutes) falls on both alike:
# prints each run's decode tok/s and the ratio of the means, new / old.
#   bash scripts/ab_bench.sh OLD_SHRINK NEW_SHRINK MODEL [ROUNDS=3] [THREADS=2]
# OLD_SHRINK is typically a build of an earlier commit: git worktree add /tmp/old REV && bash
# /tmp/old/scripts/build.sh (or cmake there), then /tmp/old/build/shrink.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 OLD_SHRINK NEW_SHRINK MODEL [ROUNDS] [THREADS]" >&2; exit 2; }
OLD=$1 NEW=$2 M=$3 R=${4:-3} T=${5:-2}
for b in "$OLD" "$NEW"; do [ -x "$b" ] || { echo "$0: $b is not an executable" >&2; exit 2; }; done
tps() { "$1" bench "$M" -p 1 -n 48 -t "$T" -r 2 --no-bandwidth --json |
  python3 -c "import json, sys; print('%.2f' % json.load(sys.stdin)['runs'][0]['tg_tps'])"; }
for i in $(seq "$R"); do
  echo "old $(tps "$OLD")"
  echo "new $(tps "$NEW")"
done | awk '{ print; s[$1] += $2; n[$1]++ }
  END { printf "mean old %.2f new %.2f tok/s, ratio new/old %.3f\n", s["old"] / n["old"], s["new"] / n["new"], (s["new"] / n["new"]) / (s["old"] / n["old"]) }'
