#!/usr/bin/env python3
"""Writes tests/data/tokenizer/strings.json: the tricky inputs that every
tokenizer fixture is made from (see scripts/make_tokenizer_fixtures.sh).
Kept to characters assigned by Unicode 14 (shrink's letter/number table),
and free of U+0085 and U+FEFF, which JavaScript's \\s and Unicode's
White_Space (what GPT-2's Python regex used) disagree on."""
import json
import sys

STRINGS = [
    "",
    "Hello world",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time",
    "I'm you're they've he'll she'd it's don't won't",
    "I'M YOU'RE THEY'VE HE'LL SHE'D IT'S",
    "'s's''s 't 're 've 'm 'll 'd '",
    "rock'n'roll o'clock ’tis",
    "12345 67.89 3,000,000 1e10 0x1F -42 +7",
    "2024-01-01T12:34:56Z",
    "a  b   c    d",
    "   leading spaces",
    "trailing spaces   ",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n\n",
    "line1\nline2\r\nline3\ttab",
    "\t\tindented\n    code();\n",
    "def foo(x):\n    return x**2  # comment\n",
    "!!!???...",
    "--- ### @@@ ... ,,, ;;;",
    "(foo) [bar] {baz} <qux> \"quoted\" 'single'",
    "a.b,c;d:e/f\\g|h",
    "https://example.com/path?q=1&r=2#frag",
    "café naïve résumé Ångström façade Ærøskøbing",
    "Ça va? Où est-ce? Zürich, Kraków, Łódź, İstanbul",
    "日本語のテキスト",
    "中文字符测试，标点符号。",
    "한국어 텍스트",
    "I ❤️ emoji 😀🎉👍🏽",
    "👨‍👩‍👧‍👦 family",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "हिन्दी भाषा",
    "ภาษาไทย",
    "x²+y³=z¹ ½ ¼ Ⅻ ٣٤٥ ①②",
    "a\u00a0b\u3000c\u2009d",
    "a\u200bb",
    "abc123def hello世界 ÀÉÎ",
    "ĠĊ ĉ Ā",
    "<|endoftext|>",
    "<s> </s> <unk> <0x41> <pad>",
    "a<s>b x</s>y <<s>>",
    "\x00\x01\x7f control bytes",
    "İ ǅ ß ﬁ",
    "antidisestablishmentarianism supercalifragilisticexpialidocious",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "          ten spaces then text",
    "mixed \t \n whitespace \r\n\t end",
    "@-@ 1 @,@ 000 @.@ 5",
    " = Robert Boulter = \n",
]

if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/tokenizer/strings.json"
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"strings": STRINGS}, f, ensure_ascii=False, indent=1)
        f.write("\n")
