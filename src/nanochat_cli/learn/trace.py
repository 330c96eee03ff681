"""Record what each component of the learner's model receives and returns, and turn an exception raised
inside their file into "component, gpt.py:LINE, the live inputs".

Recording works by wrapping the learner's functions and methods in place (module globals and class
attributes) for the duration of one forward pass, so their code runs unchanged and the inputs are the
real ones their own earlier components produced; each call costs one detached copy of its tensors
(~100 KB at the tiny config). Checking a component then means calling the reference's counterpart on
exactly those inputs, with the same weights: a bug is localised to the component that has it.
Exceptions are located from the traceback (the innermost frame in the learner's file); nothing is
re-executed to find them.
"""

from __future__ import annotations

import functools
import inspect
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch


def detach(x: Any) -> Any:
    """A copy of `x` with every tensor detached and cloned (containers rebuilt, the rest as is)."""
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, tuple):
        return tuple(detach(v) for v in x)
    if isinstance(x, list):
        return [detach(v) for v in x]
    if isinstance(x, dict):
        return {k: detach(v) for k, v in x.items()}
    return x


def describe(x: Any) -> str:
    """`(4, 32, 64) float32` for a tensor; containers element-wise; other values by repr (short)."""
    if isinstance(x, torch.Tensor):
        return f"{tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
    if isinstance(x, (tuple, list)) and x and len(x) <= 4:
        inner = ", ".join(describe(v) for v in x)
        return f"({inner})" if isinstance(x, tuple) else f"[{inner}]"
    if isinstance(x, torch.nn.Module):
        return type(x).__name__
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class Call:
    component: str
    qualname: str
    path: str | None  # submodule path for methods ("transformer.h.0.attn"), None for functions
    args: tuple
    kwargs: dict
    output: Any
    start: int = 0
    end: int = 0


@dataclass
class Tracer:
    """Wraps the learner's component functions while active; `calls` is in call-start order."""

    module: ModuleType
    model: torch.nn.Module | None
    targets: dict[str, str]  # qualname -> component name (whole-function components only)
    calls: list[Call] = field(default_factory=list)
    _undo: list = field(default_factory=list)
    _clock: list = field(default_factory=lambda: [0])

    def __enter__(self) -> "Tracer":
        paths = {id(m): name for name, m in self.model.named_modules()} if self.model is not None else {}
        for qualname, comp in self.targets.items():
            owner_name, _, attr = qualname.rpartition(".")
            owner = self.module if not owner_name else getattr(self.module, owner_name, None)
            original = getattr(owner, attr, None) if owner is not None else None
            if original is None or attr == "__init__" or isinstance(original, property):
                continue
            wrapper = self._wrap(original, comp, qualname, paths, is_method=bool(owner_name))
            patch(owner, attr, wrapper, self.model, self._undo)
        return self

    def __exit__(self, *exc) -> None:
        unpatch(self._undo)

    def _wrap(self, fn, comp, qualname, paths, is_method):
        calls, clock = self.calls, self._clock

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            slot = len(calls)
            calls.append(None)  # reserve the slot: the list is in the order calls start
            start = clock[0] = clock[0] + 1
            out = fn(*args, **kwargs)
            end = clock[0] = clock[0] + 1
            path = paths.get(id(args[0])) if is_method and args else None
            rest = args[1:] if is_method else args
            calls[slot] = Call(comp, qualname, path, detach(rest), detach(kwargs), detach(out), start, end)
            return out

        return wrapper

    def finished(self) -> list[Call]:
        return [c for c in self.calls if c is not None]


def patch(owner, attr: str, new, model, undo: list) -> None:
    """Set `owner.attr = new`, and every attribute of `model`'s submodules that holds the old function
    (a module may keep a function it was built with, e.g. `self.attend = sdpa_attention`)."""
    old = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
    undo.append((owner, attr, old))
    setattr(owner, attr, new)
    if model is None or isinstance(old, property):
        return
    for m in model.modules():
        for name, value in list(vars(m).items()):
            if value is old:
                undo.append((m, name, old))
                setattr(m, name, new)


def unpatch(undo: list) -> None:
    for owner, attr, old in reversed(undo):
        setattr(owner, attr, old)
    undo.clear()


@dataclass
class Location:
    """Where an exception was raised in the learner's file, and what the function had in hand."""

    line: int
    qualname: str
    locals: dict[str, Any]
    source_line: str


def locate_exception(exc: BaseException, user_file: Path, prefer=None) -> Location | None:
    """The innermost frame of the traceback that runs code from `user_file`; with `prefer` (a predicate
    on a Location), the innermost such frame it accepts, e.g. the component that called a helper
    (`Linear.forward`) where the error surfaced."""
    user_file = Path(user_file).resolve()
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        try:
            same = Path(code.co_filename).resolve() == user_file
        except OSError:
            same = False
        if same:
            frames.append(tb)
        tb = tb.tb_next
    if not frames:
        if isinstance(exc, SyntaxError) and exc.lineno and exc.filename and \
                Path(exc.filename).resolve() == user_file:
            return Location(exc.lineno, "<module>", {}, (exc.text or "").strip())
        return None
    locations = []
    for found in reversed(frames):
        frame = found.tb_frame
        qualname = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
        summary = traceback.extract_tb(found, limit=1)[0]
        locations.append(Location(found.tb_lineno, qualname, dict(frame.f_locals), (summary.line or "").strip()))
    if prefer is not None:
        for loc in locations:
            if prefer(loc):
                return loc
    return locations[0]


def bind_inputs(fn, values: dict[str, Any]) -> tuple[list[str], dict[str, Any]] | None:
    """The arguments of `fn` (by parameter name) found in a frame's locals; None if any is missing."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    bound = {}
    for name, p in params.items():
        if name == "self":
            continue
        if name in values:
            bound[name] = values[name]
        elif p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            return None
    return list(bound), bound
