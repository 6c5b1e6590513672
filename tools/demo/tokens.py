#!/usr/bin/env python3
"""Line plumbing around the sentencepiece command-line tools (standard library only).

spm_encode works line by line and never sees a newline, so documents are cut into lines, encoded,
and joined again with the newline byte token <0x0A> between lines and <|endoftext|> after each
document. The tokenizer is trained with add_dummy_prefix=false and has no piece containing a
newline, so this gives exactly the ids that encoding the whole document at once gives.

    tokens.py lines  OUT.txt IN.jsonl...            every non-empty line (spm_train input)
    tokens.py split  IN.jsonl OUT.lines OUT.counts  all lines, and the number of lines per doc
    tokens.py pack   IDS.txt COUNTS TOKENIZER.vocab OUT.u16 [--shuffle-seed N]
    tokens.py check  TOKENS.u16 TOKENIZER.vocab     prints counts, fails on ids out of range
    tokens.py ids    TOKENS.u16 [MAX]               the ids as text (for coldstream --ids-file)
"""
import array
import json
import random
import sys


def read_vocab(path):
    pieces = [line.split("\t")[0] for line in open(path, encoding="utf-8")]
    ids = {p: i for i, p in enumerate(pieces)}
    for need in ("<0x0A>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"):
        if need not in ids:
            raise SystemExit(f"tokens.py: {path} has no piece {need}")
    return pieces, ids


def cmd_lines(out_path, *inputs):
    n = 0
    with open(out_path, "w", encoding="utf-8") as out:
        for path in inputs:
            for line in open(path, encoding="utf-8"):
                for ln in json.loads(line)["text"].split("\n"):
                    if ln.strip():
                        out.write(ln + "\n")
                        n += 1
    print(f"  {n} lines -> {out_path}")


def cmd_split(in_path, out_lines, out_counts):
    with open(out_lines, "w", encoding="utf-8") as fl, open(out_counts, "w") as fc:
        for line in open(in_path, encoding="utf-8"):
            lines = json.loads(line)["text"].split("\n")
            fl.write("\n".join(lines) + "\n")
            fc.write(f"{len(lines)}\n")


def cmd_pack(ids_path, counts_path, vocab_path, out_path, *rest):
    pieces, ids = read_vocab(vocab_path)
    nl, eot = ids["<0x0A>"], ids["<|endoftext|>"]
    if len(pieces) > 65535:
        raise SystemExit("tokens.py: the vocabulary does not fit uint16")
    seed = int(rest[rest.index("--shuffle-seed") + 1]) if "--shuffle-seed" in rest else None
    counts = [int(x) for x in open(counts_path)]
    docs = []
    with open(ids_path) as f:
        for n in counts:
            toks = []
            for k in range(n):
                line = f.readline()
                if not line:
                    raise SystemExit(f"tokens.py: {ids_path} has fewer lines than {counts_path} "
                                     "says")
                if k:
                    toks.append(nl)
                toks.extend(int(t) for t in line.split())
            toks.append(eot)
            docs.append(toks)
        if f.readline():
            raise SystemExit(f"tokens.py: {ids_path} has more lines than {counts_path} says")
    if seed is not None:
        random.Random(seed).shuffle(docs)
    out = array.array("H")
    for toks in docs:
        out.extend(toks)
    if max(out) >= len(pieces):
        raise SystemExit(f"tokens.py: id {max(out)} is outside the vocabulary")
    if sys.byteorder != "little":
        out.byteswap()
    with open(out_path, "wb") as f:
        out.tofile(f)
    print(f"  {len(docs)} documents, {len(out)} tokens -> {out_path}")


def cmd_check(tokens_path, vocab_path):
    pieces, ids = read_vocab(vocab_path)
    a = array.array("H")
    with open(tokens_path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    if not a or max(a) >= len(pieces):
        raise SystemExit(f"tokens.py: {tokens_path} is empty or has ids outside the vocabulary")
    print(f"  {tokens_path}: {len(a)} tokens, {a.count(ids['<|endoftext|>'])} documents")


def cmd_ids(tokens_path, limit="0"):
    a = array.array("H")
    with open(tokens_path, "rb") as f:
        a.frombytes(f.read())
    if sys.byteorder != "little":
        a.byteswap()
    n = int(limit) or len(a)
    sys.stdout.write(" ".join(map(str, a[:n])) + "\n")


if __name__ == "__main__":
    cmds = {"lines": cmd_lines, "split": cmd_split, "pack": cmd_pack, "check": cmd_check,
            "ids": cmd_ids}
    if len(sys.argv) < 3 or sys.argv[1] not in cmds:
        raise SystemExit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
