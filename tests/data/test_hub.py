"""`nanochat data fetch mid|sft|eval` and `data status` against a loopback Hub; real `datasets` loads."""

from __future__ import annotations

import json

import pytest

from nanochat_cli.config_sources import load_config
from nanochat_cli.data import hub as hubmod
from nanochat_cli.errors import PreflightError
from tests.data.hubfixtures import WORDS, eval_bundle_zip, hub_repos

ENV = {"NANOCHAT_DATA__HF_ENDPOINT": "{URL}", "NANOCHAT_DATA__WORDS_URL": "{URL}/gh/words_alpha.txt",
       "NANOCHAT_DATA__EVAL_BUNDLE_URL": "{URL}/s3/eval_bundle.zip"}
FILES = {"/gh/words_alpha.txt": WORDS, "/s3/eval_bundle.zip": eval_bundle_zip()}
ARC_CH_TEST = hub_repos()["allenai/ai2_arc"]["ARC-Challenge/test-00000-of-00001.parquet"]


def _items(stdout: str) -> dict[tuple[str, str, str], dict]:
    return {(i["item"], i["config"], i["split"]): i for i in json.loads(stdout)["items"]}


@pytest.mark.slow  # ~15 s alone (three CLI runs, each importing datasets), 35 s on a busy 2-core machine
def test_fetch_eval_recovers_from_faults_loads_for_real_and_is_idempotent(hub_cli, run_cli, home):
    faults = [{"pattern": r"GET /datasets/openai/gsm8k/resolve/[0-9a-f]+/main/test", "kind": "reset", "times": 1,
               "after": 200},
              {"pattern": r"GET /datasets/allenai/ai2_arc/resolve/[0-9a-f]+/ARC-Easy/test", "kind": "status",
               "times": 1, "status": 503},
              {"pattern": r"GET /datasets/allenai/ai2_arc/resolve/[0-9a-f]+/ARC-Challenge/test", "kind": "flip",
               "times": 1, "after": ARC_CH_TEST.index(b"Challenge-test q3")},
              {"pattern": r"GET /datasets/allenai/ai2_arc/resolve/[0-9a-f]+/ARC-Easy/train", "kind": "corrupt",
               "times": 1},
              {"pattern": r"GET /s3/eval_bundle.zip", "kind": "truncate", "times": 1, "after": 100}]
    r = hub_cli("data", "fetch", "eval", "--json", repos=hub_repos(), files=FILES, faults=faults, env=ENV)
    assert r.rc == 0, r.stderr
    assert "checksum mismatch: ARC-Challenge/test-00000-of-00001.parquet" in r.stderr
    items = _items(r.stdout)
    assert items[("MMLU", "all", "test")]["rows"] == 20
    assert items[("ARC", "ARC-Easy", "test")]["rows"] == 6
    assert items[("ARC", "ARC-Challenge", "test")]["rows"] == 6
    assert items[("GSM8K", "main", "test")]["rows"] == 7
    assert items[("CORE eval_bundle", "core.yaml", "-")]["rows"] == 1
    assert all(i["status"] == "ok" for i in items.values())
    assert (home / "eval_bundle" / "core.yaml").is_file() and not (home / "eval_bundle.zip").exists()
    assert r.requests("GET /datasets/openai/gsm8k/resolve")  # the faults were really hit
    # Idempotent: everything loads from disk, so a second run sends no request at all.
    again = hub_cli("data", "fetch", "eval", "--json", repos=hub_repos(), files=FILES, env=ENV)
    assert again.rc == 0 and again.log == [], again.log
    assert {i["detail"] for i in _items(again.stdout).values()} == {"already present"}
    # Offline (fresh network namespace, no server): status loads every item for real.
    s = run_cli("data", "status", "eval", "--json", netns=True)
    assert s.returncode == 0, s.stderr
    assert _items(s.stdout)[("GSM8K", "main", "test")]["rows"] == 7
    # In-process load_split: the fetched config loads; one never fetched is missing, not silently swapped.
    cfg = load_config(flags={"home": str(home)}).config
    assert len(hubmod.load_split(cfg, "openai/gsm8k", "main", "test")) == 7
    assert hubmod.load_split(cfg, "allenai/ai2_arc", "ARC-Challenge", "test")["question"][3] == "Challenge-test q3"
    for repo, name, split in [("openai/gsm8k", "socratic", "test"), ("openai/gsm8k", None, "test"),
                              ("cais/mmlu", "auxiliary_train", "train"), ("openai/gsm8k", "main", "validation")]:
        with pytest.raises(PreflightError) as err:
            hubmod.load_split(cfg, repo, name, split)
        assert err.value.fix.startswith("nanochat data fetch")


def test_partial_dataset_is_reported_missing(hub_cli, home):
    """A mirror that has GSM8K `main` without its test split and MMLU without the `all` config."""
    repos = hub_repos()
    gsm = repos["openai/gsm8k"]
    del gsm["main/test-00000-of-00001.parquet"]
    gsm["README.md"] = gsm["README.md"].replace(b"  - split: test\n    path: main/test-*\n", b"")
    mmlu = repos["cais/mmlu"]
    repos["cais/mmlu"] = {k: v for k, v in mmlu.items() if not k.startswith("all/")}
    readme = mmlu["README.md"].decode()
    start, end = readme.index("- config_name: all"), readme.index("- config_name: auxiliary_train")
    repos["cais/mmlu"]["README.md"] = (readme[:start] + readme[end:]).encode()
    r = hub_cli("data", "fetch", "mid", "--json", repos=repos, files=FILES, env=ENV)
    assert r.rc == 1
    items = _items(r.stdout)
    assert items[("GSM8K", "main", "test")]["status"] == "missing"
    assert items[("MMLU", "all", "test")]["status"] == "missing"
    assert "BuilderConfig 'all' not found" in items[("MMLU", "all", "test")]["detail"]
    # What the mirror does have was fetched and loads.
    assert items[("GSM8K", "main", "train")]["status"] == "ok" and items[("GSM8K", "main", "train")]["rows"] == 15
    assert items[("MMLU", "auxiliary_train", "train")]["rows"] == 12
    assert items[("SmolTalk", "default", "train")]["rows"] == 18
    assert items[("SmolTalk", "default", "test")]["rows"] == 5
    assert items[("words_alpha.txt", "-", "-")]["rows"] == 250
    err = r.stderr.strip().splitlines()[-1]
    assert "GSM8K main/test" in err and "MMLU all/test" in err and "nanochat data fetch mid" in err


def test_status_without_data_names_the_fetch_command(run_cli):
    r = run_cli("data", "status", "sft", netns=True)
    assert r.returncode == 3
    assert "nanochat data fetch sft" in r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_tiktoken_seed_is_byte_identical_and_loads(home):
    import subprocess
    import sys

    from nanochat_cli.data.tiktoken_files import seed_tiktoken_cache
    from nanochat_cli.paths import Paths
    from tests.conftest import cli_env

    d = seed_tiktoken_cache(Paths(home))
    code = ("import tiktoken; e = tiktoken.get_encoding('gpt2'); c = tiktoken.get_encoding('cl100k_base');"
            "print(e.encode('Hello world, this is a test.'), c.n_vocab)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=cli_env({"TIKTOKEN_CACHE_DIR": str(d)}), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[15496, 995, 11, 428, 318, 257, 1332, 13] 100277"
