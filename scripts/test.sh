#!/usr/bin/env bash
# The whole test run on a fresh Debian 12 machine: install packages, build, fetch test data,
# run every test. Exits non-zero when anything fails. GPU tests report "not run" without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
scripts/fetch-test-data.sh
cd build
ctest --output-on-failure --timeout 900 -j "$(nproc)"
