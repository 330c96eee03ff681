"""Find, cut and splice the code of one learn-mode component in a GPT module's source text.

A component is a whole function or method (found by qualified name with `ast`, so it survives any edit
elsewhere in the file) or a region inside one: in a workspace between `# <learn:NAME>` and
`# </learn:NAME>` marker lines, in the reference between the first lines matching the component's
start/end patterns. The skeleton, `reset`, `solution --apply` and the tests' "fill in one component"
are all the same operation: replace one span of lines. Working on text keeps the learner's comments
and layout; the cost is that a file that does not parse cannot be edited (the error gives the line).
Nothing here executes code.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass

from nanochat_cli.errors import UsageError

MARK_OPEN = "# <learn:{}>"
MARK_CLOSE = "# </learn:{}>"


@dataclass(frozen=True)
class Span:
    """Lines [start, end) (0-based) holding a component's body, and their indentation."""

    start: int
    end: int
    indent: str


def parse(text: str, filename: str = "gpt.py") -> ast.Module:
    try:
        return ast.parse(text, filename=filename)
    except SyntaxError as e:
        raise UsageError(f"{filename}:{e.lineno}: syntax error: {e.msg}",
                         f"fix the line, or start over with `nanochat learn init --force`") from None


def find_function(tree: ast.Module, qualname: str) -> ast.FunctionDef | None:
    """The def node for `name` or `Class.name` (nested classes allowed)."""
    body: list[ast.stmt] = tree.body
    *outer, last = qualname.split(".")
    for part in outer:
        cls = next((n for n in body if isinstance(n, ast.ClassDef) and n.name == part), None)
        if cls is None:
            return None
        body = cls.body
    return next((n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == last), None)


def function_span(lines: list[str], node: ast.FunctionDef) -> Span:
    """The body of a function without its docstring; comment lines right above the first statement
    belong to the body."""
    body = node.body
    first = body[0]
    has_doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    if has_doc:
        start = first.end_lineno  # 0-based index of the line after the docstring
    else:
        start = first.lineno - 1
        while start - 1 >= node.lineno and lines[start - 1].strip().startswith("#"):
            start -= 1
    end = node.end_lineno if not (has_doc and len(body) == 1) else first.end_lineno
    stmt = body[1] if has_doc and len(body) > 1 else first
    indent = re.match(r"\s*", lines[stmt.lineno - 1]).group(0)
    return Span(start, max(end, start), indent)


def _markers(lines: list[str], name: str) -> Span | None:
    o, c = MARK_OPEN.format(name), MARK_CLOSE.format(name)
    opens = [i for i, l in enumerate(lines) if l.strip() == o]
    closes = [i for i, l in enumerate(lines) if l.strip() == c]
    if not opens and not closes:
        return None
    if len(opens) != 1 or len(closes) != 1 or closes[0] < opens[0]:
        raise UsageError(f"gpt.py: the markers `{o}` … `{c}` are broken (each must appear once, in order)",
                         f"restore them around your {name} code")
    indent = re.match(r"\s*", lines[opens[0]]).group(0)
    return Span(opens[0] + 1, closes[0], indent)


def locate(text: str, comp, *, reference: bool = False) -> Span:
    """Where `comp`'s code lives in `text`. In a workspace a region is found by its markers; in the
    reference by the component's patterns."""
    lines = text.splitlines()
    tree = parse(text)
    node = find_function(tree, comp.target)
    if node is None:
        where = "the reference" if reference else "gpt.py"
        raise UsageError(f"{where} has no function `{comp.target}` (component {comp.name})",
                         "restore it, or `nanochat learn init --force` for a fresh skeleton")
    fspan = function_span(lines, node)
    if comp.start is None and comp.end is None:
        return fspan
    if not reference:
        span = _markers(lines, comp.name)
        if span is None:
            raise UsageError(f"gpt.py: cannot find the markers `{MARK_OPEN.format(comp.name)}` in `{comp.target}`",
                             f"put them back around your {comp.name} code")
        return span
    start = fspan.start
    if comp.start is not None:
        pattern = comp.start.removeprefix("after:")
        start = next((i for i in range(fspan.start, fspan.end) if re.search(pattern, lines[i])), None)
        if start is None:
            raise UsageError(f"reference `{comp.target}` has no line matching {pattern!r} (component {comp.name})")
        if comp.start.startswith("after:"):  # the first line after that compound statement's body
            own = _indent(lines[start])
            start += 1
            while start < fspan.end and (not lines[start].strip() or len(_indent(lines[start])) > len(own)):
                start += 1
    end = fspan.end
    if comp.end is not None:
        end = next((i for i in range(start + 1, fspan.end) if re.search(comp.end, lines[i])), fspan.end)
    return Span(start, end, re.match(r"\s*", lines[start]).group(0) or fspan.indent)


def _indent(line: str) -> str:
    return re.match(r"\s*", line).group(0)


def span_text(text: str, span: Span) -> str:
    """The span's lines, dedented."""
    return textwrap.dedent("\n".join(text.splitlines()[span.start:span.end]))


def _reindent(code: str, indent: str) -> list[str]:
    return [(indent + l) if l.strip() else "" for l in textwrap.dedent(code).splitlines()]


def replace(text: str, span: Span, code: str, *, region: str | None = None) -> str:
    """`text` with the span's lines replaced by `code` (re-indented); for a region the markers are kept
    (or added, when the span came from the reference)."""
    lines = text.splitlines()
    new = _reindent(code, span.indent)
    if region is not None:
        has_markers = span.start > 0 and lines[span.start - 1].strip() == MARK_OPEN.format(region)
        if not has_markers:
            new = [span.indent + MARK_OPEN.format(region), *new, span.indent + MARK_CLOSE.format(region)]
    out = lines[:span.start] + new + lines[span.end:]
    return "\n".join(out) + "\n"


def is_todo(text: str, comp) -> bool:
    """True while the component's code still raises NotImplementedError (static: no import)."""
    try:
        code = span_text(text, locate(text, comp))
    except UsageError:
        return True
    return bool(re.search(r"^\s*raise NotImplementedError\b", code, re.M))


def function_params(text: str, qualname: str) -> list[str]:
    node = find_function(parse(text), qualname)
    if node is None:
        return []
    return [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs if a.arg != "self"]


def component_at(text: str, lineno: int, components) -> str | None:
    """The component whose code holds 1-based `lineno` in a workspace file (regions first, they are nested)."""
    for comp in sorted(components, key=lambda c: c.start is None and c.end is None):
        try:
            span = locate(text, comp)
        except UsageError:
            continue
        if span.start < lineno <= span.end:
            return comp.name
    return None
