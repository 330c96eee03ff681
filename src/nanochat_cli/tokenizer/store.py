"""Trained tokenizers on disk: one directory per version under <home>/tokenizers/, named by its fingerprint,
never rewritten; a `default` file names the version new runs use.

A version is `tokenizer.tiktoken` (the ranks) + `tokenizer.json` (metadata) + `eval.json` once `tokenizer eval`
ran for it; eval.json is the only file ever added to an existing version. The fingerprint is

    sha256( json.dumps({"kind": kind, "pattern": pattern, "ranks_sha256": sha256(tokenizer.tiktoken bytes),
                        "special_tokens": {name: id, ...}}, sort_keys=True, separators=(",", ":"),
                       ensure_ascii=True).encode("ascii") ).hexdigest()

i.e. it covers every byte of the ranks file (through its sha256) and everything else that decides which ids a
text gets; training statistics, dates and the eval are not part of it. Releases before versioning used
sha256(tokenizer.tiktoken) alone; that value is kept as `ranks_sha256`, so their checkpoints still find their
version (`find_version`, `tokenizer_matches`). A version is written into a temporary directory and renamed into
place, so a directory under a fingerprint name is complete. Loading validates everything (JSON shape, pattern,
special ids, both hashes, ranks, a tiktoken round trip) and turns each problem into one PreflightError line;
cost, measured on 2 shared cores: ~10 ms for the cpu-tiny 4,096-token version, ~150 ms for a 65,536-token one,
about 1.3x loading the same files unchecked (building tiktoken's encoder is half of it). Nothing here deletes
a version: a damaged one is moved aside to .damaged/ when training writes the same version again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from nanochat_cli.errors import PreflightError
from nanochat_cli.paths import Paths, atomic_write_json, atomic_write_text, ensure_dir, follow_umask, fsync_dir
from nanochat_cli.tokenizer.fingerprint import fingerprint_of, special_ids
from nanochat_cli.tokenizer.fingerprint import new_meta  # noqa: F401 - part of the store's API (training, legacy, tests)
from nanochat_cli.tokenizer.special import SPECIAL_TOKENS

TOKEN_FILE = "tokenizer.tiktoken"
META_FILE = "tokenizer.json"
EVAL_FILE = "eval.json"
REQUIRED = {"fingerprint": str, "kind": str, "pattern": str, "ranks_sha256": str, "special_tokens": dict,
            "vocab_size": int}
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Every kind of text a split pattern must cover: letters with and without a leading space, contractions,
# digits, punctuation runs, newlines (LF, CRLF), tabs, trailing spaces, Korean, emoji, a control byte.
ROUND_TRIP = ("Hello, World! It's 2026: 3.14159 + 271 = 274.14159.\n\n\tindented\r\nCRLF  trailing   \n"
              "안녕하세요, 세계! Ünïcödé façade — “quotes” 🙂👍🏽 \x00\x7f end")


def is_fingerprint(text: str) -> bool:
    return isinstance(text, str) and _HEX64.fullmatch(text) is not None


# ---------------------------------------------------------------------------------------------------
# Validation: each problem is one line naming the file and the fix.

def _problem(path: Path, what: str, fix: str | None = None) -> PreflightError:
    return PreflightError(f"{path}: {what}", fix or "retrain it (`nanochat tokenizer train`) or restore the "
                                                     "directory from a backup")


def check_meta(meta, meta_path: Path) -> dict:
    """Shape and self-consistency of a tokenizer.json (no ranks needed): keys, types, special ids, pattern."""
    if not isinstance(meta, dict):
        raise _problem(meta_path, f"is not a JSON object (found {type(meta).__name__})")
    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise _problem(meta_path, f"lacks {', '.join(missing)}")
    wrong = [k for k, t in REQUIRED.items() if not isinstance(meta[k], t) or isinstance(meta[k], bool)]
    if wrong:
        raise _problem(meta_path, f"has the wrong type for {', '.join(wrong)}")
    if meta["kind"] != "bpe":
        raise _problem(meta_path, f"kind is {meta['kind']!r}; only 'bpe' tokenizers are stored")
    expected = special_ids(meta["vocab_size"] - len(SPECIAL_TOKENS))
    if meta["special_tokens"] != expected:
        raise _problem(meta_path, f"special tokens disagree with this release's {len(SPECIAL_TOKENS)} "
                                  f"({', '.join(SPECIAL_TOKENS[:2])}, … at ids {min(expected.values())}–"
                                  f"{max(expected.values())})")
    check_pattern(meta["pattern"], meta_path)
    return meta


def check_pattern(pattern: str, meta_path: Path) -> None:
    """The split pattern compiles and cuts text into non-empty pieces that cover all of it (a pattern that
    skips characters would silently drop them from every text; an empty match makes tiktoken panic)."""
    import regex

    try:
        compiled = regex.compile(pattern)
    except Exception as e:  # regex.error, and whatever else a hand-edited pattern can provoke
        raise _problem(meta_path, f"the split pattern does not compile ({' '.join(str(e).split())[:120]})") from None
    pieces = [m.group(0) for m in compiled.finditer(ROUND_TRIP)]
    if any(p == "" for p in pieces):
        raise _problem(meta_path, "the split pattern matches the empty string")
    if "".join(pieces) != ROUND_TRIP:
        raise _problem(meta_path, "the split pattern does not cover all text (some characters would be dropped)")


def parse_ranks_checked(data: bytes, token_path: Path) -> dict[bytes, int]:
    """Ranks from a tiktoken file listing ranks 0..n-1 in order, each token once, rank b < 256 being the byte b.
    (Comprehensions over the whole file, not a loop per line: ~2x faster, 50 ms for 65,536 ranks.)"""
    import binascii

    pairs = [line.split() for line in data.splitlines() if line]
    try:
        bad = next((i for i, p in enumerate(pairs) if len(p) != 2), None)
        if bad is not None:
            raise ValueError(bad)
        tokens = [binascii.a2b_base64(p[0], strict_mode=True) for p in pairs]
        ids = [int(p[1]) for p in pairs]
    except (ValueError, binascii.Error):
        raise _problem(token_path, "is not a tiktoken file (`base64 rank` per line)") from None
    ranks = dict(zip(tokens, ids))
    ordered = ids == list(range(len(ids))) and len(ranks) == len(ids)
    bytes_first = len(tokens) >= 256 and all(tokens[b] == bytes([b]) for b in range(256))
    if not (ordered and bytes_first):
        raise _problem(token_path, "ranks are not 0..n-1 in order, each token once, the 256 single bytes first")
    return ranks


def validate(meta, data: bytes, directory: Path, expect: str | None = None) -> tuple[dict, dict[bytes, int]]:
    """(meta, ranks) of a version whose files hold `meta`/`data`, or PreflightError naming the first problem.
    `expect`: the fingerprint the directory is named by."""
    meta_path, token_path = directory / META_FILE, directory / TOKEN_FILE
    check_meta(meta, meta_path)
    if hashlib.sha256(data).hexdigest() != meta["ranks_sha256"]:
        raise _problem(token_path, f"does not match ranks_sha256 in {META_FILE} (damaged, or edited)")
    if fingerprint_of(meta) != meta["fingerprint"]:
        raise _problem(meta_path, "its content does not match its fingerprint (edited after training?)")
    if expect is not None and meta["fingerprint"] != expect:
        raise _problem(meta_path, f"holds version {meta['fingerprint'][:12]}, not the {expect[:12]} its "
                                  "directory is named after")
    ranks = parse_ranks_checked(data, token_path)
    if len(ranks) + len(SPECIAL_TOKENS) != meta["vocab_size"]:
        raise _problem(meta_path, f"vocab_size {meta['vocab_size']:,} disagrees with the {len(ranks):,} ranks "
                                  f"+ {len(SPECIAL_TOKENS)} special tokens of {TOKEN_FILE}")
    return meta, ranks


def read_files(directory: Path) -> tuple[object, bytes]:
    """(parsed tokenizer.json, tokenizer.tiktoken bytes), or PreflightError naming the unreadable file."""
    meta_path, token_path = directory / META_FILE, directory / TOKEN_FILE
    for path in (token_path, meta_path):
        if not path.is_file():
            raise _problem(path, "is missing")
    try:
        data = token_path.read_bytes()
        text = meta_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise _problem(directory, f"cannot be read ({getattr(e, 'strerror', None) or type(e).__name__})") from None
    try:
        meta = json.loads(text)
    except ValueError as e:
        raise _problem(meta_path, f"is not valid JSON ({e.msg} at line {e.lineno})") from None
    return meta, data


def check_version(directory: Path) -> dict:
    """Validate a version directory without building the encoder (what `list` does); returns its metadata."""
    meta, data = read_files(directory)
    return validate(meta, data, directory, expect=directory.name)[0]


def load_version(directory: Path):
    """The BPETokenizer stored in `directory`, fully validated (including a tiktoken round trip)."""
    from nanochat_cli.tokenizer.bpe import BPETokenizer

    meta, data = read_files(directory)
    meta, ranks = validate(meta, data, directory, expect=directory.name)
    try:
        tok = BPETokenizer(ranks, meta["fingerprint"], meta["pattern"], meta, ranks_sha256=meta["ranks_sha256"])
        round_trip = tok.decode(tok.encode(ROUND_TRIP))
    except BaseException as e:  # fancy-regex refusing what `regex` accepted (ValueError), or a Rust panic
        if type(e).__name__ != "PanicException" and not isinstance(e, Exception):
            raise
        raise _problem(directory / META_FILE, f"tiktoken cannot use this tokenizer "
                                              f"({' '.join(str(e).split())[:120]})") from None
    if round_trip != ROUND_TRIP:
        raise _problem(directory, "does not round-trip text (decode(encode(x)) != x)")
    return tok


# ---------------------------------------------------------------------------------------------------
# Writing: a version appears complete or not at all; the default is one atomically replaced line.

def install_version(paths: Paths, meta: dict, files: dict[str, bytes]) -> tuple[Path, bool]:
    """Put a version (meta + `files`, e.g. {TOKEN_FILE: bytes}) under tokenizers/<fingerprint>/.
    Returns (directory, True) when written now, (directory, False) when an intact copy was already there.
    Callers hold `paths.tokenizer_lock`; without it (a filesystem that cannot lock) the rename still keeps
    two writers from mixing files: the second finds the directory taken and leaves it alone."""
    fp = meta["fingerprint"]
    final = paths.tokenizer_dir(fp)
    if final.exists():
        try:
            check_version(final)
            return final, False
        except PreflightError:  # same name, broken content: keep it aside, never delete it
            aside = ensure_dir(paths.damaged_tokenizers) / f"{fp}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
            os.rename(final, aside)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{fp[:12]}-", dir=ensure_dir(paths.tokenizers)))
    try:
        follow_umask(tmp, directory=True)  # mkdtemp's 0700 would hide the version from a shared home's other users
        for name, data in {**files, META_FILE: (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()}.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            return final, False  # another writer got there first with the same content (same fingerprint)
        fsync_dir(paths.tokenizers)
        return final, True
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def read_default(paths: Paths) -> str | None:
    """The default version's fingerprint; None when no default was ever set; PreflightError when damaged."""
    try:
        text = paths.default_tokenizer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise PreflightError(f"{paths.default_tokenizer} cannot be read ({getattr(e, 'strerror', None) or e})",
                             _choose_fix()) from None
    if not is_fingerprint(text):
        raise PreflightError(f"{paths.default_tokenizer} does not name a tokenizer version ({text[:20]!r})",
                             _choose_fix())
    return text


