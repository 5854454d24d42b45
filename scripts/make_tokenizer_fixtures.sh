#!/usr/bin/env bash
# Regenerates the tokenizer reference fixtures in tests/data/tokenizer/ from
# independent tokenizers (nothing of shrink's is involved):
#   gpt2.json      - JavaScript r50k_base encoders from npm (make_tokenizer_fixtures.js)
#   llama2.json    - SentencePiece on assets/tokenizers/llama2/tokenizer.model
#   teacher9m.json - SentencePiece on assets/models/teacher-9M/tokenizer.model
# Needs node/npm (registry access) and python3-sentencepiece (apt); the npm
# packages go to a temporary directory, never into the repository.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHRINK_SHARED:-$repo/../shared}
out=$repo/tests/data/tokenizer
wiki=$shared/assets/text/wikitext-2-raw/wiki.test.raw
mkdir -p "$out"
python3 "$repo/scripts/tokenizer_fixture_strings.py" "$out/strings.json"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --silent gpt-tokenizer@4.0.0 js-tiktoken@1.0.21 gpt-3-encoder@1.1.4 >/dev/null)
NODE_PATH=$tmp/node_modules node "$repo/scripts/make_tokenizer_fixtures.js" "$out/strings.json" "$wiki" "$out/gpt2.json"

# Debian's python3 (where apt puts sentencepiece), not a pyenv one.
/usr/bin/python3 "$repo/scripts/make_tokenizer_fixtures.py" "$out/strings.json" "$wiki" \
  "$shared/assets/tokenizers/llama2/tokenizer.model" "$out/llama2.json"
/usr/bin/python3 "$repo/scripts/make_tokenizer_fixtures.py" "$out/strings.json" "$wiki" \
  "$shared/assets/models/teacher-9M/tokenizer.model" "$out/teacher9m.json"
