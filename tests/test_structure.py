"""The package's structure stays as docs/explanation/architecture.md describes it: no import cycle between
packages or between modules (lazy imports inside functions count), no function over 120 lines (templates
aside), and no module importing another module's private name. Run alone: `pytest tests/test_structure.py`."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "nanochat_cli"
PKG = "nanochat_cli"
MAX_FUNCTION_LINES = 120


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str]]:
    """(imported module, imported name or "") for every import of the package in `path`, lazy ones too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.startswith(PKG):
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    out.append((full, "") if full in MODULES else (base, alias.name))
        elif isinstance(node, ast.Import):
            out.extend((a.name, "") for a in node.names if a.name.startswith(PKG))
    return out


def _edges(level) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        for target, _ in _imports(name, path):
            if target in MODULES and level(target) != level(name):
                graph.setdefault(level(name), set()).add(level(target))
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_packages():
    assert _cycles(_edges(lambda m: ".".join(m.split(".")[:2]))) == []


def test_no_import_cycle_between_modules():
    assert _cycles(_edges(lambda m: m)) == []


def test_no_function_is_longer_than_a_screen_and_a_half():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert long == []


def test_no_private_name_is_imported_across_modules():
    private = [f"{name} <- {target}.{imported}" for name, path in MODULES.items()
               for target, imported in _imports(name, path)
               if imported.startswith("_") and not imported.startswith("__")]
    assert private == []


def test_the_checker_sees_a_cycle_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_one_phase_list_parser():
    import pytest

    from nanochat_cli.errors import UsageError
    from nanochat_cli.phase_list import parse_phase_list

    phases = ("base", "mid", "sft")
    assert parse_phase_list("mid,sft", phases, "--phases") == ("mid", "sft")
    assert parse_phase_list("all", phases, "--phase", {"all": phases, "none": ()}) == phases
    assert parse_phase_list("none", phases, "--phase", {"all": phases, "none": ()}) == ()
    for bad, message in (("sft,mid", "in pipeline order"), ("mid,mid", "in pipeline order"),
                         ("rlhf", "unknown phase(s) rlhf"), ("", "unknown phase(s) ''")):
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse_phase_list(bad, phases, "--phases")
