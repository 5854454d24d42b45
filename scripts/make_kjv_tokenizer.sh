#!/usr/bin/env bash
# SentencePiece tokenizer of shrink's own demo model, trained on the KJV train
# split only (scripts/make_kjv_corpus.sh). Needs spm_train (apt-get install sentencepiece).
#
#   bash scripts/make_kjv_tokenizer.sh CORPUS_DIR OUT_PREFIX   # writes OUT_PREFIX.model / .vocab
#
# BPE, 2,048 pieces, Llama-style: identity normalization (the text is kept
# byte for byte), whitespace kept as is, digits split, and byte fallback so
# that any UTF-8 text — newlines included, which spm_train never sees because
# it reads line by line — still tokenizes (as <0xNN> pieces).
set -euo pipefail
corpus=${1:?usage: make_kjv_tokenizer.sh CORPUS_DIR OUT_PREFIX}
prefix=${2:?usage: make_kjv_tokenizer.sh CORPUS_DIR OUT_PREFIX}
command -v spm_train >/dev/null || { echo "make_kjv_tokenizer.sh: needs spm_train (apt-get install sentencepiece)" >&2; exit 1; }
spm_train --input="$corpus/kjv-train.txt" --model_prefix="$prefix" \
  --model_type=bpe --vocab_size=2048 --character_coverage=1.0 --byte_fallback=true \
  --normalization_rule_name=identity --remove_extra_whitespaces=false --split_digits=true \
  --allow_whitespace_only_pieces=true --max_sentence_length=8192 \
  --input_sentence_size=0 --shuffle_input_sentence=false --num_threads=1 \
  --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --minloglevel=1
