"""Say where in the learner's file something happened: a line becomes "component at gpt.py:LINE", and an
exception becomes a Finding with the component, the line, the inputs the code had in hand and what the
reference returns for them.

Nothing is re-run to find the place: the innermost traceback frame in gpt.py gives the line and the
live locals (trace.locate_exception). The reference is called once more, on those locals, only for a
whole-function component; a region or a check by distribution shows its documented output shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from nanochat_cli.learn import guard, source
from nanochat_cli.learn.components import BY_NAME, COMPONENTS, Component
from nanochat_cli.learn.findings import Finding
from nanochat_cli.learn.swap import owner_of
from nanochat_cli.learn.trace import Location, bind_inputs, describe, detach, locate_exception

# One cause recognised from the message alone: cross-entropy on SFT targets (-1 marks positions to ignore).
IGNORE_INDEX_CAUSE = "targets contain -1 (positions to ignore): pass ignore_index=-1 to the cross-entropy"


@dataclass(frozen=True)
class Explainer:
    """The learner's file (path and the text it was loaded from) and the reference module it is held to."""

    file: Path
    text: str
    ref: ModuleType

    def where(self, line: int) -> str:
        return f"{self.file.name}:{line}"

    def name_line(self, line: int) -> str:
        """What `line` belongs to, for the guard's last-resort message."""
        comp = source.component_at(self.text, line, COMPONENTS)
        return f"{comp or 'module-level code'} at {self.where(line)}"

    def component_where(self, name: str) -> str | None:
        """The first line of a component's code: where a mismatch points."""
        try:
            return self.where(source.locate(self.text, BY_NAME[name]).start + 1)
        except Exception:  # noqa: BLE001 - no line is better than a crash
            return None

    def exception(self, exc: BaseException, stage: str, model=None, ref_model=None) -> Finding:
        """The finding for `exc`, raised while `stage` ran. `model` and `ref_model` (same weights) let the
        expected output of a method be computed on the submodule that raised."""
        loc = locate_exception(exc, self.file, prefer=self._in_component)
        stopped = isinstance(exc, (guard.Stopped, SystemExit))
        if loc is None:
            if stopped:
                return Finding("error", None, f"{stage}: {guard.stopped_message(exc)}")
            return Finding("error", None, f"{stage} failed outside gpt.py: {type(exc).__name__}: {exc}")
        # The component whose lines hold it, else the function component whose frame raised it.
        name = source.component_at(self.text, loc.line, COMPONENTS) or next(
            (c.name for c in COMPONENTS if c.target == loc.qualname and not c.is_region), None)
        comp = BY_NAME.get(name) if name else None
        if isinstance(exc, NotImplementedError):
            kind, message = "todo", (f"{comp.title}: {comp.computes}" if comp else str(exc))
        elif stopped:
            kind, message = "error", f"{stage}: {guard.stopped_message(exc)}"
        else:
            kind, message = "error", f"{type(exc).__name__}: {exc}"
        cause = IGNORE_INDEX_CAUSE if "out of bounds" in str(exc) and "-1" in str(exc) else None
        return Finding(kind, name, message, where=self.where(loc.line), inputs=self._live_inputs(comp, loc),
                       expected=self.expected_output(comp, loc.locals, model, ref_model) if comp else None,
                       cause=cause, code=loc.source_line)

    def _in_component(self, loc: Location) -> bool:
        return source.component_at(self.text, loc.line, COMPONENTS) is not None

    def _live_inputs(self, comp: Component | None, loc: Location) -> dict[str, str]:
        """What the failing code had in hand: the component's declared debug values if it has some, else
        the function's parameters (every local for a region, or when none of them is bound), at most 8."""
        if loc.qualname == "<module>":
            return {}  # a module's locals are its globals: nothing the learner passed in
        if comp is not None and comp.debug:
            values = {n: _resolve(n, loc.locals) for n in comp.debug}
            return {n: describe(v) for n, v in values.items() if v is not _MISSING}
        names = [n for n in loc.locals if n != "self"]
        if comp is None or not comp.is_region:
            params = source.function_params(self.text, loc.qualname)
            names = [n for n in params if n in loc.locals] or names
        return {n: describe(loc.locals[n]) for n in names[:8]}

    def expected_output(self, comp: Component, values: dict, model, ref_model) -> str | None:
        """What the reference returns for these inputs; else the documented output."""
        documented = next((s[5:] for s in comp.shapes if s.startswith("out:")), None)
        if comp.is_region or comp.check in ("init", "buffers"):
            return documented
        owner, attr = owner_of(self.ref, comp.target)
        fn = getattr(owner, attr)
        bound = bind_inputs(fn, values)
        if bound is None:
            return documented
        _, kwargs = bound
        try:
            with torch.no_grad():
                if isinstance(owner, type):
                    path = _module_path(model, values.get("self"))
                    if path is None or ref_model is None:
                        return documented
                    out = fn(ref_model.get_submodule(path), **detach(kwargs))
                else:
                    out = fn(**detach(kwargs))
        except Exception:  # noqa: BLE001 - the documented shape is still useful
            return documented
        return describe(out)


_MISSING = object()


def _resolve(name: str, values: dict):
    """`x` or `self.vocab_size` from a frame's locals; _MISSING when absent."""
    head, *rest = name.split(".")
    obj = values.get(head, _MISSING)
    for part in rest:
        obj = getattr(obj, part, _MISSING) if obj is not _MISSING else _MISSING
    return obj


def _module_path(model, obj) -> str | None:
    """The name under which `obj` is a submodule of `model`, so the reference's twin can be found."""
    if model is None or obj is None:
        return None
    for name, m in model.named_modules():
        if m is obj:
            return name
    return None
