#!/usr/bin/env python3
"""Turns the unpacked Debian packages into plain-text documents, one JSON-lines file per source.

    extract_text.py EXTRACT_DIR OUT_DIR [--jobs N] [--only NAME,...]

EXTRACT_DIR holds one folder per package (dpkg-deb -x); OUT_DIR/<source>.jsonl gets one line per
document: {"id": "<source>/<path or key>", "text": "..."}. Standard library only (plus groff for
man pages and the bible-kjv program for the KJV text, both from Debian).
"""
import argparse
import concurrent.futures
import glob
import gzip
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import markup  # noqa: E402
from sources import SOURCES  # noqa: E402


def read_text(path):
    raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def expand_braces(pattern):
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    out = []
    for alt in m.group(1).split(","):
        out += expand_braces(pattern[:m.start()] + alt + pattern[m.end():])
    return out


def find_files(pkg_dirs, patterns):
    files = []
    for d in pkg_dirs:
        for pat in patterns:
            for p in expand_braces(pat):
                files += glob.glob(os.path.join(d, p), recursive=True)
    # Symbolic links (man page aliases, fortune links) would only repeat their targets.
    return sorted(set(f for f in files if os.path.isfile(f) and not os.path.islink(f)))


def rel_id(name, path, pkg_dirs):
    for d in pkg_dirs:
        if path.startswith(d + "/"):
            return f"{name}/{path[len(d) + 1:]}"
    return f"{name}/{os.path.basename(path)}"


# --- per-format extractors: each yields (key, text) ------------------------------------------

def ex_rst(files, name):
    for f in files:
        if "/translations/" in f:  # kernel docs in other languages
            continue
        yield f, markup.rst_to_text(read_text(f))


def ex_pod(files, name):
    for f in files:
        yield f, markup.pod_to_text(read_text(f))


def ex_asciidoc(files, name):
    for f in files:
        yield f, markup.asciidoc_to_text(read_text(f))


def ex_vimhelp(files, name):
    for f in files:
        if os.path.basename(f).startswith("version"):  # patch lists: little prose
            continue
        yield f, markup.vimhelp_to_text(read_text(f))


_HTML_ROOTS = {
    "django-doc": (("div", "id", "yui-main"), ("nav", "doc-toc", "breadcrumbs", "headerlink")),
    "postgresql-doc": (None, ("navheader", "navfooter", "toc", "headerlink")),
    "rust-books": (("main", None, None), ("nav-wrapper", "nav-chapters", "sidebar")),
    "sqlite-doc": (None, ("nosearch", "menu", "searchmenu", "tagline", "toc")),
    "debian-handbook": (None, ("docnav", "navigation", "breadcrumbs", "toc")),
}


def ex_html(files, name):
    root, skip = _HTML_ROOTS.get(name, (None, ()))
    for f in files:
        base = os.path.basename(f)
        if base in ("print.html", "toc.html", "404.html", "search.html", "genindex.html",
                    "py-modindex.html", "index.html", "SUMMARY.html") or "/2018-edition/" in f \
                or "/first-edition/" in f or "/second-edition/" in f or "/_" in f:
            continue
        if name == "debian-handbook" and base in ("sect.html",):
            continue
        yield f, markup.html_to_text(read_text(f), root, skip)


def ex_plain(files, name):
    for f in files:
        if re.search(r"\.(pdf|ps|html)(\.gz)?$", f) or os.path.basename(f).startswith("changelog"):
            continue
        yield f, read_text(f)


def _groff(path):
    src = read_text(path)
    if re.match(r"^\.so\s", src.lstrip()) or len(src) < 200:
        return path, None  # a link to another page
    try:
        r = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", "-rHY=0", "-rLL=1000n", "-rcR=1",
                            "-Ww"], input=src.encode(), capture_output=True,
                           timeout=120)
    except subprocess.TimeoutExpired:
        return path, None
    text = r.stdout.decode("utf-8", "replace")
    lines = text.strip("\n").split("\n")
    # Drop the page header and footer lines ("LS(1)  User Commands  LS(1)").
    if lines and re.search(r"\(\d\w*\)\s*$", lines[0]):
        lines = lines[1:]
    if lines and re.search(r"\(\d\w*\)\s*$", lines[-1]):
        lines = lines[:-1]
    return path, "\n".join(lines)


