"""Where a configuration comes from: profiles, the `--config` file, `.env.local`, the `NANOCHAT_*`
environment and flags, layered with provenance into the one `Config` (config.py), plus the TOML writer runs
use to store it.

Precedence, highest first: explicit CLI flags > `NANOCHAT_*` env (`__` nests) > `.env.local` > `--config
FILE.toml` > `--profile NAME` (default `cpu-tiny`) > field defaults. Each layer is kept as its own nested dict
so `config show` can name where every value came from; they are deep-merged and validated once. This module
reads `os.environ` (through pydantic-settings' parser) so that nothing else has to.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import EnvSettingsSource

from nanochat_cli.config import DEFAULT_PROFILE, Config
from nanochat_cli.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


# ---------------------------------------------------------------------------------------------------
# Profiles and layering

@dataclass
class Layers:
    """The raw nested dicts of each source, lowest precedence first, as loaded (before validation)."""

    profile: dict[str, Any] = field(default_factory=dict)
    file: dict[str, Any] = field(default_factory=dict)
    env_local: dict[str, Any] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    flag: dict[str, Any] = field(default_factory=dict)

    def ordered(self) -> list[tuple[str, dict[str, Any]]]:
        return [("profile", self.profile), ("file", self.file), ("env.local", self.env_local), ("env", self.env),
                ("flag", self.flag)]

    def source_of(self, dotted_key: str) -> str:
        """The highest layer that sets this key, or "default"."""
        src = "default"
        for name, layer in self.ordered():
            if dotted_key in flatten(layer):
                src = name
        return src


def _profiles_dir():
    return resources.files("nanochat_cli") / "profiles"


def profile_names() -> list[str]:
    return sorted(p.name[:-5] for p in _profiles_dir().iterdir() if p.name.endswith(".toml"))


def profile_descriptions() -> dict[str, str]:
    """Profile name → its one-line description (the `description` key at the top of its TOML)."""
    out = {}
    for name in profile_names():
        data = tomllib.loads((_profiles_dir() / f"{name}.toml").read_text(encoding="utf-8"))
        out[name] = str(data.get("description", ""))
    return out


def _read_toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"{where} is not valid TOML: {e}", "correct the syntax at that line") from None


def load_profile(name: str) -> dict[str, Any]:
    names = profile_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(names)}"
        raise UsageError(f"unknown profile '{name}'", f"{hint} (`nanochat config profiles` lists them)")
    data = _read_toml((_profiles_dir() / f"{name}.toml").read_text(encoding="utf-8"), f"profile {name}")
    data.pop("description", None)
    return data


def load_config_file(path: Path | str) -> dict[str, Any]:
    if not str(path).strip():
        raise UsageError("--config is empty", "pass the path of a .toml file, or leave --config out")
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"config file {path} does not exist", "pass the path of an existing .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read config file {path}: {e}") from None
    return _read_toml(text, f"config file {path}")


def read_env_layer(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The `NANOCHAT_*` variables as a nested dict of strings (pydantic-settings' own parser)."""
    env = dict(os.environ if environ is None else environ)
    # The profile is chosen by NANOCHAT_PROFILE (see load_config), not layered as a value.
    env.pop("NANOCHAT_PROFILE", None)
    source = EnvSettingsSource(Config, env_prefix="NANOCHAT_", env_nested_delimiter="__", case_sensitive=False)
    source.env_vars = {k.lower(): v for k, v in env.items()}
    try:
        return source()
    except Exception as e:  # pydantic-settings raises SettingsError for e.g. malformed JSON lists
        raise UsageError(f"bad NANOCHAT_* environment value: {e}", "fix or unset that variable") from None


# NANOCHAT_* variables nanochat reads outside the config model (HOME is also the `home` field).
DOCUMENTED_ENV = ("NANOCHAT_HOME", "NANOCHAT_PROFILE", "NANOCHAT_DEBUG",
                  "NANOCHAT_LAUNCH_DIR", "NANOCHAT_LAUNCHER_PID")  # the last two: set by launch.py for its workers


