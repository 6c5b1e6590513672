#!/usr/bin/env python3
"""Normalises, deduplicates and splits the extracted documents into train and held-out parts.

    make_splits.py TEXT_DIR OUT_DIR [--heldout-permille 10] [--small-bytes 120000]

Reads TEXT_DIR/<source>.jsonl (extract_text.py). Steps, all deterministic:
  1. normalise: NFC, tabs expanded, control characters dropped, trailing spaces stripped,
     runs of blank lines collapsed to one;
  2. split documents longer than 32 KB at paragraph boundaries;
  3. deduplicate paragraphs (exact match after normalisation, paragraphs of 64+ bytes; the first
     occurrence in source-table order wins) and then whole documents; drop documents under
     200 bytes;
  4. cap each source at its byte budget (CAPS_MB below) by keeping documents in hash order;
  5. held-out: documents whose SHA-1(id) falls in the lowest `heldout-permille` / 1000.
Writes OUT_DIR/train.jsonl, heldout.jsonl, heldout_small.jsonl ({"id", "source", "text"}),
heldout.txt and heldout_small.txt (documents each followed by <|endoftext|>: exactly the text
whose tokens tokenize_corpus.sh writes), and stats.json.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sources import SOURCES  # noqa: E402

EOT = "<|endoftext|>"
# Per-source byte budgets (MB of normalised text after deduplication), to keep the corpus
# balanced and the token files small enough to ship to the training machine.
CAPS_MB = {"gcide": 20.0, "linux-doc": 22.0, "vim-help": 6.0, "sqlite-doc": 6.0,
           "foldoc": 6.0, "man-pages": 14.0}
MAX_DOC = 32000
MIN_DOC = 200
MIN_PARA_DEDUP = 64
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u200b\ufeff\u00ad]")
# The control tokens must never appear as text inside a document.
_SPECIAL = re.compile(r"<\|(?:endoftext|im_start|im_end)\|>|</?think>")


def normalise(text):
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = text.replace("\u00a0", " ").replace("\u00b6", "").replace("\f", "\n")
    text = _SPECIAL.sub("", _CTRL.sub("", text))
    lines = [ln.expandtabs(8).rstrip() for ln in text.split("\n")]
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n")


def split_long(doc_id, text):
    if len(text) <= MAX_DOC:
        return [(doc_id, text)]
    parts, cur, size = [], [], 0
    for para in text.split("\n\n"):
        if size and size + len(para) > MAX_DOC:
            parts.append("\n\n".join(cur))
            cur, size = [], 0
        cur.append(para)
        size += len(para) + 2
    if cur:
        parts.append("\n\n".join(cur))
    return [(f"{doc_id}#part{k}", p) for k, p in enumerate(parts)]


def h(s):
    return int(hashlib.sha1(s.encode("utf-8")).hexdigest()[:15], 16)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("text_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--heldout-permille", type=int, default=10)
    ap.add_argument("--small-bytes", type=int, default=120000,
                    help="size of heldout_small.txt, the slice a CPU can evaluate quickly")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    seen_paras, seen_docs = set(), set()
    stats, kept = {}, []
    for name, _pkgs, _lic, kind, _pat, _note in SOURCES:
        if kind == "wordnet":
            continue
        path = os.path.join(a.text_dir, name + ".jsonl")
        if not os.path.exists(path):
            raise SystemExit(f"make_splits: {path} is missing; run extract_text.py")
        st = stats[name] = {"raw_bytes": 0, "docs": 0, "dedup_bytes_removed": 0, "capped_bytes": 0,
                            "train_docs": 0, "train_bytes": 0, "heldout_docs": 0,
                            "heldout_bytes": 0}
        docs = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                st["raw_bytes"] += len(d["text"].encode("utf-8"))
                for pid, ptext in split_long(d["id"], normalise(d["text"])):
                    paras, removed = [], 0
                    for para in ptext.split("\n\n"):
                        key = para.strip()
                        if len(key) >= MIN_PARA_DEDUP:
                            hk = hashlib.sha1(key.encode("utf-8")).digest()
                            if hk in seen_paras:
                                removed += len(para.encode("utf-8"))
                                continue
                            seen_paras.add(hk)
                        paras.append(para)
                    text = "\n\n".join(paras).strip("\n")
                    st["dedup_bytes_removed"] += removed
                    hd = hashlib.sha1(text.encode("utf-8")).digest()
                    if len(text.encode("utf-8")) < MIN_DOC or hd in seen_docs:
                        st["dedup_bytes_removed"] += len(text.encode("utf-8"))
                        continue
                    seen_docs.add(hd)
                    docs.append((pid, text))
        cap = CAPS_MB.get(name)
        if cap is not None:
            docs.sort(key=lambda d: h(d[0]))
            budget, chosen = cap * 1e6, []
            for pid, text in docs:
                n = len(text.encode("utf-8"))
                if budget - n < 0:
                    st["capped_bytes"] += n
                    continue
                budget -= n
                chosen.append((pid, text))
            docs = sorted(chosen)  # back to path order
        for pid, text in docs:
            kept.append((name, pid, text))
        st["docs"] = len(docs)
    train, held = [], []
    for name, pid, text in kept:
        is_held = h(pid) % 1000 < a.heldout_permille
        (held if is_held else train).append((name, pid, text))
        st = stats[name]
        n = len(text.encode("utf-8"))
        if is_held:
            st["heldout_docs"] += 1
            st["heldout_bytes"] += n
        else:
            st["train_docs"] += 1
            st["train_bytes"] += n
    for fname, part in (("train.jsonl", train), ("heldout.jsonl", held)):
        with open(os.path.join(a.out_dir, fname), "w", encoding="utf-8") as f:
            for name, pid, text in part:
                f.write(json.dumps({"id": pid, "source": name, "text": text},
                                   ensure_ascii=False) + "\n")
    # Held-out text in the exact form the token stream has: doc, <|endoftext|>, doc, ...
    with open(os.path.join(a.out_dir, "heldout.txt"), "w", encoding="utf-8") as f:
        f.write("".join(text + EOT for _, _, text in held))
    # A small slice in hash order (a mix of sources) for the CPU runtime's perplexity check.
    small, size = [], 0
    for name, pid, text in sorted(held, key=lambda d: h("small:" + d[1])):
        if size + len(text) > a.small_bytes and small:
            continue
        small.append((pid, text))
        size += len(text)
        if size >= a.small_bytes * 0.95:
            break
    with open(os.path.join(a.out_dir, "heldout_small.txt"), "w", encoding="utf-8") as f:
        f.write("".join(text + EOT for _, text in small))
    with open(os.path.join(a.out_dir, "heldout_small.jsonl"), "w", encoding="utf-8") as f:
        for pid, text in small:
            f.write(json.dumps({"id": pid, "text": text}, ensure_ascii=False) + "\n")
    total = {k: sum(s[k] for s in stats.values()) for k in next(iter(stats.values()))}
    with open(os.path.join(a.out_dir, "stats.json"), "w") as f:
        json.dump({"sources": stats, "total": total,
                   "heldout_small_docs": len(small), "heldout_small_bytes": size}, f, indent=1)
    for name, st in stats.items():
        print(f"  {name:18s} raw {st['raw_bytes'] / 1e6:7.2f} MB  dedup -{st['dedup_bytes_removed'] / 1e6:6.2f}"
              f"  cap -{st['capped_bytes'] / 1e6:6.2f}  train {st['train_bytes'] / 1e6:7.2f} MB"
              f" ({st['train_docs']} docs)  held-out {st['heldout_bytes'] / 1e6:5.2f} MB")
    print(f"  total: train {total['train_bytes'] / 1e6:.2f} MB in {total['train_docs']} documents, "
          f"held-out {total['heldout_bytes'] / 1e6:.2f} MB in {total['heldout_docs']} documents, "
          f"small slice {size / 1e3:.0f} KB in {len(small)} documents")


if __name__ == "__main__":
    main()
