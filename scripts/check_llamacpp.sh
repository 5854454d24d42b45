#!/usr/bin/env bash
# Checks that GGUF files written by shrink follow the GGUF spec and that llama.cpp loads and runs
# them with the same results as the originals. Independent readers come from the npm registry,
# installed into a temporary folder (never into the repo):
#   @huggingface/gguf                    a GGUF parser (structure, keys, types, tensor infos, alignment)
#   node-llama-cpp + @node-llama-cpp/linux-x64   llama.cpp's prebuilt CPU build (no compile, no download)
# What it does and the figures it gave: docs/llamacpp-check.md.
#
#   bash scripts/check_llamacpp.sh            # gguf structure, greedy ids, logits, perplexity (~7 min)
#   bash scripts/check_llamacpp.sh --bench    # also speed: llama.cpp vs shrink bench on --preset llama-500m
#                                             # F32 and BF16 (3.3 GB of temporary files, ~5 min more)
# Environment: BUILD (default build-llc), SHARED (default ../shared), LLAMACHECK_DIR (default a new
# mktemp folder), CHUNKS (perplexity windows, default 20), KEEP=1 keeps the work folder.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-llc}
SHARED=${SHARED:-$ROOT/../shared}
CHUNKS=${CHUNKS:-20}
NLC=3.22.1            # node-llama-cpp; its llama.cpp build: see `info` below
HFGGUF=0.4.6          # @huggingface/gguf
BENCH=0
[ "${1:-}" = "--bench" ] && BENCH=1

command -v node >/dev/null && command -v npm >/dev/null || { echo "check_llamacpp: needs node (>= 20) and npm" >&2; exit 1; }
WORK=${LLAMACHECK_DIR:-$(mktemp -d /tmp/llamacheck.XXXXXX)}
mkdir -p "$WORK/out"
[ "${KEEP:-0}" = 1 ] || [ -n "${LLAMACHECK_DIR:-}" ] || trap 'rm -rf "$WORK"' EXIT
OUT=$WORK/out
FAIL=0
fail() { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }
section() { echo; echo "### $* ($(cut -d' ' -f1-3 /proc/loadavg) load)"; }

section "build shrink"
cmake -S "$ROOT" -B "$BUILD" >/dev/null && cmake --build "$BUILD" -j2 --target shrink >/dev/null
SHRINK=$BUILD/shrink
echo "shrink: $SHRINK (repo $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
# The logits helper links against shrink's library with the same libraries as the shrink binary.
LIBS=$(sed -e 's/.* -o shrink //' "$BUILD/CMakeFiles/shrink.dir/link.txt")
(cd "$BUILD" && c++ -std=c++20 -O2 -I"$ROOT/src" "$ROOT/scripts/check_llamacpp_logits.cpp" -o "$WORK/dump_logits" $LIBS)

section "npm install (into $WORK)"
cp "$ROOT/scripts/check_llamacpp.mjs" "$WORK/"
(cd "$WORK" && echo '{"private":true,"type":"module"}' >package.json &&
  NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=error \
    "node-llama-cpp@$NLC" "@node-llama-cpp/linux-x64@$NLC" "@huggingface/gguf@$HFGGUF" >/dev/null)
cd "$WORK"
CHECK="node check_llamacpp.mjs"
$CHECK info
BINS=$WORK/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
if command -v python3 >/dev/null; then  # the commit llama.cpp was built from, as its own llama_commit() reports
  (cd "$BINS" && python3 -c '
import ctypes, glob, os
d = os.getcwd()
for n in ["libggml-base.so"] + glob.glob("libggml.v*.so") + glob.glob("libllama.v*.so"):
    ctypes.CDLL(os.path.join(d, n), mode=ctypes.RTLD_GLOBAL)
f = ctypes.CDLL(os.path.join(d, "libllama-common.so"))._Z12llama_commitv
f.restype = ctypes.c_char_p
print("llama.cpp commit (llama_commit()):", f().decode(), flush=True)
os._exit(0)') || true
fi

T=$SHARED/assets/models/teacher-9M
VALID=$SHARED/assets/text/gutenberg/valid.txt
HAVE_T=0
[ -f "$T/llama2c/model.bin" ] && [ -f "$T/gguf/model-f32.gguf" ] && HAVE_T=1
[ $HAVE_T = 1 ] || echo "NOTE: $T not found: teacher-9M checks skipped, only shrink init models are checked"

section "shrink writes the GGUF files"
FILES=()
if [ $HAVE_T = 1 ]; then
  for src in llama2c hf; do
    in=$T/llama2c/model.bin; [ $src = hf ] && in=$T/hf
    "$SHRINK" convert "$in" -o "$OUT/t9-$src-f32.gguf" 2>&1 | tail -1
    for d in f16 bf16; do "$SHRINK" convert "$in" -o "$OUT/t9-$src-$d.gguf" --dtype $d 2>&1 | tail -1; done
    FILES+=("$OUT/t9-$src-f32.gguf" "$OUT/t9-$src-f16.gguf" "$OUT/t9-$src-bf16.gguf")
  done
fi
for d in f32 f16 bf16; do
  "$SHRINK" init --preset tiny -o "$OUT/tiny-$d.gguf" --dtype $d 2>&1 | tail -1
  FILES+=("$OUT/tiny-$d.gguf")
done

section "GGUF structure with @huggingface/gguf (reference: llama.cpp's own teacher-9M F32 GGUF)"
if [ $HAVE_T = 1 ]; then
  ARGS=()
  for f in "${FILES[@]}"; do case $f in */t9-*) ARGS+=("$f@same");; *) ARGS+=("$f");; esac; done
  $CHECK gguf "$T/gguf/model-f32.gguf" "${ARGS[@]}" || fail "gguf structure"