def _choose_fix() -> str:
    return "pick one: `nanochat tokenizer use <fingerprint>` (see `nanochat tokenizer list`), or train one: " \
           "`nanochat tokenizer train`"


def default_dir(paths: Paths, legacy_problem: str | None = None) -> Path:
    """The default version's directory, or PreflightError saying why there is none and how to get one
    (`legacy_problem`: why an earlier release's tokenizer could not be migrated, from tokenizer/legacy.py)."""
    default = read_default(paths)
    if default is None:
        old = legacy_problem
        if old:
            raise PreflightError(f"no default tokenizer, and the one of an earlier release cannot be moved into "
                                 f"{paths.tokenizers}: {old}", "retrain: `nanochat tokenizer train`")
        stored = version_dirs(paths)
        if stored:
            raise PreflightError(f"no default tokenizer in {paths.tokenizers} ({len(stored)} stored)", _choose_fix())
        raise PreflightError(f"no trained tokenizer in {paths.tokenizers}", "nanochat tokenizer train")
    directory = paths.tokenizer_dir(default)
    if not directory.is_dir():
        raise PreflightError(f"{paths.default_tokenizer} names version {default[:12]}, which is not in "
                             f"{paths.tokenizers}", _choose_fix())
    return directory


def set_default(paths: Paths, fingerprint: str) -> None:
    atomic_write_text(paths.default_tokenizer, fingerprint + "\n")


