"""Child process of `nanochat data fetch mid|sft|eval`: downloads HF dataset configs and builds their cache.

It runs in its own process because huggingface_hub and datasets read HF_ENDPOINT, HF_HUB_OFFLINE and the
cache locations once, at import: this process sets them first, then imports (a new interpreter costs ~2 s).
For each (repo, config) it resolves `main` to a commit sha and calls `load_dataset(path=, name=, revision=sha,
cache_dir=)` for the whole config (datasets downloads every split of a config anyway); pinning the sha stops
datasets from asking datasets-server for parquet exports. Transport errors, 5xx and cut bodies are retried
with backoff (the hub retries none of these on GET); "no such repo/config/file" is not. Each cached file is
then checked against the sha1/sha256 in the Hub's tree listing (one request; the hub itself accepts any
bytes of the right length), and a mismatch is downloaded again.
Input: one JSON job on stdin. Output: one JSON line per config on stdout; progress on stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path


def _permanent(e: BaseException) -> bool:
    from huggingface_hub import errors as hub_errors

    names = {"DatasetNotFoundError", "EmptyDatasetError"}
    return (isinstance(e, (hub_errors.RepositoryNotFoundError, hub_errors.RevisionNotFoundError,
                           hub_errors.RemoteEntryNotFoundError, ValueError, FileNotFoundError))
            or type(e).__name__ in names)


class ChecksumMismatch(Exception):
    pass


def _verify_checksums(api, repo: str, sha: str, hub_cache: str) -> None:
    """The hub accepts a body of the right length whatever its bytes (docs/explanation/hub-and-datasets.md); a cached file's
    sha1/sha256 must match the tree listing's oid, or the download is redone."""
    v = api.verify_repo_checksums(repo, repo_type="dataset", revision=sha, cache_dir=hub_cache)
    if v.mismatches:
        paths = [m["path"] if isinstance(m, dict) else getattr(m, "path", str(m)) for m in v.mismatches]
        raise ChecksumMismatch("checksum mismatch: " + ", ".join(paths))


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:300]


def main() -> int:
    job = json.load(sys.stdin)
    env = {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "0", "HF_HUB_CACHE": job["hub_cache"],
           "HF_UPDATE_DOWNLOAD_COUNTS": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_HUB_DOWNLOAD_TIMEOUT": str(int(job["timeout"])), "HF_HUB_ETAG_TIMEOUT": str(int(job["timeout"]))}
    if job.get("endpoint"):
        env["HF_ENDPOINT"] = job["endpoint"]
    os.environ.update(env)  # before the imports below: these libraries read them once

    import datasets
    from huggingface_hub import HfApi

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    api = HfApi()
    retries, backoff = int(job["retries"]), float(job["backoff"])
    for repo, name in job["configs"]:
        error, sha = None, None
        for attempt in range(retries + 1):
            try:
                sha = api.dataset_info(repo, revision="main").sha
                datasets.load_dataset(path=repo, name=name, revision=sha, cache_dir=job["cache_dir"],
                                      download_mode="force_redownload" if attempt else None)
                _verify_checksums(api, repo, sha, job["hub_cache"])
                error = None
                break
            except Exception as e:  # noqa: BLE001 - classified below, reported as data
                error = _one_line(e)
                if isinstance(e, ChecksumMismatch) and attempt == retries:
                    # Never leave a cache built from bad bytes behind: `data status` would call it fine.
                    shutil.rmtree(Path(job["cache_dir"]) / f"{repo.replace('/', '___')}" / name, ignore_errors=True)
                if _permanent(e) or attempt == retries:
                    break
                sys.stderr.write(f"  {repo} {name}: {error[:120]} — retry {attempt + 1}/{retries}\n")
                time.sleep(backoff * 2 ** attempt)
        sys.stderr.write(f"{repo} {name}: {'downloaded' if error is None else 'FAILED'}\n")
        sys.stdout.write(json.dumps({"repo": repo, "name": name, "sha": sha, "error": error}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
