"""Fixtures for data tests: a FakeHub in this process, and `hub_cli` that runs a server plus one `nanochat`
command together in a fresh network namespace (when root), so nothing can leave the machine."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import cli_env, in_netns
from tests.data.fakehub import FakeHub

HERE = Path(__file__).parent


@pytest.fixture
def fake_hub():
    hub = FakeHub().start()
    yield hub
    hub.stop()


@dataclass
class HubRun:
    rc: int
    stdout: str
    stderr: str
    log: list[str]

    def requests(self, needle: str) -> list[str]:
        return [line for line in self.log if needle in line]


@pytest.fixture
def hub_cli(home, tmp_path):
    """hub_cli(files={url_path: bytes}, repos={repo: {path: bytes}}, faults=[...], args=[...], env={...})."""
    store = tmp_path / "served"
    counter = iter(range(10**6))

    def put(data: bytes) -> str:
        store.mkdir(exist_ok=True)
        p = store / f"{next(counter)}.bin"
        p.write_bytes(data)
        return str(p)

    def run(*args: str, files=None, repos=None, faults=None, env=None, timeout=240) -> HubRun:
        spec = {"files": {k: put(v) for k, v in (files or {}).items()},
                "repos": {r: {p: put(b) for p, b in fs.items()} for r, fs in (repos or {}).items()},
                "faults": faults or []}
        spec_path = tmp_path / f"spec{next(counter)}.json"
        spec_path.write_text(json.dumps(spec))
        cmd = in_netns([sys.executable, str(HERE / "hubrun.py"), str(spec_path), "--", *args])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env=cli_env({"NANOCHAT_HOME": str(home), "NANOCHAT_DATA__BACKOFF": "0.01",
                                        **(env or {})}))
        assert p.returncode == 0, p.stderr[-3000:]
        return HubRun(**json.loads(p.stdout))

    return run
