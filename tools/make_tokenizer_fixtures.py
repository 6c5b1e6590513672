#!/usr/bin/env python3
"""Reference data for the tokenizer and chat-template tests, made with Hugging Face libraries.

Run on a machine with transformers and tokenizers (the GPU host has both; no GPU is used):

    python3 tools/make_tokenizer_fixtures.py VOCAB_DIR OUT_DIR

VOCAB_DIR holds the real Qwen3 tokenizer.json and tokenizer_config.json (scripts/fetch-test-data.sh
puts them in build/testdata/qwen3-tokenizer). OUT_DIR is normally tests/fixtures/tokenizer. Inputs
are committed beside this script's outputs:
    tests/fixtures/tokenizer/corpus.json     texts (and raw, possibly invalid, UTF-8 bytes)
    tests/fixtures/chat/conversations.json   conversations
It writes:
    OUT_DIR/qwen3_ids.json        {"versions": ..., "ids": {entry name: [token ids]}} from
                                  tokenizers.Tokenizer.from_file(tokenizer.json).encode(text,
                                  add_special_tokens=False); raw bytes are decoded first with
                                  bytes.decode("utf-8", errors="replace")
    OUT_DIR/qwen3_templates.json  {"versions": ..., "rendered": {"name|thinking": text}} from
                                  AutoTokenizer(VOCAB_DIR).apply_chat_template(messages,
                                  tokenize=False, add_generation_prompt=..., enable_thinking=...)
    OUT_DIR/mixtral_templates.json  the same with Mixtral-8x7B-Instruct-v0.1's chat template
                                  (MIXTRAL_TEMPLATE below) and bos "<s>", eos "</s>"; a
                                  conversation the template refuses records "ERROR: <message>"
    OUT_DIR/qwen3_template_ids.json  {"name|thinking": ids of the rendered Qwen3 prompt}
    OUT_DIR/make_tokenizer_fixtures.log  versions and counts

--jinja-only renders the templates with plain jinja2 configured as transformers configures it
(for checking on a machine without transformers; the tests want the transformers output).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# mistralai/Mixtral-8x7B-Instruct-v0.1, tokenizer_config.json "chat_template" (the 2024 revision
# with system-message support).
MIXTRAL_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content'] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n"
    "    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n"
    "\n"
    "{{- bos_token }}\n"
    "{%- for message in loop_messages %}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}\n"
    "    {%- endif %}\n"
    "    {%- if message['role'] == 'user' %}\n"
    "        {%- if loop.first and system_message is defined %}\n"
    "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
    "        {%- else %}\n"
    "            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
    "        {%- endif %}\n"
    "    {%- elif message['role'] == 'assistant' %}\n"
    "        {{- ' ' + message['content'] + eos_token}}\n"
    "    {%- else %}\n"
    "        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
)


def corpus_texts(path):
    entries = json.load(open(path, encoding="utf-8"))["entries"]
    out = []
    for e in entries:
        if "bytes_hex" in e:
            text = bytes.fromhex(e["bytes_hex"]).decode("utf-8", errors="replace")
        else:
            text = e["text"] * e.get("repeat", 1)
        out.append((e["name"], text))
    return out


def jinja_renderer():
    """Plain jinja2 set up as transformers does (trim_blocks, lstrip_blocks, raise_exception)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, **kw: json.dumps(x, ensure_ascii=False, **kw)
    env.globals["raise_exception"] = raise_exception

    def render(template, messages, **kwargs):
        return env.from_string(template).render(messages=messages, **kwargs)

    return render


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("vocab_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--corpus", default=os.path.join(ROOT, "tests/fixtures/tokenizer/corpus.json"))
    ap.add_argument("--conversations",
                    default=os.path.join(ROOT, "tests/fixtures/chat/conversations.json"))
    ap.add_argument("--jinja-only", action="store_true",
                    help="render templates with jinja2 only (no transformers/tokenizers)")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    log = []
    versions = {}
    convs = json.load(open(args.conversations, encoding="utf-8"))["conversations"]
    qwen_cfg = json.load(open(os.path.join(args.vocab_dir, "tokenizer_config.json"), encoding="utf-8"))

    def dump(name, obj):
        path = os.path.join(args.out_dir, name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=0, sort_keys=True)
            f.write("\n")
        log.append(f"wrote {path}")

    if args.jinja_only:
        import jinja2
        versions["jinja2"] = jinja2.__version__
        render = jinja_renderer()
        qwen = lambda m, gen, th: render(qwen_cfg["chat_template"], m, add_generation_prompt=gen,
                                         enable_thinking=th)
        mixtral = lambda m: render(MIXTRAL_TEMPLATE, m, add_generation_prompt=True,
                                   bos_token="<s>", eos_token="</s>")
        hf_tok = None
    else:
        import tokenizers
        import transformers
        from transformers import AutoTokenizer
        versions["tokenizers"] = tokenizers.__version__
        versions["transformers"] = transformers.__version__
        hf_tok = tokenizers.Tokenizer.from_file(os.path.join(args.vocab_dir, "tokenizer.json"))
        auto = AutoTokenizer.from_pretrained(args.vocab_dir)
        qwen = lambda m, gen, th: auto.apply_chat_template(
            m, tokenize=False, add_generation_prompt=gen, enable_thinking=th)
        mixtral = lambda m: auto.apply_chat_template(
            m, chat_template=MIXTRAL_TEMPLATE, tokenize=False, add_generation_prompt=True,
            bos_token="<s>", eos_token="</s>")
        ids = {}
        for name, text in corpus_texts(args.corpus):
            ids[name] = hf_tok.encode(text, add_special_tokens=False).ids
        dump("qwen3_ids.json", {"versions": versions, "ids": ids})
        log.append(f"corpus: {len(ids)} entries, {sum(map(len, ids.values()))} tokens")

    rendered, rendered_ids, mixtral_out = {}, {}, {}
    for c in convs:
        if "qwen3" in c["templates"]:
            for th in c["thinking"]:
                key = f"{c['name']}|{'true' if th else 'false'}"
                rendered[key] = qwen(c["messages"], c["add_generation_prompt"], th)
                if hf_tok is not None:
                    rendered_ids[key] = hf_tok.encode(rendered[key], add_special_tokens=False).ids
        if "mistral" in c["templates"]:
            try:
                mixtral_out[c["name"]] = mixtral(c["messages"])
            except Exception as e:  # the template's raise_exception
                mixtral_out[c["name"]] = f"ERROR: {e}"
    dump("qwen3_templates.json", {"versions": versions, "rendered": rendered})
    dump("mixtral_templates.json", {"versions": versions, "rendered": mixtral_out})
    if hf_tok is not None:
        dump("qwen3_template_ids.json", {"versions": versions, "ids": rendered_ids})
    log.append(f"templates: {len(rendered)} qwen3, {len(mixtral_out)} mixtral")
    log.insert(0, "versions: " + json.dumps(versions, sort_keys=True))
    with open(os.path.join(args.out_dir, "make_tokenizer_fixtures.log"), "w") as f:
        f.write("\n".join(log) + "\n")
    print("\n".join(log))


if __name__ == "__main__":
    sys.exit(main())