def ex_roff(files, name, jobs=2):
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for f, text in pool.map(_groff, files):
            if text:
                yield f, text


def ex_fortune(files, name):
    seen = set()
    for f in files:
        if f.endswith(".dat") or f.endswith(".u8") or os.path.islink(f):
            continue
        cookies = []
        for c in re.split(r"\n%\n", read_text(f).replace("\r", "")):
            c = c.strip("\n")
            if c.strip() and c not in seen:
                seen.add(c)
                cookies.append(c)
        # Documents of 50 cookies, separated by blank lines.
        for k in range(0, len(cookies), 50):
            yield f"{f}#{k // 50}", "\n\n".join(cookies[k:k + 50])


BIBLE_BOOKS = (
    "Ge Genesis|Exo Exodus|Lev Leviticus|Num Numbers|Deu Deuteronomy|Josh Joshua|Jdgs Judges|"
    "Ruth Ruth|1Sm 1 Samuel|2Sm 2 Samuel|1Ki 1 Kings|2Ki 2 Kings|1Chr 1 Chronicles|"
    "2Chr 2 Chronicles|Ezra Ezra|Neh Nehemiah|Est Esther|Job Job|Psa Psalms|Prv Proverbs|"
    "Eccl Ecclesiastes|SSol Song of Solomon|Isa Isaiah|Jer Jeremiah|Lam Lamentations|"
    "Eze Ezekiel|Dan Daniel|Hos Hosea|Joel Joel|Amos Amos|Obad Obadiah|Jonah Jonah|Mic Micah|"
    "Nahum Nahum|Hab Habakkuk|Zep Zephaniah|Hag Haggai|Zec Zechariah|Mal Malachi|Mat Matthew|"
    "Mark Mark|Luke Luke|John John|Acts Acts|Rom Romans|1Cor 1 Corinthians|2Cor 2 Corinthians|"
    "Gal Galatians|Eph Ephesians|Phi Philippians|Col Colossians|1Th 1 Thessalonians|"
    "2Th 2 Thessalonians|1Tim 1 Timothy|2Tim 2 Timothy|Titus Titus|Phmn Philemon|Heb Hebrews|"
    "Jas James|1Pet 1 Peter|2Pet 2 Peter|1Jn 1 John|2Jn 2 John|3Jn 3 John|Jude Jude|"
    "Rev Revelation")
BIBLE_NAMES = dict(b.split(" ", 1) for b in BIBLE_BOOKS.split("|"))


