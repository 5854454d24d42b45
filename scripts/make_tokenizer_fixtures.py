#!/usr/bin/env python3
"""SentencePiece reference ids for tests/data/tokenizer/{llama2,teacher9m}.json,
from the SentencePiece library itself (Debian's python3-sentencepiece) on the
original tokenizer.model files. Also records how many tokens the whole of
wiki.test.raw becomes (with BOS), the figure the teacher-9M README quotes.
Usage (see make_tokenizer_fixtures.sh):
  /usr/bin/python3 make_tokenizer_fixtures.py <strings.json> <wiki.test.raw> <tokenizer.model> <out.json>"""
import json
import sys

import sentencepiece as spm


def main():
    strings_path, wiki_path, model_path, out_path = sys.argv[1:5]
    sp = spm.SentencePieceProcessor(model_file=model_path)
    strings = json.load(open(strings_path, encoding="utf-8"))["strings"]
    cases = [{"text": s, "ids": sp.encode(s)} for s in strings]
    text = open(wiki_path, encoding="utf-8").read()
    lines = text.split("\n")
    # Same line selection as make_tokenizer_fixtures.js: every 30th line, with its newline.
    indices = list(range(0, len(lines) - 1, 30))
    wiki = [sp.encode(lines[i] + "\n") for i in indices]
    whole_ids = [sp.bos_id()] + sp.encode(text)
    whole = len(whole_ids)
    whole_hash = 0  # the ids' hash, as make_tokenizer_fixtures.js computes it
    for i in whole_ids:
        whole_hash = (whole_hash * 1000003 + i) % 1000000007
    out = {
        "reference": "sentencepiece %s (python3-sentencepiece) on %s" % (spm.__version__, model_path.split("/assets/")[-1]),
        "cases": cases,
        "wikitext": {"asset": "text/wikitext-2-raw/wiki.test.raw", "lines": indices, "ids": wiki,
                     "whole_file_tokens_with_bos": whole, "whole_file_ids_hash": whole_hash},
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("%s: %d strings, %d wikitext lines, whole file %d tokens with BOS" % (out_path, len(cases), len(indices), whole))


if __name__ == "__main__":
    main()
