"""Stand the reference's code in for the learner's, component by component, for the length of a `with`.

`learn status` and `check` run the learner's model with every TODO swapped for the reference, and each
component is checked with every *other* component swapped, so one bug is reported once, where it is.
A swap sets module globals and class attributes in place (and submodule attributes that hold the old
function, like `self.attend`), so the learner's module and model objects stay the ones they built;
nothing is copied or recompiled.
"""

from __future__ import annotations

import contextlib
from types import ModuleType

from nanochat_cli.learn.trace import patch, unpatch


def owner_of(module: ModuleType, qualname: str) -> tuple[object, str]:
    """(`GPT`, "forward") for "GPT.forward"; (the module, "norm") for "norm"."""
    owner_name, _, attr = qualname.rpartition(".")
    return (getattr(module, owner_name) if owner_name else module), attr


def function_of(module: ModuleType, qualname: str):
    """The function `qualname` names, taken from a class's own `__dict__` so a staticmethod or a property
    comes back as the object that is stored, which is what `patch` swaps."""
    owner, attr = owner_of(module, qualname)
    return owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)


@contextlib.contextmanager
def swapped(user_mod: ModuleType, ref_mod: ModuleType, comps, model=None):
    """Temporarily replace the learner's functions for `comps` with the reference's (by qualname), also
    where `model`'s submodules hold the learner's function as an attribute."""
    undo: list = []
    try:
        for qualname in sorted({c.target for c in comps}):
            owner, attr = owner_of(user_mod, qualname)
            patch(owner, attr, function_of(ref_mod, qualname), model, undo)
        yield
    finally:
        unpatch(undo)
