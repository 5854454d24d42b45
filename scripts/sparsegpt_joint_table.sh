#!/usr/bin/env bash
# SparseGPT joint sparsity + quantization vs SparseGPT then RTN vs SparseGPT then GPTQ
# (docs/pruning.md, "Joint sparsity + quantization"). Block Linears only: the token embedding
# and the output head stay f32 in every row (--keep-head --keep-embed for the two-step rows).
#   bash scripts/sparsegpt_joint_table.sh MODEL TAG "0.5 2:4" "q4_0 q8_0" CALIB "EVAL1 EVAL2"
# Writes OUT/TAG-{sgpt,joint-T,rtn-T,gptq-T}-S.gguf and one OUT/*.EVAL.eval.json per evaluation
# (ctx 256, 40 windows, KLD against MODEL); existing files are reused (delete a row's files to
# redo it). Prints the markdown rows of the table at the end: file size, then PPL and KLD per
# evaluation text, then the mean over the block Linears of the prune report's relative output
# error (SparseGPT and joint rows only: the two-step rows' quantization is not in that report).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SH=${SHRINK:-$ROOT/build/shrink} O=${OUT:-/tmp/joint_runs}
M=$1 TAG=$2 SP=$3 TY=$4 CAL=$5 EVAL=$6
C="--calib $CAL --calib-tokens 16384 --seq-len 256"
mkdir -p "$O"
ev() { for e in $EVAL; do [ -s "$1.$(basename "$e").eval.json" ] || $SH eval "$1" -t 1 --base "$M" --ppl "$e" --ctx 256 --chunks 40 --json "$1.$(basename "$e").eval.json" >>"$1.log" 2>&1; done; }
for s in $SP; do
  ss=$(tr ':.' '__' <<<"$s"); P=$O/$TAG-sgpt-$ss.gguf
  [ -s "$P" ] || $SH prune "$M" -t 1 --method sparsegpt --sparsity "$s" $C -o "$P" >"$P.log" 2>&1
  ev "$P"
  for t in $TY; do
    J=$O/$TAG-joint-$t-$ss.gguf R=$O/$TAG-rtn-$t-$ss.gguf G=$O/$TAG-gptq-$t-$ss.gguf
    [ -s "$J" ] || $SH prune "$M" -t 1 --method sparsegpt --sparsity "$s" --quant-type "$t" $C -o "$J" >"$J.log" 2>&1
    [ -s "$R" ] || $SH quantize "$P" -t 1 --method rtn --type "$t" --keep-head --keep-embed -o "$R" >"$R.log" 2>&1
    [ -s "$G" ] || $SH quantize "$P" -t 1 --method gptq --type "$t" --keep-head --keep-embed $C -o "$G" >"$G.log" 2>&1
    ev "$J"; ev "$R"; ev "$G"
  done
done
python3 - "$O" "$TAG" "$SP" "$TY" "$EVAL" <<'PY'
import json, os, sys
o, tag, sps, tys, evals = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split(), sys.argv[5].split()
def row(sp, label, f):
    cells = [tag, sp, label, f"{os.path.getsize(f) // 1024} KiB" if os.path.exists(f) else "-"]
    for e in evals:
        try:
            d = json.load(open(f"{f}.{os.path.basename(e)}.eval.json"))
            cells += [f"{d['ppl']:.2f}", f"{d['kld']:.4f}"]
        except (OSError, ValueError, KeyError):
            cells += ["-", "-"]
    try:
        assert not label.startswith("SparseGPT →")  # a quantize report: error against the pruned model
        ls = json.load(open(f + ".json"))["layers"]
        cells.append(f"{sum(l['output_rel_err'] for l in ls) / len(ls):.4f}")
    except (AssertionError, OSError, ValueError, KeyError, ZeroDivisionError):
        cells.append("-")
    print("| " + " | ".join(cells) + " |")
for sp in sps:
    ss = sp.replace(":", "_").replace(".", "_")
    row(sp, "SparseGPT only (f32)", f"{o}/{tag}-sgpt-{ss}.gguf")
    for t in tys:
        row(sp, f"joint {t}", f"{o}/{tag}-joint-{t}-{ss}.gguf")
        row(sp, f"SparseGPT → RTN {t}", f"{o}/{tag}-rtn-{t}-{ss}.gguf")
        row(sp, f"SparseGPT → GPTQ {t}", f"{o}/{tag}-gptq-{t}-{ss}.gguf")
PY