def unread_env_warnings(environ: dict[str, str], where: str = "") -> list[str]:
    """One line per NANOCHAT_* variable that nothing reads, with the nearest real name.

    pydantic-settings only looks up the variables of fields it knows, so NANOCHAT_TRAINN__SEED=1 is dropped in
    silence and the run trains with seed 42. A misspelled key under a known section (NANOCHAT_TRAIN__SEEED) is
    already an error (check_unknown_keys); this covers the section part and plain names. Warn, don't fail:
    other tools share the prefix (upstream nanochat reads NANOCHAT_DTYPE; NANOCHAT_BASE_DIR is an alias)."""
    sections = [n.upper() for n, f in Config.model_fields.items()  # a list: the hints must not depend on hashing
                if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)]
    names = [v.removeprefix("NANOCHAT_") for v in DOCUMENTED_ENV] + [n.upper() for n in Config.model_fields]
    names += [f"{sec}__{key.upper()}" for sec in sections
              for key in Config.model_fields[sec.lower()].annotation.model_fields]
    out = []
    for var in sorted(environ):
        upper = var.upper()
        if not upper.startswith("NANOCHAT_"):
            continue
        rest = upper.removeprefix("NANOCHAT_")
        if rest in names or ("__" in rest and rest.partition("__")[0] in sections) or upper in ENV_ALIASES:
            continue
        close = difflib.get_close_matches(rest, names, n=1)
        if not close:  # a bare key (NANOCHAT_DTYPE, as upstream nanochat spells it): the field of that name
            keys = {n.partition("__")[2]: n for n in reversed(names) if "__" in n}
            close = [keys[k] for k in difflib.get_close_matches(rest, list(keys), n=1)]
        hint = (f"did you mean NANOCHAT_{close[0]}?" if close else
                "settings are NANOCHAT_<SECTION>__<KEY> (e.g. NANOCHAT_TRAIN__SEED; `nanochat config show` lists the keys)")
        out.append(f"{var}{where} is not a nanochat setting and is ignored; {hint}")
    return out


# Names the nanochat fork's job scripts export, read as their nanochat-cli names so those scripts keep working.
ENV_ALIASES = {"NANOCHAT_BASE_DIR": "NANOCHAT_HOME", "WANDB_RUN": "NANOCHAT_TRACK__RUN"}


def apply_env_aliases(env: dict[str, str]) -> tuple[dict[str, str], str | None]:
    """`env` with each alias copied to its nanochat-cli name (the real name wins when both are set), and the
    one-line notice to print, naming the variables to use instead (None when no alias is set)."""
    used = [(old, new) for old, new in ENV_ALIASES.items() if old in env]
    if not used:
        return env, None
    env = dict(env)
    parts = []
    for old, new in used:
        if new in env:
            parts.append(f"{old} is ignored because {new} is set")
        else:
            env[new] = env[old]
            parts.append(f"{old} is read as {new}")
    return env, "; ".join(parts) + " (the fork's names; set " + " and ".join(new for _, new in used) + " instead)"


