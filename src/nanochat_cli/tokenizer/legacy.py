"""Migration of a home made before tokenizers were versioned: <home>/tokenizer/{tokenizer.tiktoken,
tokenizer.json, eval.json} becomes the version tokenizers/<fingerprint>/ (and the default when there is none).

The first command that needs the tokenizer (load, train, list, eval, doctor) does it, under the store's lock,
so two processes starting at once migrate once. Order, each step safe to repeat after a crash: validate the old
files; write the version (temp dir + rename; the ranks file byte for byte, the metadata gaining `ranks_sha256`
= the old `sha256`, `kind`, `fingerprint`, `created`, `migrated_from`); set the default if none; then rename the
old directory to tokenizers/.migrated/tokenizer-<sha256[:12]> — kept, never deleted (cost: ~1 MB of disk for a
65,536-token vocab). An old directory that does not validate (torn by a crash, edited) is left where it is and
reported by `legacy_problem`; nothing is moved out of it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

from nanochat_cli.errors import PreflightError
from nanochat_cli.paths import Paths, ensure_dir
from nanochat_cli.tokenizer.store import (EVAL_FILE, META_FILE, TOKEN_FILE, install_version, new_meta, read_files,
                                          set_default, validate)


def _stderr(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _prepare(legacy: Path) -> tuple[dict, bytes]:
    """(new metadata, ranks bytes) for the old directory, or PreflightError saying why it cannot move."""
    from nanochat_cli.tokenizer.bpe import SPLIT_PATTERN

    old, data = read_files(legacy)
    if not isinstance(old, dict):
        raise PreflightError(f"{legacy / META_FILE}: is not a JSON object", "retrain: `nanochat tokenizer train`")
    digest = hashlib.sha256(data).hexdigest()
    if old.get("sha256") != digest:
        raise PreflightError(f"{legacy / TOKEN_FILE} does not match the sha256 in {META_FILE} (damaged or "
                             "half-written)", "retrain: `nanochat tokenizer train`")
    n_ranks = sum(1 for line in data.splitlines() if line)
    try:
        mtime = (legacy / TOKEN_FILE).stat().st_mtime
    except OSError as e:  # gone since read_files: another process holding the lock moved it into .migrated/
        raise PreflightError(f"{legacy / TOKEN_FILE}: cannot be read ({e.strerror})",
                             "retrain: `nanochat tokenizer train`") from None
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    extra = {k: v for k, v in old.items() if k not in ("sha256", "pattern", "special_tokens", "vocab_size")}
    meta = new_meta(data, n_ranks, old.get("pattern", SPLIT_PATTERN),
                    {**extra, "created": created, "migrated_from": str(legacy)})
    if old.get("special_tokens", meta["special_tokens"]) != meta["special_tokens"]:
        raise PreflightError(f"{legacy / META_FILE}: special tokens disagree with the ranks file",
                             "retrain: `nanochat tokenizer train`")
    validate(meta, data, legacy)  # the same checks a version gets when it loads: refuse to store a broken one
    return meta, data


def legacy_problem(paths: Paths) -> str | None:
    """Why a pre-versions tokenizer still sits in <home>/tokenizer (None when there is none to migrate)."""
    if not (paths.legacy_tokenizer / TOKEN_FILE).is_file():
        return None
    try:
        _prepare(paths.legacy_tokenizer)
    except PreflightError as e:
        return e.message
    return None


def migrate_legacy(paths: Paths, notice=_stderr) -> str | None:
    """Move a pre-versions tokenizer into the store; returns its new fingerprint, or None when there was
    nothing (valid) to move. One stat when there is no old directory."""
    from nanochat_cli.locks import describe_holder, hold

    legacy = paths.legacy_tokenizer
    if not (legacy / TOKEN_FILE).is_file():
        return None
    try:
        _prepare(legacy)
    except PreflightError:
        return None  # left in place; load_tokenizer names the problem when no version can stand in for it
    try:
        with hold(paths.tokenizer_lock, wait=True, what="the tokenizer store",
                  on_wait=lambda e: notice(f"waiting for the tokenizer lock held by "
                                           f"{describe_holder(e.pid, e.host)}…")):
            if not (legacy / TOKEN_FILE).is_file():
                return None  # another process migrated it while this one waited
            meta, data = _prepare(legacy)
            files = {TOKEN_FILE: data}
            if (legacy / EVAL_FILE).is_file():
                files[EVAL_FILE] = (legacy / EVAL_FILE).read_bytes()
            directory, _ = install_version(paths, meta, files)
            if EVAL_FILE in files and not (directory / EVAL_FILE).is_file():
                from nanochat_cli.paths import atomic_write_bytes

                atomic_write_bytes(directory / EVAL_FILE, files[EVAL_FILE])
            became_default = not paths.default_tokenizer.exists()
            if became_default:
                set_default(paths, meta["fingerprint"])
            kept = _archive(paths, legacy, meta["ranks_sha256"])
    except OSError as e:
        raise PreflightError(f"cannot move the tokenizer in {legacy} to {paths.tokenizers} "
                             f"({e.strerror or e})", f"make {paths.home} writable; the move happens once, on the "
                                                     "first command that needs the tokenizer") from None
    notice(f"tokenizer: moved {legacy} to {directory} (version {meta['fingerprint'][:12]}"
           f"{', the default' if became_default else ''}; checkpoints that name its old sha256 "
           f"{meta['ranks_sha256'][:12]} still find it); the old directory is kept as {kept}")
    return meta["fingerprint"]


def _archive(paths: Paths, legacy: Path, ranks_sha256: str) -> Path:
    """Rename the old directory into tokenizers/.migrated/ under a name not taken yet."""
    base = ensure_dir(paths.migrated_tokenizers) / f"tokenizer-{ranks_sha256[:12]}"
    target, n = base, 1
    while target.exists():
        n += 1
        target = base.with_name(f"{base.name}.{n}")
    os.rename(legacy, target)
    return target
