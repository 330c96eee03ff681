"""Mid/SFT phases: their training view of the config, the preflight (prerequisite checkpoint and every
dataset, checked before any model is built), `resume --from`, and a base→mid→sft run end to end."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nanochat_cli.errors import PreflightError, UsageError
from nanochat_cli.tokenizer.byte_level import ByteTokenizer
from nanochat_cli import checkpoint as ck
from nanochat_cli.train.chat_phases import mid_data, sft_data
from nanochat_cli.paths import Paths
from nanochat_cli.train.phases import load_phase_tokenizer, phase_view
from nanochat_cli.train.which_run import pick_run
from tests.tasks import hf_fixtures as F
from tests.train.conftest import TINY_TOML, write_shards

CHAT_TOML = """
[mid]
mixture = "{mixture}"
num_iterations = {iters}
eval_every = 0
eval_tokens = 512

[sft]
mixture = "{mixture}"
num_iterations = {iters}
device_batch_size = 2
examples_per_step = 4
eval_every = 0
eval_steps = 2
"""


def chat_config_file(tmp_path: Path, iters: int = 3, mixture: str = "packaged") -> Path:
    p = tmp_path / "chat.toml"
    base = TINY_TOML.format(iters=iters, eval_every=0, save_every=0, keep_last=2).replace("seq_len = 32",
                                                                                          "seq_len = 128")
    base = base.replace("total_batch_size = 128", "total_batch_size = 512")
    p.write_text(base + CHAT_TOML.format(iters=iters, mixture=mixture))
    return p


def chat_config(home: Path, tmp_path: Path, **kw):
    from nanochat_cli.config_sources import load_config

    return load_config(config_file=chat_config_file(tmp_path, **kw), flags={"home": str(home)}).config


def fake_checkpoint(cfg, phase: str, tokenizer_meta: dict | None = None, run: str = "r1") -> Path:
    """A real, finished checkpoint (checkpoint.save_checkpoint) of run `run` holding a stand-in weight: enough
    for finding and verifying it, not for loading it into a model."""
    import torch

    meta = {"phase": phase, "run_id": run, "num_iterations": 7,
            "tokenizer": tokenizer_meta or {"kind": "byte", "vocab_size": ByteTokenizer().vocab_size,
                                            "fingerprint": None}}
    return ck.save_checkpoint(Paths.of(cfg).run_checkpoints(run, phase), 7, {"w": torch.ones(3)}, [{}], meta)


def init_problem(cfg, phase: str) -> str | None:
    """Why `phase` has no checkpoint to start from, as the loop finds out (train/which_run.py)."""
    return pick_run(Paths.of(cfg), phase, None, None, resume=False).init_problem


# ------------------------------------------------------------------------------------------------
# the phase's view of the config

def test_phase_view_sft_uses_nanochat_schedule(home, tmp_path):
    cfg = chat_config(home, tmp_path)
    v = phase_view(cfg, "sft")
    assert v.train.device_batch_size == 2 and v.train.total_batch_size == 4 * 128
    assert v.train.matrix_lr == pytest.approx(cfg.train.matrix_lr * 0.02)
    assert (v.train.warmup_ratio, v.train.warmdown_ratio, v.train.final_lr_frac) == (0.0, 1.0, 0.0)
    assert cfg.train.matrix_lr == 0.02 and cfg.train.total_batch_size == 512  # the original is untouched
    assert phase_view(cfg, "base") is cfg
    m = phase_view(cfg, "mid")
    assert m.train.device_batch_size == cfg.train.device_batch_size and m.train.warmdown_ratio == 0.2
    assert m.train.num_iterations == 3


def test_phase_view_rejects_uneven_sft_batches(home, tmp_path):
    cfg = chat_config(home, tmp_path)
    cfg.sft.examples_per_step = 3
    with pytest.raises(UsageError, match="sft.examples_per_step"):
        phase_view(cfg, "sft")


# ------------------------------------------------------------------------------------------------
# preflight

def test_mid_without_base_checkpoint_names_train_base(home, tmp_path):
    cfg = phase_view(chat_config(home, tmp_path), "mid")
    with pytest.raises(PreflightError) as e:
        mid_data(cfg, ByteTokenizer(), init_problem=init_problem(cfg, "mid"))
    assert e.value.exit_code == 3 and "base checkpoint" in e.value.message
    assert "`nanochat train base`" in e.value.fix


def test_sft_needs_mid_not_base(home, tmp_path):
    cfg = phase_view(chat_config(home, tmp_path), "sft")
    fake_checkpoint(cfg, "base")
    with pytest.raises(PreflightError, match="mid checkpoint"):
        sft_data(cfg, ByteTokenizer(), init_problem=init_problem(cfg, "sft"))


def test_corrupt_base_checkpoint_is_refused_before_training(home, tmp_path, run_cli):
    path = fake_checkpoint(chat_config(home, tmp_path), "base")
    blob = bytearray((path / ck.MODEL_FILE).read_bytes())
    blob[-1] ^= 0xFF
    (path / ck.MODEL_FILE).write_bytes(bytes(blob))
    r = run_cli("train", "mid", "--config", str(chat_config_file(tmp_path)))
    assert r.returncode == 3 and "checksum mismatch" in r.stderr and "nanochat train base" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_tokenizer_that_is_not_in_the_home_is_refused(home, tmp_path):
    cfg = chat_config(home, tmp_path)
    with pytest.raises(PreflightError, match="ababababab") as e:
        load_phase_tokenizer(cfg, {"kind": "bpe", "vocab_size": 4096, "fingerprint": "ab" * 32}, "run r1's base")
    assert e.value.exit_code == 3


def test_packaged_mid_data_is_deterministic(home, tmp_path):
    cfg = phase_view(chat_config(home, tmp_path), "mid")
    fake_checkpoint(cfg, "base")
    a, b = mid_data(cfg, ByteTokenizer()), mid_data(cfg, ByteTokenizer())
    assert a.init_from == "base" and a.num_iterations == 3 and "spellingbee" in a.summary
    for _ in range(3):
        (x1, y1), (x2, y2) = next(a.train), next(b.train)
        assert x1.equal(x2) and y1.equal(y2)
    assert len(list(a.val())) == a.val_steps == 512 // (2 * 128)


@pytest.fixture
def hub_rows(monkeypatch, tmp_path):
    """HF datasets from fixture trees, loaded by real `datasets`; stands in for data.hub.load_split (which
    reads the same files from <home>/datasets)."""
    from nanochat_cli.tasks import sources

    def use(root: Path):
        monkeypatch.setattr(sources, "load_rows", lambda cfg, repo, name, split: F.load(root, repo, name, split))

    return use


def test_missing_mmlu_all_and_gsm8k_test_are_caught_before_training(home, tmp_path, hub_rows):
    hub_rows(F.build(tmp_path / "hub", mmlu_all=False, gsm8k_test=False))
    cfg = phase_view(chat_config(home, tmp_path, mixture="hub"), "mid")
    fake_checkpoint(cfg, "base")
    (home / "words_alpha.txt").write_text("apple\r\nbanana\r\ncherry")
    with pytest.raises(PreflightError) as e:
        mid_data(cfg, ByteTokenizer())
    msg = e.value.message
    assert "cais/mmlu all test[:5200]" in msg and "openai/gsm8k main test[:420]" in msg
    assert "smol-smoltalk" not in msg and "auxiliary_train train:" not in msg  # only what is really missing
    assert "nanochat data fetch mid" in e.value.fix


def test_hub_mixtures_load_from_complete_fixtures(home, tmp_path, hub_rows):
    hub_rows(F.build(tmp_path / "hub"))
    cfg = chat_config(home, tmp_path, mixture="hub")
    fake_checkpoint(cfg, "base")
    fake_checkpoint(cfg, "mid")
    (home / "words_alpha.txt").write_text("apple\r\nbanana\r\ncherry")
    mid = mid_data(phase_view(cfg, "mid"), ByteTokenizer())
    assert "mmlu" in mid.summary and "gsm8k" in mid.summary and "simplespelling 200,000" in mid.summary
    sft = sft_data(phase_view(cfg, "sft"), ByteTokenizer())
    assert "arc-easy 6" in sft.summary and "arc-challenge 6" in sft.summary and "smoltalk 20" in sft.summary
    x, y = next(sft.train)
    assert x.shape == (2, 128) and ((y >= 0).sum(dim=1) > 0).all()


def test_hub_mixture_with_nothing_fetched_names_data_fetch(home, tmp_path):
    """The real data.hub.load_split on an empty <home>/datasets (offline): every part is reported."""
    cfg = phase_view(chat_config(home, tmp_path, mixture="hub"), "sft")
    fake_checkpoint(cfg, "mid")
    with pytest.raises(PreflightError) as e:
        sft_data(cfg, ByteTokenizer())
    for part in ("ARC-Easy train", "ARC-Challenge train", "gsm8k main train", "smol-smoltalk train[:10000]",
                 "smol-smoltalk test", "words_alpha.txt"):
        assert part in e.value.message
    assert "nanochat data fetch sft" in e.value.fix and e.value.exit_code == 3


def test_missing_word_list_is_caught(home, tmp_path, hub_rows):
    hub_rows(F.build(tmp_path / "hub"))
    cfg = phase_view(chat_config(home, tmp_path, mixture="hub"), "sft")
    fake_checkpoint(cfg, "mid")
    with pytest.raises(PreflightError, match="words_alpha.txt"):
        sft_data(cfg, ByteTokenizer())


# ------------------------------------------------------------------------------------------------
# CLI: resume --from, and the whole pipeline

def test_resume_from_mid_without_base_exits_3(run_cli):
    r = run_cli("resume", "--from", "mid", "--profile", "cpu-tiny")
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr + r.stdout and "base" in r.stderr
    d = run_cli("resume", "--from", "mid", "--profile", "cpu-tiny", "--dry-run")
    assert "sft" in d.stdout + d.stderr and "Traceback" not in d.stderr


@pytest.mark.slow
def test_base_mid_sft_end_to_end_then_resume_from_mid(run_cli, home, tmp_path):
    from nanochat_cli.data.loader import TokenLoader
    from nanochat_cli.train.loop import run_phase
    from nanochat_cli.train.phase_data import PhaseData

    write_shards(home)
    conf = chat_config_file(tmp_path)
    cfg = chat_config(home, tmp_path)
    t0 = time.time()
    # base in-process on the fixture shards (independent of the shard lister); mid and sft as a user runs them
    shards = sorted((home / "base_data").glob("*.parquet"))
    loader = TokenLoader(shards[:-1], ByteTokenizer(), cfg.train.device_batch_size, cfg.model.seq_len)
    base = run_phase(cfg, "base", data=PhaseData(train=loader))
    assert base.status == "done" and base.step == 3
    for phase in ("mid", "sft"):  # no --run: each joins the run of the checkpoint it starts from
        r = run_cli("train", phase, "--config", str(conf), "--json")
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout)
        assert out["phase"] == phase and out["status"] == "done" and out["step"] == 3
        assert out["run_id"] == base.run_id
        assert (Path(out["checkpoint"]) / ck.META_FILE).is_file()
        assert Path(out["checkpoint"]).parent == home / "runs" / base.run_id / "checkpoints" / phase
        pre = {"mid": "base", "sft": "mid"}[phase]
        assert f"initialised from run {base.run_id} {pre} step 3" in r.stderr
        assert "train conversations" in r.stderr
    elapsed = time.time() - t0
    manifests = [json.loads(p.read_text()) for p in (home / "runs").glob("*/manifest.json")]
    assert len(manifests) == 1 and {ph for ph, e in manifests[0]["phases"].items() if e["status"] == "done"} == \
        {"base", "mid", "sft"}

    # Rerunning from mid never trains over this run's mid: the plan is a new run starting from its base.
    plan = run_cli("resume", "--from", "mid", "--config", str(conf), "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    got = json.loads(plan.stdout)
    assert got["run_id"] != base.run_id and [s["phase"] for s in got["steps"]] == ["mid", "sft", "rl"]
    assert f"run {base.run_id}'s base checkpoint" in got["steps"][0]["detail"]

    # A corrupt base checkpoint stops `resume --from mid` before any training.
    weights = home / "runs" / base.run_id / "checkpoints" / "base" / "step_000003" / ck.MODEL_FILE
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    r = run_cli("resume", "--from", "mid", "--config", str(conf))
    assert r.returncode == 3 and "Traceback" not in r.stderr and "base" in r.stderr, r.stderr
    print(f"base+mid+sft, 3 steps each: {elapsed:.1f} s")


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["mid", "sft"])
def test_chat_phase_resumes_exactly(home, tmp_path, phase):
    """Stop after step 3 (checkpoint), resume: steps 4–6 repeat the uninterrupted run's losses bit for bit."""
    from nanochat_cli.data.loader import TokenLoader
    from nanochat_cli.train.loop import run_phase
    from nanochat_cli.train.phase_data import PhaseData

    write_shards(home)
    cfg = chat_config(home, tmp_path, iters=6)
    cfg.train.save_every = 3
    cfg.train.num_iterations = 2
    shards = sorted((home / "base_data").glob("*.parquet"))
    run_phase(cfg, "base", data=PhaseData(train=TokenLoader(shards[:-1], ByteTokenizer(), 2, 128)))
    if phase == "sft":
        cfg.mid.num_iterations = 2
        run_phase(cfg, "mid")
    first = run_phase(cfg, phase)
    assert first.status == "done" and first.step == 6
    metrics = Path(first.run_dir) / "metrics.jsonl"

    def phase_losses() -> dict[int, float]:
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        return {r["step"]: r["loss"] for r in rows if r.get("phase") == phase and "loss" in r}

    straight = phase_losses()
    ckpt_dir = home / "runs" / first.run_id / "checkpoints" / phase
    assert ck.list_steps(ckpt_dir) == [3, 6]
    import shutil

    shutil.rmtree(ckpt_dir / ck.step_dir_name(6))  # as if killed between step 3 and 6
    metrics.write_text("".join(line + "\n" for line in metrics.read_text().splitlines()
                               if '"step": 4,' not in line and '"step": 5,' not in line and '"step": 6,' not in line))
    again = run_phase(cfg, phase, resume=True, run_id=first.run_id)
    assert again.step == 6 and "resumed" not in straight
    resumed = phase_losses()
    assert sorted(resumed) == list(range(1, 7))
    assert [resumed[s] for s in (4, 5, 6)] == [straight[s] for s in (4, 5, 6)]
