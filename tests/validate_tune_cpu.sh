#!/usr/bin/env bash
# tools/validate_tune.sh --device cpu end to end (synth, trace, tune, tune --check, plan): every
# summary line is there, and on the host-only backend (synchronous copies, the replay's timing
# assumption) the simulator's hit rate equals the measured one within 1 point for each checked
# configuration that is not hybrid (a hybrid run adapts its split to measured times, the replay
# does not; its difference is printed, not checked).
# Usage: validate_tune_cpu.sh BIN_DIR SOURCE_DIR
set -u
bin=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "validate_tune_cpu: $*"; [[ -f $tmp/out/summary.txt ]] && cat "$tmp/out/summary.txt"; exit 1; }
OUT=$tmp/out "$src/tools/validate_tune.sh" --bin "$bin" --device cpu --scratch "$tmp/s" \
  >"$tmp/run" 2>&1 || fail "the script failed: $(tail -20 "$tmp/run")"
s=$tmp/out/summary.txt
for f in summary.txt log.txt check.json tuned.toml variant.toml plan.txt; do
  [[ -f $tmp/out/$f ]] || fail "no $f"
done
n=$(find "$tmp/out" -type f | wc -l)
((n <= 8)) || fail "$n files in OUT (at most 8)"
grep -q "^cost model: calibrated on this machine" "$s" || fail "no calibrated cost model line"
grep -q "^check default: simulated hit .* | measured hit .* | diff hit" "$s" || fail "no default check"
grep -q "^check .*/tuned.toml: simulated hit" "$s" || fail "no tuned check"
grep -q "^check .*/variant.toml: simulated hit" "$s" || fail "no variant check"
[[ $(grep -c "^== measured against default: .* tok/s vs default .* tok/s" "$s") == 2 ]] ||
  fail "no comparison with the default"
grep -q "^plan (h200 profile): decode: .* tok/s" "$s" || fail "no plan line"
grep -q "^done in" "$s" || fail "no final line"
checked=0
for f in tuned.toml variant.toml; do
  grep -q '^mode = "hybrid"' "$tmp/out/$f" && continue
  d=$(grep "^check .*/$f:" "$s" | sed 's/.*diff hit \([-+0-9.]*\) pt.*/\1/')
  awk -v d="$d" 'BEGIN { exit !(d >= -1 && d <= 1) }' || fail "$f: hit rate differs by $d pt"
  checked=$((checked + 1))
done
((checked >= 1)) || fail "no non-hybrid configuration was checked"
echo "validate_tune_cpu: 1 passed, 0 failed ($checked configurations within 1 pt)"