def check_unknown_keys(data: dict[str, Any], where: str, model: type[BaseModel] = Config, prefix: str = "") -> None:
    """Reject keys the model does not have, with a did-you-mean (pydantic's message lacks one)."""
    fields = model.model_fields
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known keys: {', '.join(fields)}"
            raise UsageError(f"unknown key '{dotted}' in {where}", hint)
        sub = fields[key].annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            if not isinstance(value, dict):
                raise UsageError(f"'{dotted}' in {where} must be a table of settings, got {value!r}",
                                 f"write it as [{dotted}] with key = value lines")
            check_unknown_keys(value, where, sub, prefix=f"{dotted}.")


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def unflatten(dotted: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


# ---------------------------------------------------------------------------------------------------
# .env.local: per-user, per-checkout settings (mail address, account) kept out of git. It is a layer just
# below the real environment, so `NANOCHAT_SLURM__MAIL_USER=x nanochat ...` still wins over the file.

ENV_LOCAL_FILE = ".env.local"


def read_env_local(path: Path) -> dict[str, str]:
    """The NANOCHAT_* assignments of a dotenv file (`KEY=VALUE`, optional `export `, `#` comments,
    '...' or "..." quotes; no interpolation). Other keys are ignored; a missing file is empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}", f"fix or remove {path}") from None
    out: dict[str, str] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)", line)
        if not m:
            raise UsageError(f"{path} line {n} is not KEY=VALUE: {raw.strip()!r}", "write it as NANOCHAT_X__Y=value")
        key, value = m.group(1), m.group(2)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:  # an unquoted value ends at an inline comment
            value = value.split(" #", 1)[0].rstrip()
        if key.upper().startswith("NANOCHAT_"):
            out[key] = value
    return out


@dataclass
class Resolved:
    """A validated Config plus the layers it came from (for `config show`)."""

    config: Config
    layers: Layers
    warnings: list[str] = field(default_factory=list)
    """Problems that do not stop the command (an unread NANOCHAT_* variable); the CLI prints them."""

    def source_of(self, dotted_key: str) -> str:
        return self.layers.source_of(dotted_key)


_BOUND_ERRORS = ("greater_than_equal", "greater_than", "less_than_equal", "less_than")


def _range_message(loc: tuple, value: Any) -> str | None:
    """'must be between 0 and 4294967295, got 1e23' from a field's bounds: pydantic names only the bound that
    failed, so a user who passed a too-large value does not learn the lower end (or the other way round)."""
    model: Any = Config
    info = None
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        info = fields[part]
        model = info.annotation
    if info is None:
        return None
    lo = hi = None
    for m in info.metadata:
        for attr, word in (("ge", "at least"), ("gt", "more than")):
            if getattr(m, attr, None) is not None:
                lo = (word, getattr(m, attr))
        for attr, word in (("le", "at most"), ("lt", "less than")):
            if getattr(m, attr, None) is not None:
                hi = (word, getattr(m, attr))
    shown = str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."
    if lo and hi and lo[0] == "at least" and hi[0] == "at most":
        return f"must be between {lo[1]} and {hi[1]}, got {shown}"
    parts = [f"{word} {bound}" for word, bound in filter(None, (lo, hi))]
    return f"must be {' and '.join(parts)}, got {shown}" if parts else None


def _describe_validation_error(err: ValidationError, layers: Layers) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if p != "__root__")
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] in _BOUND_ERRORS:
        msg = _range_message(first["loc"], first.get("input")) or msg
    elif first["type"] == "finite_number":
        msg = f"must be a finite number, got {first.get('input')}"
    if not loc:
        return f"invalid combination: {msg}"
    where = {"env": f" (from env NANOCHAT_{loc.upper().replace('.', '__')})",
             "flag": " (from --home)" if loc == "home" else " (from a flag)",
             "file": " (from the --config file)", "profile": " (from the profile)",
             "env.local": f" (from NANOCHAT_{loc.upper().replace('.', '__')} in .env.local)"}.get(layers.source_of(loc), "")
    return f"invalid value for {loc}{where}: {msg}"


def _profile_name(flag: str | None, env: dict[str, str], env_local: dict[str, str]) -> str:
    """The profile to start from: --profile, else NANOCHAT_PROFILE (env, then .env.local), else the default.
    An empty name is an error, not "the default": `--profile "$P"` with P unset is a mistake worth seeing."""
    for value, where in ((flag, "--profile"), (env.get("NANOCHAT_PROFILE"), "NANOCHAT_PROFILE"),
                         (env_local.get("NANOCHAT_PROFILE"), f"NANOCHAT_PROFILE in {ENV_LOCAL_FILE}")):
        if value is None:
            continue
        if not value.strip():
            raise UsageError(f"{where} is empty", f"name a profile: {', '.join(profile_names())} "
                                                  f"(or leave it out for {DEFAULT_PROFILE})")
        return value
    return DEFAULT_PROFILE


def load_config(profile: str | None = None, config_file: Path | None = None,
                flags: dict[str, Any] | None = None, environ: dict[str, str] | None = None) -> Resolved:
    """Build the one Config for a command. `flags` holds only options the user actually set
    (dotted keys, e.g. {"train.device_batch_size": 8}); None values are ignored."""
    env, alias_note = apply_env_aliases(dict(os.environ if environ is None else environ))
    # .env.local is read only for the real environment (tests that pass `environ` stay hermetic).
    env_local, local_note = apply_env_aliases(read_env_local(Path(ENV_LOCAL_FILE)) if environ is None else {})
    name = _profile_name(profile, env, env_local)
    layers = Layers(profile=load_profile(name))
    layers.profile["profile"] = name
    check_unknown_keys(layers.profile, f"profile {name}")
    if config_file is not None:
        layers.file = load_config_file(config_file)
        check_unknown_keys(layers.file, f"config file {config_file}")
    layers.env_local = read_env_layer(env_local)
    check_unknown_keys(layers.env_local, ENV_LOCAL_FILE)
    layers.env = read_env_layer(env)
    check_unknown_keys(layers.env, "the NANOCHAT_* environment")
    layers.flag = unflatten({k: v for k, v in (flags or {}).items() if v is not None})
    check_unknown_keys(layers.flag, "flags")
    merged: dict[str, Any] = {}
    for _, layer in layers.ordered():
        merged = deep_merge(merged, layer)
    try:
        cfg = Config(**merged)
    except ValidationError as e:
        raise UsageError(_describe_validation_error(e, layers)) from None
    warnings = unread_env_warnings(env_local, f" (in {ENV_LOCAL_FILE})") + unread_env_warnings(env)
    warnings += [note for note in (alias_note, local_note and f"{ENV_LOCAL_FILE}: {local_note}") if note]
    return Resolved(cfg, layers, warnings)


def dump_toml(data: dict[str, Any]) -> str:
    """Minimal TOML writer for our own config dicts (scalars, lists of scalars, one level of tables)."""
    import json

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string

    top = [f"{k} = {val(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [f"\n[{k}]\n" + "\n".join(f"{kk} = {val(vv)}" for kk, vv in v.items())
              for k, v in data.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "\n".join(tables) + "\n"
