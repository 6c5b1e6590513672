"""The Debian packages the demo corpus is built from: one table, read by every corpus script.

Each source names the packages to download, the licence (from the package's copyright file), the
extractor that turns the unpacked files into plain-text documents (extract_text.py), and where
in the package the text lives. Only packages from Debian main with DFSG-free licences.
"""

# name: (packages, licence, extractor, globs or argument, note)
SOURCES = [
    ("linux-doc", ["linux-doc-6.1"], "GPL-2.0", "rst",
     ["usr/share/doc/linux-doc-6.1/html/_sources/**/*.rst.txt"],
     "Linux kernel documentation (reStructuredText sources; translations/ excluded)"),
    ("python-doc", ["python3.11-doc"], "PSF-2.0", "rst",
     ["usr/share/doc/python3.11/html/_sources/**/*.rst.txt"],
     "Python 3.11 documentation (reStructuredText sources)"),
    ("perl-doc", ["perl-doc"], "GPL-1+ or Artistic", "pod",
     ["usr/share/perl/*/pod/*.pod"], "Perl manual (POD)"),
    ("postgresql-doc", ["postgresql-doc-15"], "PostgreSQL", "html",
     ["usr/share/doc/postgresql-doc-15/html/*.html"], "PostgreSQL 15 manual (HTML)"),
    ("django-doc", ["python-django-doc"], "BSD-3-Clause", "html",
     ["usr/share/doc/python-django-doc/html/**/*.html"], "Django 3.2 documentation (HTML)"),
    ("rust-books", ["rust-doc"], "MIT or Apache-2.0", "html",
     ["usr/share/doc/rust-doc/html/{book,reference,nomicon,rust-by-example,edition-guide,"
      "embedded-book,rustc,rustdoc}/**/*.html"],
     "The Rust book, reference, nomicon, Rust by Example and other guides (HTML)"),
    ("sqlite-doc", ["sqlite3-doc"], "public-domain", "html",
     ["usr/share/doc/sqlite3/**/*.html"], "SQLite documentation (HTML)"),
    ("git-doc", ["git-doc"], "GPL-2.0", "asciidoc",
     ["usr/share/doc/git-doc/*.txt", "usr/share/doc/git-doc/howto/*.txt"],
     "Git manual pages and guides (AsciiDoc sources)"),
    ("vim-help", ["vim-runtime"], "Vim / OPL-1+", "vimhelp",
     ["usr/share/vim/vim*/doc/*.txt"], "Vim help files"),
    ("man-pages", ["manpages", "manpages-dev"], "GPL-2+, BSD and other free licences", "roff",
     ["usr/share/man/man*/*.gz"], "Linux man-pages project (sections 1-8), rendered with groff"),
    ("debian-handbook", ["debian-handbook"], "GPL-2.0+ or CC-BY-SA-3.0", "html",
     ["usr/share/doc/debian-handbook/html/en-US/*.html"], "The Debian Administrator's Handbook "
     "(English)"),
    ("debian-reference", ["debian-reference-en"], "GPL-2+", "plain",
     ["usr/share/debian-reference/debian-reference.en.txt.gz"], "Debian Reference (English)"),
    ("debian-faq", ["debian-faq"], "GPL-2+", "plain",
     ["usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"], "The Debian GNU/Linux FAQ"),
    ("doc-debian", ["doc-debian"], "GPL-2+ / DFSG texts", "plain",
     ["usr/share/doc/debian/*.txt", "usr/share/doc/debian/*.txt.gz",
      "usr/share/doc/debian/*.gz"], "Debian project documents (social contract, bug reporting)"),
    ("fortunes", ["fortunes", "fortunes-min"], "BSD-3-Clause and others (see package)",
     "fortune", ["usr/share/games/fortunes/*"], "Fortune cookies (the inoffensive set)"),
    ("kjv-bible", ["bible-kjv", "bible-kjv-text"], "public-domain text (package GPL-2+)", "bible",
     ["usr/lib/bible.data"], "King James Version of the Bible"),
    ("gcide", ["dict-gcide"], "GPL-3+", "dict", ["usr/share/dictd/gcide"],
     "GNU Collaborative International Dictionary of English (Webster 1913 and additions)"),
    ("jargon", ["dict-jargon"], "public-domain", "dict", ["usr/share/dictd/jargon"],
     "The Jargon File 4.4.7"),
    ("foldoc", ["dict-foldoc"], "GFDL-1.1+ (no invariant sections)", "dict",
     ["usr/share/dictd/foldoc"], "Free On-line Dictionary of Computing"),
    ("devil", ["dict-devil"], "public-domain", "dict", ["usr/share/dictd/devil"],
     "Ambrose Bierce, The Devil's Dictionary"),
    # WordNet is used only for the chat examples ("what does the word X mean?"), not the corpus.
    ("wordnet", ["dict-wn"], "WordNet-3.0 (BSD-like)", "wordnet", ["usr/share/dictd/wn"],
     "WordNet 3.0 (chat examples only)"),
]


def packages():
    """Every package, in table order, without repeats."""
    seen, out = set(), []
    for _, pkgs, *_ in SOURCES:
        for p in pkgs:
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out
