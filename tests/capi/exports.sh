#!/usr/bin/env bash
# libcoldstream.so exports cs_* functions only, under a versioned SONAME.
# Usage: exports.sh LIBRARY
set -euo pipefail
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort -u)
bad=$(printf '%s\n' "$syms" | grep -v '^cs_' | grep -v '^COLDSTREAM_0$' || true)
if [[ -n "$bad" ]]; then
  echo "FAIL: symbols other than cs_* exported:"
  printf '%s\n' "$bad" | head -20
  exit 1
fi
n=$(printf '%s\n' "$syms" | grep -c '^cs_')
# Every function the header declares is exported.
hdr=$(dirname "$0")/../../runtime/include/coldstream.h
want=$(grep -oE 'CS_API [^(]*\bcs_[a-z_]+\(' "$hdr" | grep -oE 'cs_[a-z_]+\($' | tr -d '(' | sort -u)
missing=$(comm -23 <(printf '%s\n' "$want") <(printf '%s\n' "$syms"))
if [[ -n "$missing" ]]; then
  echo "FAIL: declared but not exported: $missing"
  exit 1
fi
soname=$(objdump -p "$lib" | awk '/SONAME/ {print $2}')
[[ "$soname" == libcoldstream.so.0 ]] || { echo "FAIL: SONAME is '$soname'"; exit 1; }
echo "ok: $n cs_* symbols ($(printf '%s\n' "$want" | wc -l) declared), nothing else; SONAME $soname"