def ex_bible(files, name, extract_dir=None):
    prog = os.path.join(extract_dir, "bible-kjv", "usr", "bin", "bible")
    data_dir = os.path.dirname(files[0])
    r = subprocess.run([prog, "-p", data_dir, "-f", "Gen1:1-Rev22:21"], capture_output=True,
                       timeout=300, check=True)
    chapters = {}
    for line in r.stdout.decode("utf-8", "replace").split("\n"):
        m = re.match(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$", line)
        if not m:
            continue
        book = BIBLE_NAMES.get(m.group(1))
        if book is None:
            raise SystemExit(f"extract_text: unknown KJV book abbreviation '{m.group(1)}'")
        key = (book, int(m.group(2)))
        chapters.setdefault(key, []).append(f"{m.group(3)} {m.group(4).strip()}")
    if len(chapters) != 1189:
        raise SystemExit(f"extract_text: expected 1189 KJV chapters, got {len(chapters)}")
    for (book, ch), verses in chapters.items():
        yield f"kjv/{book}/{ch}", f"{book} {ch}\n\n" + "\n".join(verses)


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64num(s):
    v = 0
    for c in s:
        v = v * 64 + _B64.index(c)
    return v


def dict_entries(base):
    """(headword, text) of a dictd database (base.index + base.dict.dz), in file order."""
    data = gzip.open(base + ".dict.dz").read()  # offsets count bytes
    spans = {}
    for line in open(base + ".index", encoding="utf-8", errors="replace"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
            continue
        off, ln = _b64num(parts[1]), _b64num(parts[2])
        spans.setdefault((off, ln), parts[0])
    for (off, ln), head in sorted(spans.items()):
        yield head, data[off:off + ln].decode("utf-8", "replace")


def clean_dict_entry(name, text):
    if name == "gcide":
        text = re.sub(r"(?m)^\s*\[[^\]\n]*(Webster|PJC|WordNet|Century|RN|Johnson|Nuttall)[^\]\n]*\]\s*$\n?",
                      "", text)
        text = re.sub(r"\s*\\[^\\\n]{1,80}\\", "", text)  # pronunciation \Ab*di"ca*tion\
        first, nl, rest = text.partition("\n")  # pronunciation ([add]mz"d[=e]d`) on line 1
        text = re.sub(r"\s*\((?=[^()\n]*[\[`\"])[^()\n]{1,60}\)", "", first) + nl + rest
    if name in ("foldoc", "jargon", "gcide", "devil"):
        text = re.sub(r"\{([^{}\n]*)\}", r"\1", text)  # {cross references}
    return text.strip("\n")


def ex_dict(files, name):
    base = files[0]
    chunk, size, k = [], 0, 0
    for head, text in dict_entries(base):
        t = clean_dict_entry(name, text)
        if not t.strip():
            continue
        chunk.append(t)
        size += len(t)
        if size > 8000:
            yield f"{name}#{k}", "\n\n".join(chunk)
            chunk, size, k = [], 0, k + 1
    if chunk:
        yield f"{name}#{k}", "\n\n".join(chunk)


EXTRACTORS = {"rst": ex_rst, "pod": ex_pod, "asciidoc": ex_asciidoc, "vimhelp": ex_vimhelp,
              "html": ex_html, "plain": ex_plain, "roff": ex_roff, "fortune": ex_fortune,
              "bible": ex_bible, "dict": ex_dict}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("extract_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated source names")
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    os.makedirs(a.out_dir, exist_ok=True)
    for name, pkgs, _lic, kind, patterns, _note in SOURCES:
        if only and name not in only:
            continue
        if kind == "wordnet":
            continue  # read directly by make_chat.py
        pkg_dirs = [os.path.join(a.extract_dir, p) for p in pkgs]
        for d in pkg_dirs:
            if not os.path.isdir(d):
                raise SystemExit(f"extract_text: {d} is missing; run build_corpus.sh first")
        if kind in ("dict",):
            files = [os.path.join(pkg_dirs[0], patterns[0])]
            if not os.path.exists(files[0] + ".index"):
                raise SystemExit(f"extract_text: {files[0]}.index is missing")
        else:
            files = find_files(pkg_dirs, patterns)
        if not files:
            raise SystemExit(f"extract_text: source {name}: no files match {patterns}")
        fn = EXTRACTORS[kind]
        kwargs = {"jobs": a.jobs} if kind == "roff" else {}
        if kind == "bible":
            kwargs = {"extract_dir": a.extract_dir}
        tmp = os.path.join(a.out_dir, name + ".jsonl.tmp")
        n_docs = n_bytes = 0
        with open(tmp, "w", encoding="utf-8") as out:
            for key, text in fn(files, name, **kwargs):
                doc_id = rel_id(name, key, pkg_dirs) if any(key.startswith(d + "/")
                                                             for d in pkg_dirs) else f"{name}/{key}"
                out.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False) + "\n")
                n_docs += 1
                n_bytes += len(text.encode("utf-8"))
        os.replace(tmp, os.path.join(a.out_dir, name + ".jsonl"))
        print(f"  {name:18s} {len(files):6d} files -> {n_docs:6d} documents, "
              f"{n_bytes / 1e6:7.2f} MB", flush=True)


if __name__ == "__main__":
    main()
