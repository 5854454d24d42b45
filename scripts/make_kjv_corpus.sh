#!/usr/bin/env bash
# shrink's own demo-model corpus: the King James Bible from Debian 12's
# bible-kjv-text (apt-get install bible-kjv), as plain prose split by book.
#
#   bash scripts/make_kjv_corpus.sh OUTDIR
#
# writes OUTDIR/kjv-train.txt, OUTDIR/kjv-val.txt, OUTDIR/kjv-test.txt.
# Preprocessing (deterministic, no randomness): the reader's output is verse-
# numbered and wrapped at 80 columns with "Book N" chapter headings; we drop
# the headings and verse numbers, unwrap each verse onto one line, and put a
# blank line between chapters, so the model learns the prose and not the
# reference apparatus. Whole books are held out (never trained on):
#   validation (monitored during training): Ruth, Ecclesiastes, Philippians
#   test (the figures, data/kjv-heldout.txt): Joshua, Jonah, Mark
# spread over the Old and New Testaments. The text is public domain (1611;
# in the UK the KJV stays under the Crown's letters patent).
set -euo pipefail
out=${1:?usage: make_kjv_corpus.sh OUTDIR}
command -v bible >/dev/null || { echo "make_kjv_corpus.sh: needs 'bible' (apt-get install bible-kjv)" >&2; exit 1; }
mkdir -p "$out"
bible "Genesis 1:1-Revelation 22:21" | LC_ALL=C awk -v out="$out" '
  BEGIN {
    split("Ruth Ecclesiastes Philippians", v, " "); for (i in v) split_of[v[i]] = "val"
    split("Joshua Jonah Mark", t, " ");             for (i in t) split_of[t[i]] = "test"
  }
  function flush() {
    if (verse != "") { print verse > (out "/kjv-" cur ".txt"); verse = "" }
  }
  # A chapter heading ("Genesis 1", "1 Samuel 3", "Song of Solomon 2") is the
  # only non-indented line that follows a blank line.
  prev_blank && /^([1-3] )?[A-Z][A-Za-z ]* [0-9]+$/ {
    flush()
    book = $0; sub(/ [0-9]+$/, "", book)
    cur = (book in split_of) ? split_of[book] : "train"
    if (started[cur]++) print "" > (out "/kjv-" cur ".txt")
    prev_blank = 0; next
  }
  /^$/ { prev_blank = 1; next }
  /^  [0-9]+ / { flush(); verse = $0; sub(/^  [0-9]+ /, "", verse); prev_blank = 0; next }
  { verse = verse " " $0; prev_blank = 0 }
  END { flush() }
'
for s in train val test; do
  printf '%-5s %9d bytes %7d lines %8d words\n' "$s" $(wc -c <"$out/kjv-$s.txt") \
    $(wc -l <"$out/kjv-$s.txt") $(wc -w <"$out/kjv-$s.txt")
done
