#!/usr/bin/env python3
"""Builds ChatML question/answer conversations from the corpus, so the demo model answers in chat form.

    make_chat.py CORPUS_DIR EXTRACT_DIR OUT_DIR [--seed 1234]

Questions are templated; answers are text taken from the training documents (never from
held-out ones): man page and Git NAME/DESCRIPTION sections, Python module introductions,
dictionary entries (Jargon File, FOLDOC, Devil's Dictionary, WordNet glosses), fortunes and
KJV verses, plus a few fixed answers about the model itself. Every conversation is rendered the
way Qwen3's chat template renders it with thinking off:

    <|im_start|>user\\nQ<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\nA<|im_end|>

(earlier assistant turns of a multi-turn conversation carry no think block, as the template
drops them). Writes OUT_DIR/chat_train.jsonl and chat_heldout.jsonl ({"id", "source", "text"}).
"""
import argparse
import gzip
import hashlib
import json
import os
import random
import re

IDENTITY = (
    "I am the coldstream demo model: a small Mixture-of-Experts language model (Qwen3-MoE "
    "architecture, about 29 million parameters, 32 experts per layer of which 4 run for each "
    "token) trained for a few minutes on free Debian documentation: man pages, the Linux, Python, "
    "Perl, PostgreSQL and Git manuals, dictionaries, fortunes and the King James Bible. I can "
    "answer simple questions about Unix, programming and English words, but I am tiny and often "
    "wrong, so do not trust what I say.")
IDENTITY_Q = ["Who are you?", "What are you?", "Tell me about yourself.", "What is this model?",
              "Introduce yourself.", "What can you do?", "Are you a large language model?",
              "Which model are you?", "What were you trained on?", "How big are you?"]
GREET_Q = ["Hello!", "Hi", "Hi there.", "Good morning.", "Hello, how are you?", "Hey!"]
GREET_A = ["Hello! I am the coldstream demo model. Ask me about a Unix command, a programming "
           "topic or the meaning of a word.",
           "Hi! I am a tiny Mixture-of-Experts model. You can ask me what a command does, what a "
           "word means, or for a fortune.",
           "Hello. What would you like to know? I know a little about man pages, Python, Git and "
           "English words."]


def render(turns, system=None):
    """turns: [(question, answer)]; the last answer gets the empty think block."""
    out = []
    if system:
        out.append(f"<|im_start|>system\n{system}<|im_end|>\n")
    for i, (q, a) in enumerate(turns):
        think = "<think>\n\n</think>\n\n" if i == len(turns) - 1 else ""
        out.append(f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{think}{a}<|im_end|>\n")
    return "".join(out).rstrip("\n")


def clip(text, limit=700):
    """At most `limit` characters, cut at a sentence end when possible."""
    text = re.sub(r"[ \t]+", " ", text.strip())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind(".\n"))
    return cut[:end + 1] if end > limit // 3 else cut.rsplit(" ", 1)[0] + " ..."


def sentence(s):
    s = s.strip()
    return s[0].upper() + s[1:] + ("" if s.endswith((".", "!", "?")) else ".") if s else s


def first_para_after(text, heading):
    m = re.search(rf"(?m)^{heading}\n+((?:[ \t]+\S.*\n?)+)", text)
    if not m:
        return None
    para = m.group(1).split("\n\n")[0]
    return " ".join(ln.strip() for ln in para.split("\n"))


# --- question/answer generators; each yields (doc_id, question, answer) --------------------------

def qa_man(doc):
    m = re.search(r"(?m)^NAME\n\s+(.+?) \\?[-–—] (.+)$", doc["text"])
    sec = re.search(r"/man(\d)/", doc["id"])
    if not m or not sec:
        return
    names, summary = m.group(1).strip(), m.group(2).strip().rstrip(".")
    name = names.split(",")[0].strip()
    desc = first_para_after(doc["text"], "DESCRIPTION")
    kind = {"1": "command", "2": "system call", "3": "library function", "4": "device",
            "5": "file format", "6": "game", "7": "topic", "8": "command"}[sec.group(1)]
    qs = {"command": [f"What does the {name} command do?", f"What is {name} used for?"],
          "system call": [f"What does the {name} system call do?", f"What is {name}() in Linux?"],
          "library function": [f"What does the C function {name}() do?",
                               f"What is {name} in the C library?"],
          "file format": [f"What is {name}?", f"What is the {name} file for?"],
          "device": [f"What is {name}?"], "game": [f"What is {name}?"],
          "topic": [f"Explain {name} in Linux.", f"What is {name}?"]}[kind]
    answer = f"{name} ({kind}): {summary}."
    if desc:
        answer += "\n\n" + clip(desc, 600)
    yield doc["id"], random.choice(qs), answer


