#!/usr/bin/env node
// GPT-2 reference ids for tests/data/tokenizer/gpt2.json, from independent
// JavaScript implementations of OpenAI's r50k_base (= GPT-2) encoding:
// gpt-tokenizer (the reference written out), cross-checked against js-tiktoken
// and gpt-3-encoder; any disagreement between them aborts.
// Usage (see make_tokenizer_fixtures.sh, which installs the packages in a
// temporary directory): NODE_PATH=<dir>/node_modules node make_tokenizer_fixtures.js \
//   <strings.json> <wiki.test.raw> <out.json>
'use strict';
const fs = require('fs');
const gptTokenizer = require('gpt-tokenizer/cjs/encoding/r50k_base');
const { getEncoding } = require('js-tiktoken');
const gpt3Encoder = require('gpt-3-encoder');

const [stringsPath, wikiPath, outPath] = process.argv.slice(2);
const tiktoken = getEncoding('r50k_base');

// Special-token strings such as <|endoftext|> are encoded as plain text, as
// shrink (like llama.cpp without parse_special) does.
function encode(text) {
  const a = gptTokenizer.encode(text, { disallowedSpecial: new Set() });
  const b = Array.from(tiktoken.encode(text, [], []));
  const c = gpt3Encoder.encode(text);
  const same = (x, y) => x.length === y.length && x.every((v, i) => v === y[i]);
  if (!same(a, b) || !same(a, c)) {
    throw new Error(`references disagree on ${JSON.stringify(text)}: ${a} / ${b} / ${c}`);
  }
  return a;
}

const strings = JSON.parse(fs.readFileSync(stringsPath, 'utf8')).strings;
const cases = strings.map((text) => ({ text, ids: encode(text) }));

// Plus random strings over a pool of awkward pieces (a fixed-seed LCG, so the
// fixture is reproducible): pre-tokenizer boundaries in every combination.
const pool = [' ', ' ', ' ', '  ', '\n', '\t', '\r\n', '\u3000', '\u00a0', 'e', 't', 'a', 'the', 'ing', 'Th',
  "'s", "'ll", "'", '"', ',', '.', '!!', '?', '-', '@-@', '0', '1', '42', '1999', '½', '²', 'é', 'ü', 'ß', 'İ',
  '日', '本', '😀', '👍🏽', '❤️', 'П', 'ри', '\x01', '\x7f', '<|endoftext|>', 'ab', 'xyz', 'Q', 'हि'];
let seed = 12345;
const next = () => { seed = (seed * 1664525 + 1013904223) % 4294967296; return Math.floor(seed / 256); };
for (let i = 0; i < 200; i++) {
  let text = '';
  for (let n = next() % 24; n > 0; n--) text += pool[next() % pool.length];
  cases.push({ text, ids: encode(text) });
}

// WikiText lines are stored by index only (the text stays in ../shared):
// every 30th line of wiki.test.raw, each with its trailing newline.
const lines = fs.readFileSync(wikiPath, 'utf8').split('\n');
const indices = [];
for (let i = 0; i + 1 < lines.length; i += 30) indices.push(i);
const wiki = indices.map((i) => encode(lines[i] + '\n'));
// And the whole file as one text (no BOS: GPT-2 adds none): its token count
// and a hash of its ids (too many to store), h = (h * 1000003 + id) mod 1e9+7,
// which stays exact in doubles.
const whole = encode(lines.join('\n'));
const wholeFileTokens = whole.length;
let wholeHash = 0;
for (const id of whole) wholeHash = (wholeHash * 1000003 + id) % 1000000007;

const out = {
  reference: 'gpt-tokenizer@4.0.0 r50k_base (agrees with js-tiktoken and gpt-3-encoder)',
  cases,
  wikitext: {
    asset: 'text/wikitext-2-raw/wiki.test.raw', lines: indices, ids: wiki,
    whole_file_tokens: wholeFileTokens, whole_file_ids_hash: wholeHash,
  },
};
fs.writeFileSync(outPath, JSON.stringify(out) + '\n');
console.log(`${outPath}: ${cases.length} strings (200 random), ${indices.length} wikitext lines, whole file ${wholeFileTokens} tokens`);