# ---------------------------------------------------------------------------------------------------
# Finding and listing versions.

def version_dirs(paths: Paths) -> list[Path]:
    """Directories under tokenizers/ named like a fingerprint (not .lock, default, .tmp-*, .migrated, …)."""
    try:
        return sorted(p for p in paths.tokenizers.iterdir() if is_fingerprint(p.name) and p.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _quiet_meta(directory: Path) -> dict:
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def find_version(paths: Paths, fingerprint: str) -> Path | None:
    """The version directory for `fingerprint`: the one named by it, else the one whose ranks file has that
    sha256 (what checkpoints of releases before versioning recorded). None when there is none."""
    if not is_fingerprint(fingerprint):
        return None
    direct = paths.tokenizer_dir(fingerprint)
    if direct.is_dir():
        return direct
    for d in version_dirs(paths):
        if _quiet_meta(d).get("ranks_sha256") == fingerprint:
            return d
    return None


@dataclass
class TokenizerVersion:
    fingerprint: str
    path: str
    vocab_size: int | None
    created: str | None
    default: bool
    size_bytes: int
    has_eval: bool
    ranks_sha256: str | None
    migrated_from: str | None
    problem: str | None  # None when the version validates

    def to_json(self) -> dict:
        return asdict(self)


def list_versions(paths: Paths) -> list[TokenizerVersion]:
    """Every stored version, oldest first, each validated without building its encoder (~2 ms per 1 MB of
    ranks). A damaged one is listed with its problem, not skipped."""
    try:
        default = read_default(paths)
    except PreflightError:
        default = None
    out = []
    for d in version_dirs(paths):
        meta, problem = _quiet_meta(d), None
        try:
            check_version(d)
        except PreflightError as e:
            problem = e.message.removeprefix(f"{d}/").removeprefix(f"{d}: ")
        size = sum(f.stat().st_size for f in d.iterdir() if f.is_file())
        created = meta.get("created") if isinstance(meta.get("created"), str) else None
        out.append(TokenizerVersion(
            fingerprint=d.name, path=str(d), vocab_size=meta.get("vocab_size") if problem is None else None,
            created=created, default=d.name == default, size_bytes=size, has_eval=(d / EVAL_FILE).is_file(),
            ranks_sha256=meta.get("ranks_sha256") if isinstance(meta.get("ranks_sha256"), str) else None,
            migrated_from=meta.get("migrated_from"), problem=problem))
    return sorted(out, key=lambda v: (v.created or "", v.fingerprint))


def resolve_prefix(paths: Paths, prefix: str) -> Path:
    """The version whose fingerprint starts with `prefix` (at least 6 hex digits, unambiguous)."""
    from nanochat_cli.errors import UsageError

    prefix = prefix.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{6,64}", prefix):
        raise UsageError(f"{prefix!r} is not a tokenizer fingerprint (6 to 64 hex digits)",
                         "copy one from `nanochat tokenizer list`")
    hits = [d for d in version_dirs(paths) if d.name.startswith(prefix)]
    if len(hits) != 1:
        what = "no tokenizer version" if not hits else f"{len(hits)} tokenizer versions"
        raise UsageError(f"{what} in {paths.tokenizers} start with {prefix}",
                         "copy a fingerprint from `nanochat tokenizer list` (more digits if it is ambiguous)")
    return hits[0]


def use_version(paths: Paths, prefix: str):
    """`nanochat tokenizer use`: make the version `prefix` names the default, after loading it in full (a
    damaged version never becomes the default). Returns the tokenizer. It does not take the store's lock: the
    default is one atomic rename, and waiting out a `tokenizer train` (minutes to hours) to change a pointer that
    training will set again when it finishes would only look like a hang."""
    tok = load_version(resolve_prefix(paths, prefix))
    set_default(paths, tok.fingerprint)
    return tok


# ---------------------------------------------------------------------------------------------------
# The comparison `tokenizer eval` makes, kept with the version it measured.

def save_eval(paths: Paths, fingerprint: str, report: dict) -> Path:
    path = paths.tokenizer_dir(fingerprint) / EVAL_FILE
    atomic_write_json(path, report)
    return path


def eval_for(paths: Paths, fingerprint: str | None) -> dict | None:
    """The saved `tokenizer eval` of the version a checkpoint names (new fingerprint or old ranks sha256),
    also from a pre-versions <home>/tokenizer not migrated yet; None when there is none. Reads only."""
    if not fingerprint:
        return None
    directory = find_version(paths, fingerprint)
    if directory is None and _quiet_meta(paths.legacy_tokenizer).get("sha256") == fingerprint:
        directory = paths.legacy_tokenizer
    if directory is None:
        return None
    try:
        saved = json.loads((directory / EVAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None