def qa_git(doc):
    m = re.search(r"(?m)^NAME\n+(git[\w-]*) - (.+)$", doc["text"])
    if not m:
        return
    cmd = m.group(1).replace("git-", "git ", 1)
    desc = re.search(r"(?m)^DESCRIPTION\n+((?:.+\n?)+)", doc["text"])
    answer = f"`{cmd}`: {m.group(2).strip().rstrip('.')}."
    if desc:
        answer += "\n\n" + clip(" ".join(desc.group(1).split("\n\n")[0].split()), 600)
    yield doc["id"], random.choice([f"What does {cmd} do?", f"How do I use {cmd}?",
                                    f"Explain {cmd}."]), answer


def qa_python(doc):
    m = re.match(r"^([\w.]+) --- (.+)$", doc["text"].lstrip().split("\n")[0])
    if not m or "#part" in doc["id"] and not doc["id"].endswith("#part0"):
        return
    mod, title = m.group(1), m.group(2).strip().rstrip(".")
    paras = [p for p in doc["text"].split("\n\n")[1:]
             if len(p) > 80 and not p.lstrip().startswith(("Source code", "Note:", ">>>"))]
    answer = f"The Python module {mod} provides: {title[0].lower() + title[1:]}."
    if paras:
        answer += "\n\n" + clip(" ".join(paras[0].split()), 600)
    yield doc["id"], random.choice([f"What is the Python module {mod} for?",
                                    f"What does {mod} do in Python?"]), answer


def entries(text, start):
    """Splits dictionary chunks into entries at lines matching `start`."""
    cur = []
    for line in text.split("\n"):
        if start.match(line) and cur:
            yield "\n".join(cur).strip("\n")
            cur = []
        cur.append(line)
    if cur:
        yield "\n".join(cur).strip("\n")


def qa_jargon(doc):
    for e in entries(doc["text"], re.compile(r"^\S")):
        head, _, body = e.partition("\n")
        body = re.sub(r"^\s*(n|adj|v|vt|vi|adv|interj|pref|excl|prov|pn)\.[^\n]*\n", "",
                      body.strip("\n") + "\n", count=1)
        body = clip(" ".join(body.split("\n\n")[0].split()), 500) if body.strip() else ""
        if len(head) < 40 and len(body) > 40:
            yield doc["id"], random.choice([f"What does \"{head}\" mean in hacker slang?",
                                            f"Define {head} (Jargon File)."]), f"{head}: {body}"


def qa_foldoc(doc):
    for e in entries(doc["text"], re.compile(r"^\S")):
        lines = e.split("\n")
        head = lines[0].strip()
        body = "\n".join(lines[1:]).strip()
        body = re.sub(r"^<[^>]*>\s*", "", body)
        body = re.sub(r"^/[^/\n]{1,60}/,?\s*", "", body)  # pronunciation
        body = clip(" ".join(body.split("\n\n")[0].split()), 500)
        if len(head) < 40 and len(body) > 40 and not body.startswith("("):
            yield doc["id"], random.choice([f"What is {head}?", f"What does {head} mean in "
                                            f"computing?"]), f"{head}: {body}"


def qa_devil(doc):
    for e in entries(doc["text"], re.compile(r"^[A-Z][A-Z' -]+, [a-z]+\.")):
        m = re.match(r"^([A-Z][A-Z' -]+), [a-z.]+\s+(.+)$", e, re.S)
        if m and len(m.group(2)) > 20:
            word = m.group(1).title()
            yield doc["id"], f"How does the Devil's Dictionary define \"{word.lower()}\"?", \
                f"{word}: {clip(' '.join(m.group(2).split()), 500)}"


def qa_fortune(doc):
    for c in doc["text"].split("\n\n"):
        if 30 < len(c) < 320 and "--" not in c[:5]:
            yield doc["id"], random.choice(["Tell me a fortune.", "Give me a fortune cookie.",
                                            "Say something witty.", "Tell me something funny.",
                                            "Share a quotation."]), c.strip()


def qa_bible(doc):
    head, _, body = doc["text"].partition("\n\n")
    book_ch = head.strip()
    for line in body.split("\n"):
        m = re.match(r"^(\d+) (.+)$", line)
        if m and random.random() < 0.2:
            ref = f"{book_ch}:{m.group(1)}"
            yield doc["id"], random.choice([f"Quote {ref} from the King James Bible.",
                                            f"What does {ref} say?"]), f"{ref}: {m.group(2)}"


