"""Import a learner's `gpt.py` from its path, and hand its `GPT` class to the training pipeline.

The module is imported with importlib from the file itself (not from sys.path), under a name derived
from its absolute path, so two workspaces never shadow each other and tracebacks point at the
learner's real file and line. `load_user_model_class` is what `train base --model FILE` uses: it
refuses (UsageError, exit 2) a file that does not import, lacks `GPT`/`GPTConfig`, still has TODOs,
or whose parameters differ in name or shape from the reference's (checkpoints and the optimizer groups
rely on those names); `build_user_model` then builds it for the training loop. The check builds the
model on the meta device, so it costs ~50 ms and no memory. It does not check numbers: that is
`nanochat learn check`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from nanochat_cli.errors import UsageError


def module_name(path: Path) -> str:
    digest = hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:12]
    return f"nanochat_learn_user_{digest}"


def load_module(path: Path) -> ModuleType:
    """Execute the file as a fresh module. Errors while importing propagate with their traceback (the
    caller decides how to show them); a missing file is a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model file {path} does not exist", "pass the gpt.py of your learn workspace")
    name = module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path} cannot be imported as a Python module", "pass a .py file")
    module = importlib.util.module_from_spec(spec)
    # dataclasses and pickling look the module up by name while it executes.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _user_frame_line(path: Path, exc: BaseException) -> str:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"{path.name}:{exc.lineno}"
    for fs in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(fs.filename).resolve() == path.resolve():
            return f"{path.name}:{fs.lineno}"
    return path.name


def load_user_model_class(path: Path | str) -> type:
    """The learner's `GPT` class, validated to be a drop-in for the reference `nanochat_cli.model.gpt.GPT`:
    `GPT(reference GPTConfig)` builds, has `init_weights`/`forward`, and its parameters have the
    reference's names and shapes. Raises UsageError (exit 2) with the fix otherwise."""
    path = Path(path).expanduser()
    try:
        module = load_module(path)
    except UsageError:
        raise
    except NotImplementedError as e:
        raise UsageError(f"{_user_frame_line(path, e)}: not implemented yet: {e}",
                         f"finish it with `nanochat learn step {path.parent}`") from None
    except Exception as e:
        raise UsageError(f"{_user_frame_line(path, e)}: importing your model failed: {type(e).__name__}: {e}",
                         f"fix it; `nanochat learn step {path.parent}` shows the details") from None

    from nanochat_cli.learn import source
    from nanochat_cli.learn.components import COMPONENTS

    cls = getattr(module, "GPT", None)
    import torch

    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise UsageError(f"{path} has no class `GPT` (a torch.nn.Module)", "keep the class name of the skeleton")
    text = path.read_text(encoding="utf-8")
    todo = [c.name for c in COMPONENTS if source.is_todo(text, c)]
    if todo:
        raise UsageError(f"{path} still has TODOs: {', '.join(todo)}",
                         f"implement them (`nanochat learn step {path.parent}`) before training with --model")
    for method in ("init_weights", "forward"):
        if not callable(getattr(cls, method, None)):
            raise UsageError(f"{path}: GPT has no method `{method}`", "keep the methods of the skeleton")
    _check_parameters(cls, path)
    return cls


def _check_parameters(cls: type, path: Path) -> None:
    """Build a tiny user model and the reference on the meta device; names and shapes must agree."""
    import torch

    from nanochat_cli.learn.harness import TINY
    from nanochat_cli.model import gpt as ref

    config = ref.GPTConfig(**TINY)
    with torch.device("meta"):
        try:
            mine = cls(config)
        except Exception as e:
            raise UsageError(f"{_user_frame_line(path, e)}: GPT(config) failed: {type(e).__name__}: {e}",
                             f"`nanochat learn step {path.parent}` shows where") from None
        theirs = ref.GPT(config)
    a = {k: tuple(v.shape) for k, v in mine.state_dict().items()}
    b = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    if a != b:
        missing = sorted(set(b) - set(a))
        extra = sorted(set(a) - set(b))
        shape = sorted(k for k in set(a) & set(b) if a[k] != b[k])
        parts = ([f"missing {', '.join(missing[:4])}"] if missing else []) + \
                ([f"unexpected {', '.join(extra[:4])}"] if extra else []) + \
                [f"{k} is {a[k]} not {b[k]}" for k in shape[:4]]
        raise UsageError(f"{path}: GPT's parameters differ from the reference: {'; '.join(parts)}",
                         "keep the parameter names and shapes of the skeleton (`nanochat learn check`)")


def build_user_model(cls: type, gpt_config, device, dtype):
    """The learner's model (`cls`, from `load_user_model_class`), ready for the training loop: built from the
    reference `GPTConfig`, initialised by *their* `init_weights`, moved to `device`, computing in `dtype`.

    Deliberately not `model.compiled.prepare_for_training`: that binds the reference's `GPT.forward` and a
    chunked loss head of its own, so the learner's logits, loss and attention kernel would not run.
    The cost is speed (no compile, full logits in memory): fine for the sizes a learner trains."""
    import torch

    with torch.device("meta"):
        model = cls(gpt_config)
    model = model.to_empty(device=device)
    model.init_weights()
    if hasattr(model, "compute_dtype"):
        model.compute_dtype = dtype
    return model
