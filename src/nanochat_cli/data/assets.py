"""Plain-file items a phase needs besides HF datasets: the SpellingBee word list and the CORE eval bundle.

Both come over plain HTTP through `download.download_file` (resume, retries, size check) and are verified by
reading them as their users will: every line of words_alpha.txt must be a lowercase a–z word; the bundle zip must
pass `testzip()` (CRC of every member, ~1 s for 162 MB) and, once extracted, every task `core.yaml` names must be
present. The bundle is extracted into a temporary directory and renamed to <home>/eval_bundle, so a crash never
leaves a half-extracted bundle that looks complete. Not done: hashes (no published ones upstream).
"""

from __future__ import annotations

import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from nanochat_cli.data.download import FileResult, download_file
from nanochat_cli.paths import Paths, ensure_writable_dir

_WORD = re.compile(r"[a-z]+")


def check_words(path: Path) -> int:
    """Number of words in the list; ValueError if it is missing, empty or not one a–z word per line."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read word list: {e}") from None
    words = [w.strip() for w in text.splitlines() if w.strip()]
    if not words:
        raise ValueError("word list is empty")
    bad = next((w for w in words if not _WORD.fullmatch(w)), None)
    if bad is not None:
        raise ValueError(f"word list has a line that is not a lowercase word: {bad[:40]!r}")
    return len(words)


def _check_zip(path: Path) -> int:
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise ValueError(f"not a complete zip file ({e})") from None
    if bad is not None:
        raise ValueError(f"zip member {bad} is corrupt")
    if "eval_bundle/core.yaml" not in names:
        raise ValueError("zip has no eval_bundle/core.yaml")
    return len(names)


def check_eval_bundle(bundle: Path) -> int:
    """Number of CORE tasks whose data files are present; ValueError naming what is missing."""
    import yaml

    core = bundle / "core.yaml"
    if not core.is_file():
        raise ValueError(f"{core} is missing")
    try:
        tasks = (yaml.safe_load(core.read_text(encoding="utf-8")) or {}).get("icl_tasks") or []
    except yaml.YAMLError as e:
        raise ValueError(f"core.yaml does not parse: {e}") from None
    if not tasks:
        raise ValueError("core.yaml lists no tasks")
    missing = [t.get("dataset_uri") for t in tasks if not (bundle / "eval_data" / str(t.get("dataset_uri"))).is_file()]
    if missing:
        raise ValueError(f"eval data missing for {', '.join(map(str, missing[:3]))}")
    if not (bundle / "eval_meta_data.csv").is_file():
        raise ValueError("eval_meta_data.csv is missing")
    return len(tasks)


def fetch_words(cfg) -> FileResult:
    paths = Paths.of(cfg)
    dest = paths.word_list
    try:
        check_words(dest)
        return FileResult(dest.name, "present", dest.stat().st_size)
    except ValueError:
        dest.unlink(missing_ok=True)
    ensure_writable_dir(dest.parent)
    d = cfg.data
    return download_file(d.words_url, dest, retries=d.retries, backoff=d.backoff, timeout=d.timeout,
                         verify=check_words)


def fetch_eval_bundle(cfg) -> FileResult:
    paths = Paths.of(cfg)
    bundle = paths.eval_bundle
    try:
        check_eval_bundle(bundle)
        return FileResult(bundle.name, "present")
    except ValueError:
        pass
    home = ensure_writable_dir(paths.home)
    d = cfg.data
    zpath = home / "eval_bundle.zip"
    r = download_file(d.eval_bundle_url, zpath, retries=d.retries, backoff=d.backoff, timeout=d.timeout,
                      verify=_check_zip)
    if r.status != "downloaded":
        return r
    tmp = Path(tempfile.mkdtemp(prefix=".eval_bundle.", dir=home))
    try:
        with zipfile.ZipFile(zpath) as z:
            for member in z.namelist():  # refuse paths that would escape the target directory
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ValueError(f"unsafe path in zip: {member}")
            z.extractall(tmp)
        check_eval_bundle(tmp / "eval_bundle")
        if bundle.exists():
            shutil.rmtree(bundle)
        (tmp / "eval_bundle").rename(bundle)
    except ValueError as e:
        r = FileResult(bundle.name, "failed", r.bytes, r.seconds, r.attempts, str(e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    zpath.unlink(missing_ok=True)
    return r
