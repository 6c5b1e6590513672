"""Markup to plain text: reStructuredText, POD, AsciiDoc, Vim help and HTML (standard library only).

The goal is readable English for a language model, not a faithful rendering: markup that a reader
would not see is dropped, link targets go, code blocks stay as indented text.
"""
import html
import html.parser
import re

# ---------------------------------------------------------------------------------------------
# reStructuredText (Sphinx sources of the Python and Linux documentation)

_RST_UNDERLINE = re.compile(r"^\s*(?:([=\-~^*#+`:_])\1{2,}|(['\"])\2{3,})\s*$")
_RST_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w:-]+)::\s*(.*)$")
_RST_TARGET = re.compile(r"^\s*\.\.\s+(_[^:]*:|\|[^|]+\|\s+\w+::).*$")
_RST_COMMENT = re.compile(r"^(\s*)\.\.(\s.*)?$")
_RST_ROLE = re.compile(r":[\w.+-]+(?::[\w.+-]+)*:`([^`]+)`")
_RST_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]+>`__?")
_RST_REF = re.compile(r"`([^`]+)`__?")
_RST_LITERAL = re.compile(r"``([^`]+)``")
_RST_STRONG = re.compile(r"\*\*(\S(?:[^*]*\S)?)\*\*")
_RST_EMPH = re.compile(r"(?<![\w*])\*(\S(?:[^*]*\S)?)\*(?![\w*])")
_RST_SUBST = re.compile(r"\|(\w[\w -]*)\|")

# Directives whose whole block is dropped (navigation, indexes, includes, images, raw output).
_RST_DROP = {
    "toctree", "index", "highlight", "module", "currentmodule", "sectionauthor", "moduleauthor",
    "include", "literalinclude", "image", "figure", "contents", "tabularcolumns", "raw",
    "kernel-doc", "kernel-feat", "kernel-abi", "kernel-include", "only", "testsetup",
    "testcleanup", "productionlist", "audit-event", "cssclass", "rst-class", "flat-table",
    "maintainers-include", "kfigure", "kernel-figure", "kernel-render", "ifconfig", "c:namespace",
    "c:namespace-push", "c:namespace-pop", "default-domain", "program", "opcode",
}
_RST_ADMONITION = {
    "note": "Note:", "warning": "Warning:", "seealso": "See also:", "important": "Important:",
    "tip": "Tip:", "caution": "Caution:", "attention": "Attention:", "hint": "Hint:",
    "danger": "Danger:", "impl-detail": "CPython implementation detail:",
}
_RST_VERSION = {"versionadded": "New in version", "versionchanged": "Changed in version",
                "deprecated": "Deprecated since version"}


def rst_inline(s):
    s = _RST_ROLE.sub(lambda m: _role_text(m.group(1)), s)
    s = _RST_LINK.sub(r"\1", s)
    s = _RST_LITERAL.sub(r"`\1`", s)
    s = _RST_REF.sub(r"\1", s)
    s = _RST_STRONG.sub(r"\1", s)
    s = _RST_EMPH.sub(r"\1", s)
    s = _RST_SUBST.sub(r"\1", s)
    s = s.replace("\\ ", "")
    return re.sub(r"\\([*_`|\\])", r"\1", s)  # escaped markup characters


def _role_text(t):
    m = re.match(r"^(.*?)\s*<[^>]*>$", t, re.S)  # "text <target>" shows text
    if m and m.group(1):
        t = m.group(1)
    return t.lstrip("~!")


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def rst_to_text(src):
    lines = src.split("\n")
    out = []
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if _RST_UNDERLINE.match(line) and (not out or out[-1].strip() or i + 1 < n):
            i += 1  # section over/underlines
            continue
        m = _RST_DIRECTIVE.match(line)
        if m:
            ind, name, arg = len(m.group(1)), m.group(2).lower(), m.group(3).strip()
            i += 1
            # Option lines (":maxdepth: 2") right after the directive.
            while i < n and lines[i].strip().startswith(":") and _indent(lines[i]) > ind:
                i += 1
            block_end = i
            while block_end < n and (not lines[block_end].strip() or _indent(lines[block_end]) > ind):
                block_end += 1
            base = name.split(":")[-1]
            if name in _RST_DROP or base in _RST_DROP:
                i = block_end
                continue
            pad = " " * ind
            if base in _RST_ADMONITION:
                out.append(pad + _RST_ADMONITION[base] + (" " + rst_inline(arg) if arg else ""))
            elif base in _RST_VERSION:
                out.append(pad + f"{_RST_VERSION[base]} {rst_inline(arg)}.")
            elif base in ("code-block", "code", "sourcecode", "doctest", "parsed-literal", "math",
                          "container", "rubric", "centered", "topic", "admonition", "glossary",
                          "hlist", "table", "csv-table", "list-table", "epigraph", "highlights",
                          "compound", "line-block", "sidebar", "tab", "versionremoved"):
                if base in ("rubric", "topic", "admonition", "sidebar", "table") and arg:
                    out.append(pad + rst_inline(arg))
            elif arg:  # describe-like directives: function, class, method, data, option, ...
                out.append(pad + rst_inline(arg))
            continue
        if _RST_TARGET.match(line):
            i += 1
            continue
        m = _RST_COMMENT.match(line)
        if m:  # a comment: drop it and its indented continuation
            ind = len(m.group(1))
            i += 1
            while i < n and lines[i].strip() and _indent(lines[i]) > ind:
                i += 1
            continue
        if line.strip() == "::":
            i += 1
            continue
        if line.rstrip().endswith("::"):
            line = line.rstrip()[:-1]
        out.append(rst_inline(line))
        i += 1
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# POD (Perl documentation)

_POD_ENTITIES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/", "quot": '"', "amp": "&",
                 "apos": "'", "nbsp": " "}


def _pod_code(letter, body):
    if letter in "XZ":
        return ""
    if letter == "E":
        if body in _POD_ENTITIES:
            return _POD_ENTITIES[body]
        try:
            return chr(int(body, 16) if body.lower().startswith("0x") else int(body))
        except ValueError:
            return html.unescape(f"&{body};")
    if letter == "L":
        text = body.split("|", 1)[0] if "|" in body else body
        if "|" not in body:
            text = text.replace('/"', ': "').replace("/", ": ")
        return text.strip('"')
    return body


def pod_inline(s):
    # Double-angle forms first (C<< $a <=> $b >>), then single ones, innermost first.
    s = re.sub(r"([A-Z])<{2,}\s+(.*?)\s+>{2,}", lambda m: _pod_code(m.group(1), m.group(2)), s,
               flags=re.S)
    for _ in range(8):
        t = re.sub(r"([BICFSLEXZ])<([^<>]*)>", lambda m: _pod_code(m.group(1), m.group(2)), s)
        if t == s:
            break
        s = t
    return s


def pod_to_text(src):
    out, skip = [], False
    for para in re.split(r"\n\s*\n", src):
        if para.startswith("="):
            cmd, _, rest = para[1:].partition(" ")
            cmd = cmd.strip().split("\n")[0]
            rest = rest.strip()
            if cmd == "cut":
                skip = False
            elif cmd == "begin":
                skip = True
            elif cmd == "end":
                skip = False
            elif cmd in ("head1", "head2", "head3", "head4"):
                out.append(pod_inline(rest))
            elif cmd == "item":
                out.append("* " + pod_inline(rest) if rest not in ("*", "") else "*")
            continue
        if skip:
            continue
        if para[:1] in (" ", "\t"):
            out.append(para)  # verbatim
        else:
            out.append(pod_inline(para))
    return "\n\n".join(out)


# ---------------------------------------------------------------------------------------------
# AsciiDoc (Git documentation) and Vim help

def asciidoc_to_text(src):
    out = []
    for line in src.split("\n"):
        s = line.strip()
        if _RST_UNDERLINE.match(line) or s in ("--", "+", "[verse]", "[listing]") or \
                re.match(r"^(include|ifdef|ifndef|endif|ifeval)::", s) or \
                re.match(r"^\[\[.*\]\]$", s) or re.match(r"^:\w[\w-]*:", s):
            continue
        line = re.sub(r"linkgit:([\w.-]+)\[(\d)\]", r"\1(\2)", line)
        line = re.sub(r"link:[^\[\s]+\[([^\]]*)\]", r"\1", line)
        line = re.sub(r"<<[^,>]+,\s*([^>]+)>>", r"\1", line)
        line = re.sub(r"<<([^>]+)>>", r"\1", line)
        for attr, ch in (("litdd", "--"), ("startsb", "["), ("endsb", "]"), ("caret", "^"),
                         ("tilde", "~"), ("apos", "'"), ("quot", '"'), ("plus", "+"),
                         ("empty", ""), ("nbsp", " ")):
            line = line.replace("{" + attr + "}", ch)
        out.append(line)
    return "\n".join(out)


def vimhelp_to_text(src):
    out = []
    for line in src.split("\n"):
        if re.match(r"^\s*vim:.*:\s*$", line) or re.match(r"^[=-]{20,}\s*$", line):
            continue
        line = re.sub(r"(?<!\S)\*[^\s*|]+\*(?!\S)", "", line)  # *tags*
        line = re.sub(r"\|([^\s|]+)\|", r"\1", line)  # |links|
        line = re.sub(r"\s+[<>]$", "", line)  # example block markers at line ends
        if line.strip() in (">", "<"):
            continue
        out.append(line.rstrip())
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# HTML

_BLOCK = {"p", "div", "section", "article", "main", "br", "hr", "h1", "h2", "h3", "h4", "h5",
          "h6", "ul", "ol", "li", "dl", "dt", "dd", "table", "tr", "pre", "blockquote", "header",
          "footer", "figure", "figcaption", "tbody", "thead", "aside", "details", "summary"}
_SKIP = {"script", "style", "nav", "noscript", "svg", "head", "title", "button", "form", "select",
         "textarea", "math", "template"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source",
         "track", "wbr", "param"}


class _HtmlText(html.parser.HTMLParser):
    """Collects visible text. `root` (tag, attr, value-substring) limits output to the first
    matching element's subtree; `skip_classes` drops elements with one of these classes, ids or
    roles (an entry ending in "-" matches as a prefix)."""

    def __init__(self, root=None, skip_classes=()):
        super().__init__(convert_charrefs=True)
        self.root, self.skip_classes = root, tuple(skip_classes)
        self.stack = []  # (tag, skipping, is_root)
        self.in_root = root is None
        self.root_seen = False
        self.pre = 0
        self.buf = []

    def _skipping(self):
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        skipping = self._skipping() or tag in _SKIP
        tokens = (a.get("class") or "").split() + [a.get("id") or "", a.get("role") or ""]
        if any(t == c or (c.endswith("-") and t.startswith(c))
               for t in tokens for c in self.skip_classes):
            skipping = True
        is_root = False
        if self.root and not self.in_root and not self.root_seen:
            rtag, rattr, rval = self.root
            if tag == rtag and (rattr is None or rval in (a.get(rattr) or "")):
                is_root = self.in_root = self.root_seen = True
        if tag in _VOID:
            if tag in ("br", "hr") and self.in_root and not skipping:
                self.buf.append("\n")
            return
        self.stack.append((tag, skipping, is_root))
        if not self.in_root or skipping:
            return
        if tag == "pre":
            self.pre += 1
        if tag in _BLOCK:
            self.buf.append("\n\n" if tag in ("p", "pre", "h1", "h2", "h3", "h4", "table",
                                              "blockquote", "dl", "ul", "ol") else "\n")
        if tag == "li":
            self.buf.append("- ")
        if tag in ("td", "th"):
            self.buf.append(" | ")

    def handle_endtag(self, tag):
        if tag in _VOID:
            return
        # Pop to the matching tag (tolerates unclosed <p>, <li> and friends).
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag:
                for t, skipping, is_root in self.stack[k:][::-1]:
                    if self.in_root and not skipping:
                        if t == "pre":
                            self.pre = max(0, self.pre - 1)
                        if t in _BLOCK:
                            self.buf.append("\n")
                    if is_root:
                        self.in_root = False
                del self.stack[k:]
                return

    def handle_data(self, data):
        if not self.in_root or self._skipping():
            return
        if self.pre:
            self.buf.append(data)
        else:
            self.buf.append(re.sub(r"\s+", " ", data))

    def text(self):
        return "".join(self.buf)


def html_to_text(src, root=None, skip_classes=()):
    p = _HtmlText(root, skip_classes)
    p.feed(src)
    p.close()
    lines = [ln.rstrip() for ln in p.text().split("\n")]
    # Inline text starts lines with a space after block breaks: trim one level of that.
    lines = [ln[1:] if ln.startswith(" ") and not ln.startswith("  ") else ln for ln in lines]
    return "\n".join(lines)
