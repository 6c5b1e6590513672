#!/usr/bin/env bash
# `coldstream chat` in a real terminal: tmux runs it, send-keys types, capture-pane reads the
# screen. Covers line editing (UTF-8 input, history), multi-line input, Ctrl-C stopping a reply
# and keeping the session, commands, and Ctrl-C at an empty prompt quitting. (The random model's
# noise includes control bytes; chat prints them in caret notation on a terminal, so they cannot
# scramble the screen these checks read: terminal_safe, tested in test_chat_session.cpp.)
# Usage: chat_tmux.sh COLDSTREAM MAKE_CHAT_MODEL   (exits 77 when tmux is missing)
set -uo pipefail
cs=$1
make_model=$2
command -v tmux >/dev/null || { echo "tmux is not installed"; exit 77; }
# CI runs without a terminal; tmux itself still needs a terminal type to emulate.
export TERM=${TERM:-xterm-256color}
[[ $TERM == dumb ]] && export TERM=xterm-256color
tmp=$(mktemp -d)
sock="coldstream-test-$$"
tm() { tmux -L "$sock" "$@"; }
trap 'tm kill-server 2>/dev/null; rm -rf "$tmp"' EXIT
passes=0
fails=0
check() {
  local what=$1
  shift
  if "$@"; then
    echo "ok: $what"
    passes=$((passes + 1))
  else
    echo "FAIL: $what"
    fails=$((fails + 1))
    echo "--- screen ---"
    screen
    echo "--------------"
  fi
}
# capture-pane drops trailing spaces: an empty prompt reads as ">". The whole history: a reply
# can push earlier lines far up.
screen() { tm capture-pane -t chat -p -S -; }
# The waits give up after 60 s: CI runs this next to other tests on two cores.
tries=600
# Waits until the screen matches a regular expression (grep -E).
wait_for() {
  for _ in $(seq $tries); do
    screen 2>/dev/null | grep -qE -- "$1" && return 0
    tm has-session -t chat 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# Waits until the last non-empty line of the screen matches.
wait_last() {
  for _ in $(seq $tries); do
    screen 2>/dev/null | grep -v '^$' | tail -1 | grep -qE -- "$1" && return 0
    tm has-session -t chat 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# Waits until the last non-empty line of the screen no longer matches (a reply has started).
wait_past() {
  for _ in $(seq $tries); do
    screen 2>/dev/null | grep -v '^$' | tail -1 | grep -qE -- "$1" || return 0
    tm has-session -t chat 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# Waits until at least N lines match.
wait_for_count() {
  for _ in $(seq $tries); do
    [[ $(screen 2>/dev/null | grep -cE -- "$1") -ge $2 ]] && return 0
    tm has-session -t chat 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# The number of lines matching.
count() { screen | grep -cE -- "$1"; }

"$make_model" "$tmp/m" || exit 1
# A long reply budget so Ctrl-C has something to stop.
tm new-session -d -s chat -x 120 -y 50 \
  "env HOME=$tmp LANG=C.UTF-8 TERM=xterm-256color '$cs' chat -m '$tmp/m' --ctx 4096 --max-tokens 3000 --ignore-eos --seed 5; echo EXITED rc=\$?; sleep 60"

check "the banner describes the model" wait_for 'random weights'
check "a prompt appears" wait_for '^>$'

tm send-keys -t chat 'Hello 世界' Enter
check "UTF-8 input is echoed intact" wait_for '^> Hello 世界$'
# Ctrl-C only once the reply has started (before that it would discard the line being edited).
wait_past '^> Hello 世界$' >/dev/null
sleep 0.3
tm send-keys -t chat C-c
check "Ctrl-C stops the reply" wait_for '\[stopped\]'
check "and a new prompt comes" wait_last '^>$'

tm send-keys -t chat '/help' Enter
check "/help lists the commands" wait_for '/think on\|off'

tm send-keys -t chat 'first line \' Enter
check "a trailing backslash continues the message" wait_for '^\.\.\.$'
tm send-keys -t chat 'second line' Enter
# Ctrl-C only once the line has been read and the reply has started (a signal overtakes keys
# still in the terminal's buffer, and Ctrl-C while editing discards the line).
wait_for '^\.\.\. second line$' >/dev/null
wait_past '^\.\.\. second line$' >/dev/null
sleep 0.3
tm send-keys -t chat C-c
check "the multi-line message was sent and answered (then stopped)" wait_for_count '\[stopped\]' 2

# History: Up recalls the last entry; Ctrl-C on a non-empty line discards it and keeps going.
wait_last '^>$' >/dev/null
tm send-keys -t chat Up
check "Up recalls history" wait_for '^> first line'
tm send-keys -t chat C-c
sleep 0.3
tm send-keys -t chat "/save $tmp/saved.json" Enter
check "/save works in the terminal" wait_for 'saved 4 messages'
check "the session survived both Ctrl-C" test -s "$tmp/saved.json"

tm send-keys -t chat '/stats' Enter
check "/stats shows the context used" wait_for 'context: [0-9]+ of 4096 tokens used'

tm send-keys -t chat C-c
check "Ctrl-C at an empty prompt quits cleanly" wait_for 'EXITED rc=0'
check "history was saved for the next session" test -s "$tmp/.coldstream_history"

echo "$passes passed, $fails failed"
test $fails -eq 0
