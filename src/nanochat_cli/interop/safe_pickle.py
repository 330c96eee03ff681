"""nanochat's tokenizer.pkl read without running anything it asks for.

nanochat saves its tokenizer as `pickle.dump(tiktoken.Encoding)`. tiktoken pickles an Encoding as its class
(`tiktoken.core.Encoding`, created empty by NEWOBJ) plus a state dict {name, pat_str, mergeable_ranks,
special_tokens} applied by BUILD; protocol 2 adds `_codecs.encode(text, "latin1")` calls to spell bytes. A pickle
can call any importable function (`os.system` in a `__reduce__`), so the unpickler here resolves exactly those two
globals, and to inert stand-ins: `Encoding` becomes a class that only stores the state it is given (tiktoken's own
`__setstate__` would build an encoder, or fetch a named one from the network), `_codecs.encode` a function that
only turns a str into latin-1 bytes. Every other global, persistent id or extension code is refused before it is
resolved, so a hostile file fails with one line and executes nothing. The state is then checked by type; building
the real tokenizer is the caller's business.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from nanochat_cli.errors import UsageError

MAX_BYTES = 256 << 20  # a 1 M-token vocabulary pickles to ~20 MB; anything far larger is not a tokenizer
STATE_KEYS = {"name", "pat_str", "mergeable_ranks", "special_tokens"}


class EncodingState:
    """Stands in for tiktoken.core.Encoding while unpickling: keeps the state, builds nothing."""

    def __setstate__(self, state) -> None:
        self.state = state


def _latin1_bytes(text, encoding):
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("_codecs.encode is allowed only as (str, 'latin1')")
    return text.encode("latin1")


ALLOWED = {("tiktoken.core", "Encoding"): EncodingState, ("_codecs", "encode"): _latin1_bytes}


class TiktokenUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("it uses persistent ids")


def _refuse(path: Path, why: str) -> UsageError:
    return UsageError(f"{path} is not a plain tiktoken Encoding pickle: {why}; nothing in it was run",
                      "use the tokenizer.pkl that nanochat's tok_train.py wrote")


def load_encoding_state(path: Path) -> dict:
    """{name, pat_str, mergeable_ranks: {bytes: int}, special_tokens: {str: int}} from a tokenizer.pkl, or a
    UsageError (exit 2) saying why it is not one."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _refuse(path, f"it is {size / 2**20:.0f} MB")
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist", "pass the nanochat tokenizer directory (tokenizer.pkl, "
                                                   "token_bytes.pt) with --tokenizer") from None
    except OSError as e:
        raise UsageError(f"{path} cannot be read ({e.strerror or e})") from None
    try:
        obj = TiktokenUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as e:
        raise _refuse(path, str(e) or "malformed") from None
    except RecursionError:
        raise _refuse(path, "it nests too deeply") from None
    except Exception as e:  # noqa: BLE001 - a truncated or garbled stream raises EOFError, ValueError, TypeError, …
        raise _refuse(path, f"it does not unpickle ({e.__class__.__name__})") from None
    if not isinstance(obj, EncodingState):
        raise _refuse(path, f"it holds a {type(obj).__name__}")
    state = getattr(obj, "state", None)
    if isinstance(state, str):
        raise _refuse(path, f"it names tiktoken's registered encoding {state[:40]!r} instead of holding one")
    if not isinstance(state, dict) or set(state) != STATE_KEYS:
        keys = sorted(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise _refuse(path, f"its state is {keys}, not {sorted(STATE_KEYS)}")
    ranks, specials = state["mergeable_ranks"], state["special_tokens"]
    if not isinstance(state["pat_str"], str) or not isinstance(state["name"], str):
        raise _refuse(path, "its name or pattern is not a string")
    if not isinstance(ranks, dict) or not all(isinstance(k, bytes) and type(v) is int for k, v in ranks.items()):
        raise _refuse(path, "its mergeable_ranks is not a map of bytes → int")
    if not isinstance(specials, dict) or not all(isinstance(k, str) and type(v) is int for k, v in specials.items()):
        raise _refuse(path, "its special_tokens is not a map of str → int")
    return state