else
  $CHECK gguf "$OUT/tiny-f32.gguf" "${FILES[@]}" || fail "gguf structure"
fi

for mode in default f32kv; do
  [ $mode = f32kv ] && export LLAMACHECK_F32KV=1
  section "llama.cpp loads and runs each file (KV cache: $mode)"
  GEN=("${FILES[@]}"); [ $HAVE_T = 1 ] && GEN=("$T/gguf/model-f32.gguf" "${FILES[@]}")
  $CHECK gen "$OUT" "${GEN[@]}" | tee "$OUT/gen-$mode.txt"
  unset LLAMACHECK_F32KV
done
if [ $HAVE_T = 1 ]; then
  REF_IDS='[3915,13,404,265,594,465,314,261,514,613,581,3918,13,13,3922,3921,3924,3910,355,943]'
  n=$(grep -cF "greedy ids $REF_IDS" "$OUT/gen-default.txt" || true)
  echo "greedy ids equal to the teacher README's 20 reference ids: $n of 7 files (llama.cpp's own + 6 of shrink's)"
  [ "$n" = 7 ] || fail "greedy ids"
fi

section "next-token distributions: llama.cpp on shrink's file vs shrink on the same file (8 positions)"
for f in "${FILES[@]}"; do
  b=$(basename "$f" .gguf); V=4096; ids=1,1459,372,681,261,587,3915,13
  case $b in tiny-*) V=512; ids=$(grep -A4 "== $f" "$OUT/gen-default.txt" | sed -n 's/.*at ids \([0-9,]*\).*/\1/p');; esac
  "$WORK/dump_logits" "$f" "$OUT/$b.shrink.f32" "$ids" 2>/dev/null
  echo "$b  llama.cpp defaults: $($CHECK cmp "$OUT/$b.gguf.logits.f32" "$OUT/$b.shrink.f32" $V)"
  echo "$b  F32 KV, no FA:      $($CHECK cmp "$OUT/$b.gguf.f32kv.logits.f32" "$OUT/$b.shrink.f32" $V)"
done
if [ $HAVE_T = 1 ]; then
  echo "llama.cpp (F32 KV) on its own F32 file vs PyTorch: $($CHECK cmp "$OUT/model-f32.gguf.f32kv.logits.f32" "$T/reference/ref_logits_once_upon_first8.npy" 4096)"
  for b in t9-llama2c-f32 t9-hf-f32; do
    for k in "" .f32kv; do
      cmp -s "$OUT/$b.gguf$k.logits.f32" "$OUT/model-f32.gguf$k.logits.f32" && echo "$b$k: llama.cpp's logits bit-identical to those on llama.cpp's own F32 file" \
        || fail "$b$k logits differ from llama.cpp's own file"
    done
  done

  section "perplexity, gutenberg/valid.txt, llama.cpp protocol, ctx 256, $CHUNKS windows"
  for f in "$T/gguf/model-f32.gguf" "${FILES[@]}"; do
    case $f in */tiny-*) continue;; esac
    echo "llama.cpp: $($CHECK ppl "$f" "$VALID" 256 "$CHUNKS" | grep '^{')"
    case $f in "$OUT"/*) echo "shrink:    $(basename "$f") $("$SHRINK" eval "$f" --ppl "$VALID" --ctx 256 --chunks "$CHUNKS" 2>&1 | grep '^PPL')";; esac
  done
  echo "(llama.cpp's recorded figure for 40 windows, F32: 37.9103 ± 1.35; run with CHUNKS=40 to compare)"
fi

if [ $BENCH = 1 ]; then
  for d in f32 bf16; do
    F=$OUT/l500m-$d.gguf
    section "speed: --preset llama-500m $d, pp128 / tg64, threads 1 and 2"
    "$SHRINK" init --preset llama-500m -o "$F" --dtype $d 2>&1 | tail -1
    echo "llama.cpp: (load $(cut -d' ' -f1-3 /proc/loadavg))"
    $CHECK bench "$F" 128 64 1,2 3
    echo "shrink: (load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$SHRINK" bench "$F" -p 128 -n 64 -t 1,2 -r 3
    echo "(load after: $(cut -d' ' -f1-3 /proc/loadavg))"
    rm -f "$F"
  done
fi

echo
if [ $FAIL = 0 ]; then echo "check_llamacpp: all checks passed"; else echo "check_llamacpp: $FAIL check(s) failed"; exit 1; fi
