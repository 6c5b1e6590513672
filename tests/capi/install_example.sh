#!/usr/bin/env bash
# The installed package: `cmake --install` into a temporary prefix, then examples/c/chat.c built
# with the C compiler against it twice (pkg-config, and a CMake project using find_package) and
# run on the demo model.
# Usage: install_example.sh BUILD_DIR SOURCE_DIR C_COMPILER
set -uo pipefail
build=$1
src=$2
cc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passes=0
fails=0
check() {  # description, command...
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
    passes=$((passes + 1))
  else
    echo "FAIL: $what"
    fails=$((fails + 1))
  fi
}
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" --component capi >"$tmp/install.log" 2>&1
check "cmake --install (component capi)" test $? -eq 0
check "the header is installed" test -f "$prefix/include/coldstream.h"
lib=$(find "$prefix" -name 'libcoldstream.so.0.*' -type f | head -1)
check "the library is installed under its full version" test -n "$lib"
libdir=$(dirname "$lib")
check "libcoldstream.so.0 and libcoldstream.so link to it" \
  test "$(readlink -f "$libdir/libcoldstream.so")" = "$(readlink -f "$lib")" -a -L "$libdir/libcoldstream.so.0"
check "coldstream.pc is installed" test -f "$libdir/pkgconfig/coldstream.pc"
check "the CMake package is installed" test -f "$libdir/cmake/coldstream/coldstreamConfigVersion.cmake"

export PKG_CONFIG_PATH=$libdir/pkgconfig
flags=$(pkg-config --cflags --libs coldstream)
check "pkg-config's includedir (relative to the .pc file) holds the header" \
  test -f "$(pkg-config --variable=includedir coldstream)/coldstream.h"
# shellcheck disable=SC2086
"$cc" -std=c99 -Wall -Wextra -Werror -pedantic "$src/examples/c/chat.c" $flags -o "$tmp/chat_pc" 2>"$tmp/cc.log"
check "chat.c builds with cc \$(pkg-config --cflags --libs coldstream)" test $? -eq 0
cat "$tmp/cc.log"

cmake -S "$src/examples/c" -B "$tmp/example" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
  >"$tmp/example.log" 2>&1 && cmake --build "$tmp/example" >>"$tmp/example.log" 2>&1
check "chat.c builds with find_package(coldstream)" test $? -eq 0 || cat "$tmp/example.log"

model=$src/models/coldstream-demo.cst
if [[ ! -f "$model" ]]; then
  echo "the demo model $model is missing"
  exit 1
fi
for exe in "$tmp/chat_pc" "$tmp/example/chat"; do
  [[ -x "$exe" ]] || continue
  LD_LIBRARY_PATH=$libdir "$exe" "$model" "Hello! What is a mixture of experts?" --max-tokens 24 --no-think \
    >"$tmp/out" 2>"$tmp/err"
  rc=$?
  check "$(basename "$(dirname "$exe")")/$(basename "$exe") exits 0" test $rc -eq 0
  check "it printed a reply" test "$(tr -d '[:space:]' <"$tmp/out" | wc -c)" -gt 0
  check "it reported the speed" grep -q 'tok/s, first token after' "$tmp/err"
  check "it runs on the installed library" \
    bash -c "LD_LIBRARY_PATH='$libdir' ldd '$exe' | grep -q '$libdir/libcoldstream.so.0'"
done
# A bad model path is an error with a message, not a crash.
LD_LIBRARY_PATH=$libdir "$tmp/chat_pc" /nonexistent.cst "Hi" >/dev/null 2>"$tmp/err2"
check "a missing model is reported" grep -q 'loading the model: .*nonexistent.cst.*(not found)' "$tmp/err2"
echo "$passes passed, $fails failed"
test $fails -eq 0
