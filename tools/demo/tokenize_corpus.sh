#!/usr/bin/env bash
# Tokenizes the demo corpus with the committed tokenizer into uint16 token streams for training.
#
#   tools/demo/tokenize_corpus.sh        (after build_corpus.sh; uses tools/demo/tokenizer/)
#
# Writes demo-data/tokens/ (git-ignored; this folder is what travels to the GPU host, ~35 MB):
#   train.u16.xz        corpus train split + chat_train conversations, documents shuffled (seed
#                       1234), each followed by <|endoftext|>; little-endian uint16, xz-compressed
#   heldout.u16         held-out split (the text of demo-data/corpus/heldout.txt), in corpus order
#   heldout_small.u16   the small held-out slice (demo-data/corpus/heldout_small.txt)
#   chat_heldout.u16    held-out chat conversations
#   meta.json           vocabulary, special ids, token counts, sha256 of every file
# Lines are encoded with spm_encode and joined with <0x0A> (see tokens.py); the held-out slice is
# decoded back with spm_decode and must equal the text byte for byte.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DEMO_DATA:-demo-data}
TOK=tools/demo/tokenizer/tokenizer
OUT=$DATA/tokens
WORK=$DATA/tok
for t in spm_encode spm_decode xz python3; do
  command -v $t >/dev/null || { echo "tokenize_corpus: $t is missing" >&2; exit 1; }
done
[[ -s $TOK.model ]] || { echo "tokenize_corpus: $TOK.model is missing; run train_tokenizer.sh" >&2; exit 1; }
mkdir -p "$OUT" "$WORK"
encode() {  # name, output, jsonl files..., [--shuffle-seed N via SHUFFLE]
  local name=$1 out=$2; shift 2
  cat "$@" > "$WORK/$name.jsonl"
  python3 tools/demo/tokens.py split "$WORK/$name.jsonl" "$WORK/$name.lines" "$WORK/$name.counts"
  spm_encode --model="$TOK.model" --output_format=id < "$WORK/$name.lines" > "$WORK/$name.ids"
  python3 tools/demo/tokens.py pack "$WORK/$name.ids" "$WORK/$name.counts" "$TOK.vocab" "$out" ${SHUFFLE:+--shuffle-seed $SHUFFLE}
}
C=$DATA/corpus
SHUFFLE=1234 encode train "$WORK/train.u16" "$C/train.jsonl" "$C/chat_train.jsonl"
encode heldout "$OUT/heldout.u16" "$C/heldout.jsonl"
encode heldout_small "$OUT/heldout_small.u16" "$C/heldout_small.jsonl"
encode chat_heldout "$OUT/chat_heldout.u16" "$C/chat_heldout.jsonl"
# Round trip: the held-out slice decodes to its text.
spm_decode --model="$TOK.model" --input_format=id < "$WORK/heldout_small.ids" > "$WORK/heldout_small.decoded"
cmp -s "$WORK/heldout_small.decoded" "$WORK/heldout_small.lines" || {
  echo "tokenize_corpus: heldout_small does not decode to its text" >&2; exit 1; }
rm -f "$OUT/train.u16.xz"
xz -T"${JOBS:-2}" -6 -c "$WORK/train.u16" > "$OUT/train.u16.xz.tmp" && mv "$OUT/train.u16.xz.tmp" "$OUT/train.u16.xz"
python3 - "$OUT" "$TOK" "$WORK/train.u16" <<'PY'
import array, hashlib, json, os, sys
out, tok, train_raw = sys.argv[1:4]
pieces = [l.split("\t")[0] for l in open(tok + ".vocab", encoding="utf-8")]
ids = {p: i for i, p in enumerate(pieces)}
def count(path):
    a = array.array("H"); a.frombytes(open(path, "rb").read()); return len(a), a.count(ids["<|endoftext|>"])
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
meta = {"vocab_size": len(pieces), "tokenizer_sha256": sha(tok + ".model"),
        "special_ids": {k: ids[k] for k in ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<0x0A>")},
        "splits": {}, "files": {}}
for name, path in (("train", train_raw), ("heldout", f"{out}/heldout.u16"),
                   ("heldout_small", f"{out}/heldout_small.u16"), ("chat_heldout", f"{out}/chat_heldout.u16")):
    n, docs = count(path)
    meta["splits"][name] = {"tokens": n, "documents": docs}
for f in sorted(os.listdir(out)):
    if f != "meta.json":
        meta["files"][f] = {"bytes": os.path.getsize(f"{out}/{f}"), "sha256": sha(f"{out}/{f}")}
json.dump(meta, open(f"{out}/meta.json", "w"), indent=1)
print(json.dumps(meta["splits"]))
PY
du -sh "$OUT"; ls -l "$OUT"