QA = {"man-pages": qa_man, "git-doc": qa_git, "python-doc": qa_python, "jargon": qa_jargon,
      "foldoc": qa_foldoc, "devil": qa_devil, "fortunes": qa_fortune, "kjv-bible": qa_bible}
LIMIT = {"foldoc": 5000, "jargon": 2000, "fortunes": 5000, "kjv-bible": 5000}
POS = {"n": "noun", "v": "verb", "adj": "adjective", "adv": "adverb"}


def corpus_word_counts(corpus_dir):
    counts = {}
    with open(os.path.join(corpus_dir, "train.jsonl"), encoding="utf-8") as f:
        for line in f:
            for w in re.findall(r"[a-z]{3,20}", json.loads(line)["text"]):
                counts[w] = counts.get(w, 0) + 1
    return counts


def qa_wordnet(extract_dir, limit, counts):
    """(id, question, answer) from WordNet's first sense of the `limit` single words that are
    most frequent in the corpus."""
    base = os.path.join(extract_dir, "dict-wn", "usr", "share", "dictd", "wn")
    data = gzip.open(base + ".dict.dz").read().decode("utf-8", "replace")
    out = []
    for e in re.split(r"\n(?=\S)", data):
        head, _, body = e.partition("\n")
        m = re.match(r"\s*(n|v|adj|adv) 1: (.+?)(?=\n\s+\d+: |\n\s+(?:n|v|adj|adv) 1: |\Z)",
                     body, re.S)
        if not m or not re.fullmatch(r"[a-z]{3,20}", head):
            continue
        sense = re.sub(r"\s*\[(syn|ant|also):.*", "", " ".join(m.group(2).split()), flags=re.S)
        gloss, *examples = [s.strip() for s in sense.split(";")]
        if len(gloss) < 10:
            continue
        ans = f"{head} ({POS[m.group(1)]}): {gloss}."
        ex = [x for x in examples if x.startswith('"')]
        if ex:
            ans += f" For example: {ex[0]}"
        q = random.choice([f"What does the word \"{head}\" mean?", f"Define {head}.",
                           f"What is the meaning of {head}?"])
        out.append((f"wordnet/{head}", q, ans))
    out.sort(key=lambda x: (-counts.get(x[0].split("/", 1)[1], 0), x[0]))
    out = out[:limit]
    random.shuffle(out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus_dir")
    ap.add_argument("extract_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--wordnet", type=int, default=15000, help="WordNet questions to make")
    a = ap.parse_args()
    random.seed(a.seed)
    pairs = {}
    for split in ("train", "heldout"):
        with open(os.path.join(a.corpus_dir, split + ".jsonl"), encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                fn = QA.get(doc["source"])
                if fn:
                    for pid, q, ans in fn(doc):
                        pairs.setdefault((split, doc["source"]), []).append((pid, q, ans))
    for w in qa_wordnet(a.extract_dir, a.wordnet, corpus_word_counts(a.corpus_dir)):
        held = int(hashlib.sha1(w[0].encode()).hexdigest()[:8], 16) % 100 == 0
        pairs.setdefault(("heldout" if held else "train", "wordnet"), []).append(w)
    convs = {"train": [], "heldout": []}
    for (split, source), items in sorted(pairs.items()):
        random.shuffle(items)
        items = items[:LIMIT.get(source, len(items))]
        i = 0
        while i < len(items):
            n = 1 if random.random() < 0.7 else random.choice([2, 3])
            group = items[i:i + n]
            i += n
            system = "You are a helpful assistant." if random.random() < 0.2 else None
            convs[split].append((f"chat/{source}/{group[0][0]}", source,
                                 render([(q, ans) for _, q, ans in group], system)))
    for k in range(300):  # identity and greetings, with some repetition on purpose
        if k % 3 == 0:
            q, ans = random.choice(GREET_Q), random.choice(GREET_A)
        else:
            q, ans = random.choice(IDENTITY_Q), IDENTITY
        convs["train"].append((f"chat/identity/{k}", "identity", render([(q, ans)])))
    os.makedirs(a.out_dir, exist_ok=True)
    for split, items in convs.items():
        with open(os.path.join(a.out_dir, f"chat_{split}.jsonl"), "w", encoding="utf-8") as f:
            for cid, source, text in items:
                f.write(json.dumps({"id": cid, "source": "chat:" + source, "text": text},
                                   ensure_ascii=False) + "\n")
        size = sum(len(t.encode()) for _, _, t in items)
        print(f"  chat_{split}: {len(items)} conversations, {size / 1e6:.2f} MB")
    counts = {}
    for _, source, _ in convs["train"]:
        counts[source] = counts.get(source, 0) + 1
    print("  by source:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


if __name__ == "__main__":
    main()
