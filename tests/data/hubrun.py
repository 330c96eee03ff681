"""Run a FakeHub and one `nanochat` command against it, in the same (possibly fresh) network namespace.

`python hubrun.py SPEC.json -- ARGS...`: serves SPEC (see fakehub.hub_from_spec), replaces `{URL}` in ARGS and in
the values of the NANOCHAT_*/HF_* environment with the server's URL, runs `python -m nanochat_cli ARGS`, and
prints one JSON document: the command's rc, stdout, stderr and the server's request log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fakehub import hub_from_spec  # noqa: E402


def main() -> None:
    spec_path, sep, *args = sys.argv[1:]
    assert sep == "--"
    hub = hub_from_spec(json.loads(Path(spec_path).read_text())).start()
    env = {k: (v.replace("{URL}", hub.url) if k.startswith(("NANOCHAT_", "HF_")) else v) for k, v in os.environ.items()}
    args = [a.replace("{URL}", hub.url) for a in args]
    p = subprocess.run([sys.executable, "-m", "nanochat_cli", *args], capture_output=True, text=True, env=env,
                       timeout=300)
    hub.stop()
    print(json.dumps({"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr, "log": hub.log}))


if __name__ == "__main__":
    main()
