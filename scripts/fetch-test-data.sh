#!/usr/bin/env bash
# Fetches data the tests need that is too large or not ours to commit, into build/testdata/.
# Each download is pinned by version and checked by checksum.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/testdata
