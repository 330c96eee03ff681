"""`nanochat tokenizer train`: learn a BPE on the base shards (bpe.py) and store it as a new version
(store.py) that becomes the default for new runs. Orchestration only: the data comes from data/shards.py, the
merges from bpe.train_ranks, the files and the lock from the store."""

from __future__ import annotations

import sys
import time

from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.tokenizer.bpe import MIN_VOCAB, SPLIT_PATTERN, ranks_to_file_bytes, train_ranks
from nanochat_cli.tokenizer.special import SPECIAL_TOKENS


def train_tokenizer(cfg, progress=None) -> dict:
    """`nanochat tokenizer train`: BPE on cfg.tokenizer.train_chars of the train shards (doc_cap per document),
    stored as a new version under <home>/tokenizers/<fingerprint>/ and made the default for new runs; versions
    stored before are not touched. Holds the store's lock throughout, so a second `tokenizer train` on the same
    home waits (and, on the same data, makes the same version). Builds the embedded corpus first when
    data.source is embedded and it is missing."""
    from nanochat_cli.paths import ensure_writable_dir
    from nanochat_cli.data.shards import iter_texts, list_shards, shard_paths
    from nanochat_cli.locks import describe_holder, hold
    from nanochat_cli.paths import Paths
    from nanochat_cli.tokenizer import store
    from nanochat_cli.tokenizer.legacy import migrate_legacy

    t = cfg.tokenizer
    paths = Paths.of(cfg)
    say = progress or (lambda message: None)
    ensure_writable_dir(paths.tokenizers)  # fail in milliseconds, not after training
    if t.vocab_size < MIN_VOCAB:  # the config validates this too; kept for callers that build values by hand
        raise UsageError(f"tokenizer.vocab_size {t.vocab_size} is smaller than {MIN_VOCAB}",
                         f"set tokenizer.vocab_size to at least {MIN_VOCAB}")
    migrate_legacy(paths)  # an old home's tokenizer becomes a version before a new one can become the default

    def waiting(held) -> None:  # said even without a progress callback: a silent wait looks like a hang
        line = f"waiting for the tokenizer lock held by {describe_holder(held.pid, held.host)}…"
        if progress:
            progress(line)
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    with hold(paths.tokenizer_lock, wait=True, what="the tokenizer store", on_wait=waiting):
        if cfg.data.source == "embedded":  # build it on first use; afterwards verify (~40 ms) and repair
            from nanochat_cli.data.embedded import ensure_embedded_corpus

            if not shard_paths(cfg):
                say("building the embedded corpus (first run only)…")
            ensure_embedded_corpus(cfg)
        train_files, val_file = list_shards(cfg)
        files = train_files or [val_file]  # one shard only: train on it (nothing else exists)
        stats = {"chars": 0, "docs": 0}

        def texts():
            for text in iter_texts(files, t.train_chars, t.doc_cap):
                stats["chars"] += len(text)
                stats["docs"] += 1
                yield text

        say(f"training a {t.vocab_size:,}-token BPE on up to {t.train_chars:,} chars of {len(files)} shard(s)…")
        t0 = time.perf_counter()
        ranks = train_ranks(texts(), t.vocab_size)
        seconds = time.perf_counter() - t0
        if stats["chars"] == 0:
            raise UsageError(f"the training shards ({', '.join(p.name for p in files)}) contain no text",
                             "delete them and run `nanochat data fetch base` again")
        wanted = t.vocab_size - len(SPECIAL_TOKENS)
        if len(ranks) < wanted:
            raise UsageError(f"{stats['chars']:,} chars of text allow only {len(ranks) + len(SPECIAL_TOKENS):,} "
                             f"tokens, fewer than tokenizer.vocab_size {t.vocab_size:,}",
                             "lower tokenizer.vocab_size or raise tokenizer.train_chars")
        info = {"train_chars": stats["chars"], "train_docs": stats["docs"], "seconds": round(seconds, 3),
                "doc_cap": t.doc_cap, "shards": [p.name for p in files], "source": cfg.data.source}
        data = ranks_to_file_bytes(ranks)
        meta = store.new_meta(data, len(ranks), SPLIT_PATTERN, info)
        try:
            previous = store.read_default(paths)
        except PreflightError:
            previous = None  # a damaged default file is replaced by this version
        directory, new = store.install_version(paths, meta, {store.TOKEN_FILE: data})
        store.set_default(paths, meta["fingerprint"])
        others = [d.name for d in store.version_dirs(paths) if d.name != meta["fingerprint"]]
    return {**info, "vocab_size": meta["vocab_size"], "fingerprint": meta["fingerprint"],
            "ranks_sha256": meta["ranks_sha256"], "dir": str(directory), "new": new,
            "previous_default": previous, "other_versions": len(others), "tokenizers": str(paths.tokenizers)}
