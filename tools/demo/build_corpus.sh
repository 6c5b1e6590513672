#!/usr/bin/env bash
# Builds the demo model's training corpus from Debian packages with free licences.
#
#   tools/demo/build_corpus.sh            # then train_tokenizer.sh (optional) and tokenize_corpus.sh
#
# Needs: apt-get (Debian 12 package lists), dpkg-deb, groff, python3 (standard library only).
# Everything goes under demo-data/ (git-ignored; DEMO_DATA overrides):
#   debs/      the downloaded packages (apt-get download; no root needed, nothing is installed)
#   extract/   each package unpacked (dpkg-deb -x)
#   text/      plain-text documents per source (extract_text.py)
#   corpus/    train/held-out split after normalisation and deduplication (make_splits.py), the
#              chat conversations (make_chat.py), stats.json
#   manifest.tsv  package, version, architecture, size, sha256 of every .deb used
# The package list, licences and extraction rules are in tools/demo/sources.py. Takes about 10
# minutes on 2 cores (man pages through groff and the HTML manuals dominate).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DEMO_DATA:-demo-data}
JOBS=${JOBS:-2}
for t in apt-get dpkg-deb groff python3; do
  command -v $t >/dev/null || { echo "build_corpus: $t is missing (Debian: apt-get install groff-base dpkg python3)" >&2; exit 1; }
done
mkdir -p "$DATA/debs" "$DATA/extract"

mapfile -t PKGS < <(python3 -c 'import sys; sys.path.insert(0, "tools/demo"); from sources import packages; print("\n".join(packages()))')
missing=()
for p in "${PKGS[@]}"; do
  compgen -G "$DATA/debs/${p}_*.deb" >/dev/null || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "build_corpus: downloading ${#missing[@]} packages"
  (cd "$DATA/debs" && apt-get download "${missing[@]}") || {
    echo "build_corpus: apt-get download failed; run 'apt-get update' and try again" >&2; exit 1; }
fi

: > "$DATA/manifest.tsv.tmp"
for p in "${PKGS[@]}"; do
  debs=("$DATA"/debs/"${p}"_*.deb)
  if ((${#debs[@]} != 1)); then
    echo "build_corpus: expected one $p package in $DATA/debs, found ${#debs[@]}: remove the old ones" >&2; exit 1
  fi
  deb=${debs[0]}
  ver=$(dpkg-deb -f "$deb" Version)
  printf '%s\t%s\t%s\t%s\t%s\n' "$p" "$ver" "$(dpkg-deb -f "$deb" Architecture)" "$(stat -c %s "$deb")" \
    "$(sha256sum "$deb" | cut -d' ' -f1)" >> "$DATA/manifest.tsv.tmp"
  stamp="$DATA/extract/$p/.version"
  if [[ ! -f $stamp || $(cat "$stamp") != "$ver" ]]; then
    rm -rf "${DATA:?}/extract/$p" && mkdir -p "$DATA/extract/$p"
    dpkg-deb -x "$deb" "$DATA/extract/$p"
    echo "$ver" > "$stamp"
  fi
done
mv "$DATA/manifest.tsv.tmp" "$DATA/manifest.tsv"
echo "build_corpus: $(wc -l < "$DATA/manifest.tsv") packages unpacked; extracting text"
python3 tools/demo/extract_text.py "$DATA/extract" "$DATA/text" --jobs "$JOBS"
echo "build_corpus: normalising, deduplicating, splitting"
python3 tools/demo/make_splits.py "$DATA/text" "$DATA/corpus"
echo "build_corpus: chat conversations"
python3 tools/demo/make_chat.py "$DATA/corpus" "$DATA/extract" "$DATA/corpus"
echo "build_corpus: done; corpus in $DATA/corpus (stats.json), packages in $DATA/manifest.tsv"
