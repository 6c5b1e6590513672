#!/usr/bin/env python3
"""Prints the corpus tables of docs/DEMO_MODEL.md (Markdown) from a built corpus.

    corpus_report.py [DEMO_DATA]      (default demo-data)

Reads DEMO_DATA/manifest.tsv (build_corpus.sh), DEMO_DATA/corpus/stats.json (make_splits.py),
DEMO_DATA/corpus/chat_*.jsonl and DEMO_DATA/tokens/meta.json (tokenize_corpus.sh) when present.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sources import SOURCES  # noqa: E402


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else "demo-data"
    versions = {}
    for line in open(os.path.join(data, "manifest.tsv")):
        pkg, ver, arch, size, _sha = line.rstrip("\n").split("\t")
        versions[pkg] = (ver, int(size))
    stats = json.load(open(os.path.join(data, "corpus", "stats.json")))
    print("| source | Debian packages (version) | licence | raw MB | train MB | held-out MB |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for name, pkgs, lic, _kind, _pat, note in SOURCES:
        st = stats["sources"].get(name)
        pv = ", ".join(f"{p} ({versions[p][0]})" for p in pkgs)
        if st is None:
            print(f"| {note} | {pv} | {lic} | - | chat only | - |")
            continue
        print(f"| {note} | {pv} | {lic} | {st['raw_bytes'] / 1e6:.1f} | "
              f"{st['train_bytes'] / 1e6:.1f} | {st['heldout_bytes'] / 1e6:.2f} |")
    t = stats["total"]
    print(f"| **total** | {len(versions)} packages, "
          f"{sum(s for _, s in versions.values()) / 1e6:.0f} MB of .deb | | "
          f"{t['raw_bytes'] / 1e6:.1f} | {t['train_bytes'] / 1e6:.1f} | "
          f"{t['heldout_bytes'] / 1e6:.2f} |")
    print()
    print(f"Documents: {t['train_docs']} train, {t['heldout_docs']} held-out; "
          f"removed as duplicates {t['dedup_bytes_removed'] / 1e6:.1f} MB, "
          f"left out by per-source caps {t['capped_bytes'] / 1e6:.1f} MB; small held-out slice "
          f"{stats['heldout_small_docs']} documents, {stats['heldout_small_bytes'] / 1e3:.0f} KB.")
    for split in ("train", "heldout"):
        path = os.path.join(data, "corpus", f"chat_{split}.jsonl")
        if os.path.exists(path):
            n = size = 0
            for line in open(path, encoding="utf-8"):
                n += 1
                size += len(json.loads(line)["text"].encode("utf-8"))
            print(f"Chat conversations ({split}): {n}, {size / 1e6:.2f} MB.")
    meta_path = os.path.join(data, "tokens", "meta.json")
    if os.path.exists(meta_path):
        meta = json.load(open(meta_path))
        print()
        print("| token file | tokens | documents |")
        print("| --- | ---: | ---: |")
        for name, s in meta["splits"].items():
            print(f"| {name} | {s['tokens']:,} | {s['documents']:,} |")
        sizes = ", ".join(f"{f} {v['bytes'] / 1e6:.1f} MB" for f, v in meta["files"].items())
        print(f"\nShipped files: {sizes}.")


if __name__ == "__main__":
    main()
