"""Our tokenizer as Hugging Face files (tokenizer.json, tokenizer_config.json with a Jinja chat template), and back.

tiktoken merges by the rank of the *merged bytes*; HF `tokenizers` BPE merges by the position of a *pair* in its
merge list. Listing, for every token, each split into two existing tokens, ordered by the token's rank, and
setting `ignore_merges` (a pre-token that is itself a token is emitted whole, as tiktoken does) makes the two
agree: identical ids on 5,629 texts (2.4 M characters, 5,000 of them adversarial) with our split pattern
(INTEROP-NOTES). Oniguruma (HF) and fancy-regex (tiktoken) read some patterns differently — cl100k's split 17 of
those 5,629 texts another way — so every export and import re-checks ids on SAMPLE_TEXTS and refuses on any
difference. Special tokens become HF "added tokens" after the ranks, in our order. The chat template renders
what tokenizer/chat.py renders; transformers parses special-token text typed inside a message as special tokens
(ours never does), a difference documented, not fixed. Needs `tokenizers` and `jinja2` (core dependencies), not
transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from nanochat_cli.errors import UsageError
from nanochat_cli.tokenizer.special import SPECIAL_TOKENS

TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"

# Texts every export and import tokenizes both ways: prose, code with indentation, whitespace runs, CRLF, digits,
# contractions, scripts without spaces, combining marks, emoji sequences, a control byte. Written for this project.
EXTRA_TEXTS = (
    "Hello, World! It's 2026: 3.14159 + 271 = 274.14159.\n\n\tindented\r\nCRLF  trailing   \n",
    "def f(x):\n    return x**2  # square\n\n\n\tif x  >= 10:\n\t\tpass\n",
    "   leading spaces, then  two,   three,\t\ttabs\u00a0nbsp\u2003em-space\n \n  \n",
    "I'm sure you're right; they've said we'd go, and it'll rain. DON'T SHOUT'S.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "Ünïcödé façade — “quotes” ‘single’ naïve café e\u0301 \u200bzero-width\u200d joiner",
    "emoji 🙂👍🏽 👨‍👩‍👧‍👦 🇩🇪 and math ∑ x² ≤ ∞, 1,234,567.89 or 0x1F 0b1010",
    "مرحبا بالعالم — שלום עולם — नमस्ते दुनिया — Привет, мир!",
    "<html><body class=\"x\">a&nbsp;b</body></html>\n{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "numbers 1 12 123 1234 12345 123456 and 3.5e-10, -42, +7, 2024-12-31T23:59:59Z",
    "\x00\x01\x7f control bytes, lone newline\n",
    "",
)


def sample_texts() -> tuple[str, ...]:
    """SAMPLE_TEXTS: the tokenizer-eval samples (news, Korean, code, LaTeX, science) plus EXTRA_TEXTS."""
    from nanochat_cli.tokenizer.samples import SAMPLES
    from nanochat_cli.tokenizer.store import ROUND_TRIP

    return (*SAMPLES.values(), ROUND_TRIP, *EXTRA_TEXTS)


# Conversations the chat template is checked on: plain, with a system message, several turns, tool parts.
SAMPLE_CONVERSATIONS = (
    [{"role": "user", "content": "What is 2 plus 3?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why is the sky blue?"}],
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello. How can I help?"},
     {"role": "user", "content": "  Count to three.\n"}],
    [{"role": "user", "content": "What is 12 times 7?"},
     {"role": "assistant", "content": [{"type": "text", "text": "Let me compute that."},
                                       {"type": "python", "text": "12*7"},
                                       {"type": "python_output", "text": "84"},
                                       {"type": "text", "text": "The answer is 84."}]},
     {"role": "user", "content": "And 84 / 4? 한국어로."}],
)

# The template of tokenizer/chat.py in Jinja, as transformers renders it (trim_blocks, lstrip_blocks; every tag
# strips the whitespace around it, so the layout below adds nothing to the text).
CHAT_TEMPLATE = r"""{%- if messages and messages[0]['role'] == 'system' -%}
  {%- set prefix = messages[0]['content'] + '\n\n' -%}
  {%- set turns = messages[1:] -%}
{%- else -%}
  {%- set prefix = '' -%}
  {%- set turns = messages -%}
{%- endif -%}
{{- '<|bos|>' -}}
{%- for m in turns -%}
  {%- if m['role'] != ('user' if loop.index0 % 2 == 0 else 'assistant') -%}
    {{- raise_exception('after an optional system message, roles alternate user, assistant, user, ...') -}}
  {%- endif -%}
  {%- if m['role'] == 'user' -%}
    {%- if m['content'] is not string -%}
      {{- raise_exception('user content must be a string') -}}
    {%- endif -%}
    {{- '<|user_start|>' + (prefix if loop.first else '') + m['content'] + '<|user_end|>' -}}
  {%- else -%}
    {{- '<|assistant_start|>' -}}
    {%- if m['content'] is string -%}
      {{- m['content'] -}}
    {%- else -%}
      {%- for part in m['content'] -%}
        {%- if part['type'] == 'python' -%}
          {{- '<|python_start|>' + part['text'] + '<|python_end|>' -}}
        {%- elif part['type'] == 'python_output' -%}
          {{- '<|output_start|>' + part['text'] + '<|output_end|>' -}}
        {%- elif part['type'] == 'text' -%}
          {{- part['text'] -}}
        {%- else -%}
          {{- raise_exception('assistant parts are text, python or python_output') -}}
        {%- endif -%}
      {%- endfor -%}
    {%- endif -%}
    {{- '<|assistant_end|>' -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- '<|assistant_start|>' -}}
{%- endif -%}"""


# ---------------------------------------------------------------------------------------------------
# Ranks and the byte-level alphabet

def byte_to_char() -> dict[int, str]:
    """The byte-level alphabet HF uses (GPT-2's): byte → printable character."""
    from nanochat_cli.tokenizer.bpe import byte_alphabet

    return {b: c for c, b in byte_alphabet().items()}


def ranks_of(tokenizer) -> tuple[dict[bytes, int], str | None]:
    """(mergeable ranks, split pattern) of our BPE, or of the byte-level tokenizer (256 ranks, no pattern)."""
    if getattr(tokenizer, "kind", None) != "bpe":
        return {bytes([b]): b for b in range(256)}, None
    n = tokenizer.vocab_size - len(SPECIAL_TOKENS)
    return {tokenizer.token_bytes(i): i for i in range(n)}, tokenizer.pattern


def merges_for(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Every split of a token into two tokens, ordered by the token's rank (then by where it splits)."""
    out = []
    for token, _rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        for i in range(1, len(token)):
            if token[:i] in ranks and token[i:] in ranks:
                out.append((token[:i], token[i:]))
    return out


def build_hf_tokenizer(tokenizer):
    """Our tokenizer as a `tokenizers.Tokenizer` (byte-level BPE, our split pattern, specials after the ranks)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    ranks, pattern = ranks_of(tokenizer)
    table = byte_to_char()

    def chars(b: bytes) -> str:
        return "".join(table[x] for x in b)

    vocab = {chars(tok): rank for tok, rank in ranks.items()}
    merges = [(chars(a), chars(b)) for a, b in merges_for(ranks)]
    hf = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True, fuse_unk=False, byte_fallback=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pattern is None:  # the byte-level tokenizer splits nothing: every byte is its own token
        hf.pre_tokenizer = byte_level
    else:
        try:
            split = pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False)
        except Exception as e:  # noqa: BLE001 - Oniguruma refusing the pattern
            raise UsageError(f"the tokenizer's split pattern does not compile in HF tokenizers (Oniguruma): "
                             f"{' '.join(str(e).split())[:120]}") from None
        hf.pre_tokenizer = pre_tokenizers.Sequence([split, byte_level])
    hf.decoder = decoders.ByteLevel()
    hf.add_special_tokens([AddedToken(name, special=True, normalized=False) for name in SPECIAL_TOKENS])
    for i, name in enumerate(SPECIAL_TOKENS):
        assert hf.token_to_id(name) == len(ranks) + i, name  # ids follow the ranks in our order
    return hf


def tokenizer_config(tokenizer, seq_len: int) -> dict:
    """tokenizer_config.json: the fast tokenizer class (transformers registers none for nanochat), the special
    tokens, and the chat template."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|bos|>", "eos_token": "<|assistant_end|>", "pad_token": "<|bos|>",
        "additional_special_tokens": [t for t in SPECIAL_TOKENS if t not in ("<|bos|>", "<|assistant_end|>")],
        "model_max_length": seq_len,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }


def special_tokens_map() -> dict:
    return {"bos_token": "<|bos|>", "eos_token": "<|assistant_end|>", "pad_token": "<|bos|>",
            "additional_special_tokens": [t for t in SPECIAL_TOKENS if t not in ("<|bos|>", "<|assistant_end|>")]}


# ---------------------------------------------------------------------------------------------------
# Checks: the HF side tokenizes and renders exactly like ours

def render_chat(template: str, messages: list[dict], add_generation_prompt: bool) -> str:
    """Render a chat template the way transformers does (sandboxed Jinja, trim_blocks, lstrip_blocks,
    raise_exception)."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt)


def tokenizer_differences(hf, tokenizer, texts=None) -> list[int]:
    """Indices of the texts that a `tokenizers.Tokenizer` encodes to other ids than ours."""
    texts = sample_texts() if texts is None else texts
    return [i for i, text in enumerate(texts)
            if hf.encode(text, add_special_tokens=False).ids != tokenizer.encode(text)]


def chat_differences(hf, tokenizer, template: str = CHAT_TEMPLATE) -> list[int]:
    """Indices of SAMPLE_CONVERSATIONS whose rendering + HF tokenization differs from render_for_completion (and,
    for whole conversations without a generation prompt, from render_conversation)."""
    from nanochat_cli.tokenizer.chat import render_conversation, render_for_completion

    bad = []
    for i, messages in enumerate(SAMPLE_CONVERSATIONS):
        prompt = hf.encode(render_chat(template, messages, True), add_special_tokens=False).ids
        if prompt != render_for_completion(tokenizer, {"messages": messages}):
            bad.append(i)
            continue
        whole = messages + [{"role": "assistant", "content": "Done."}]
        ids = hf.encode(render_chat(template, whole, False), add_special_tokens=False).ids
        if ids != render_conversation(tokenizer, {"messages": whole})[0]:
            bad.append(i)
    return bad


def check_same_tokenizer(hf, tokenizer, what: str) -> int:
    """UsageError unless `hf` tokenizes SAMPLE_TEXTS and SAMPLE_CONVERSATIONS exactly like ours; returns the
    number of texts checked."""
    texts = sample_texts()
    bad = tokenizer_differences(hf, tokenizer, texts)
    if bad:
        raise UsageError(f"{what}: HF tokenizers and tiktoken split {len(bad)} of {len(texts)} sample texts "
                         f"differently (first: {texts[bad[0]][:40]!r}); the split pattern behaves differently in "
                         "Oniguruma, so the export would not reproduce this model's token ids")
    return len(texts)


# ---------------------------------------------------------------------------------------------------
# Reading an HF tokenizer.json back into ranks (import)

@dataclass
class ImportedTokenizer:
    kind: str                 # "bpe" or "byte"
    ranks: dict[bytes, int]
    pattern: str | None
    source: Path


def _tokenizer_problem(path: Path, what: str) -> UsageError:
    return UsageError(f"{path}: {what}", "only byte-level BPE tokenizers with nanochat's 9 special tokens (like "
                                         "the ones `nanochat export hf` and nanochat's converter write) can be "
                                         "imported")


def _split_pattern(pre, path: Path) -> str | None:
    """The regex of a Split + ByteLevel(use_regex=false) pre-tokenizer; None for ByteLevel alone (no split)."""
    def byte_level_ok(p) -> bool:
        return (isinstance(p, dict) and p.get("type") == "ByteLevel" and p.get("use_regex") is False
                and not p.get("add_prefix_space"))

    if byte_level_ok(pre):
        return None
    if isinstance(pre, dict) and pre.get("type") == "Sequence" and isinstance(pre.get("pretokenizers"), list):
        steps = pre["pretokenizers"]
        if (len(steps) == 2 and isinstance(steps[0], dict) and steps[0].get("type") == "Split"
                and byte_level_ok(steps[1])):
            split = steps[0]
            pattern = split.get("pattern")
            if (isinstance(pattern, dict) and isinstance(pattern.get("Regex"), str)
                    and split.get("behavior") == "Isolated" and split.get("invert") is False):
                return pattern["Regex"]
    kind = pre.get("type") if isinstance(pre, dict) else type(pre).__name__
    raise _tokenizer_problem(path, f"its pre-tokenizer ({kind}) is not a regex Split followed by a byte-level "
                                   "mapping without its own regex")


def read_tokenizer_json(directory: Path) -> ImportedTokenizer:
    """Ranks, pattern and kind of an HF byte-level BPE tokenizer.json; UsageError naming what does not fit."""
    path = Path(directory) / TOKENIZER_JSON
    if not path.is_file():
        raise UsageError(f"{directory} has no {TOKENIZER_JSON}",
                         "export the tokenizer with the model (transformers' save_pretrained writes it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _tokenizer_problem(path, f"is not readable JSON ({e.__class__.__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        raise _tokenizer_problem(path, "has no tokenizer model")
    model = data["model"]
    if model.get("type") != "BPE":
        raise _tokenizer_problem(path, f"its model is {model.get('type')!r}, not BPE")
    if data.get("normalizer") is not None:
        raise _tokenizer_problem(path, "it normalizes text first (our tokenizers never change the text)")
    vocab = model.get("vocab")
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in vocab.items()):
        raise _tokenizer_problem(path, "its vocab is not a map of token → id")
    pattern = _split_pattern(data.get("pre_tokenizer"), path)
    table = {c: b for b, c in byte_to_char().items()}
    ranks: dict[bytes, int] = {}
    for text, rank in vocab.items():
        try:
            ranks[bytes(table[c] for c in text)] = rank
        except KeyError:
            raise _tokenizer_problem(path, f"token {text[:20]!r} is not in the byte-level alphabet") from None
    n = len(ranks)
    if sorted(ranks.values()) != list(range(n)) or any(ranks.get(bytes([b])) != b for b in range(256)):
        raise _tokenizer_problem(path, "its vocab is not ids 0..n-1 with the 256 single bytes first")
    added = data.get("added_tokens") or []
    if not isinstance(added, list) or not all(isinstance(a, dict) for a in added):
        raise _tokenizer_problem(path, "its added_tokens is not a list")
    specials = {a.get("content"): a.get("id") for a in added}
    expected = {name: n + i for i, name in enumerate(SPECIAL_TOKENS)}
    if specials != expected:
        extra = sorted(str(k) for k in set(specials) - set(expected))
        missing = [k for k in expected if k not in specials]
        detail = (f"extra {', '.join(extra[:3])}" if extra else f"missing {', '.join(missing[:3])}" if missing
                  else "at other ids")
        raise _tokenizer_problem(path, f"its special tokens are not nanochat's 9 at ids {n}–{n + 8} ({detail})")
    merges = model.get("merges") or []
    kind = "byte" if n == 256 and not merges else "bpe"
    return ImportedTokenizer(kind=kind, ranks=ranks, pattern=pattern, source=path)
