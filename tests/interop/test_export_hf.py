"""`nanochat export hf`: transformers loads the directory offline and computes what our model computes, in fp32:
logits within 1e-4 (at full context too), greedy generation, tokenizer ids and chat-template ids all equal.
What NanoChatForCausalLM cannot express, or a missing transformers, is refused in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.interop.builders import install_bpe, random_gpt, save_trained
from tests.interop.conftest import cli, one_line_error

transformers = pytest.importorskip("transformers", minversion="5.0")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """Run r1: a GQA sft model (vocab 700 → padded 704, softcap 10) on a trained BPE; run rb: a byte-level base."""
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    h = tmp_path_factory.mktemp("export-home")
    tok = install_bpe(h)
    save_trained(h, "r1", "sft", random_gpt(tok.vocab_size, seq_len=128, softcap=10.0), tok)
    save_trained(h, "rb", "base", random_gpt(ByteTokenizer().vocab_size, n_layer=1, n_embd=32, n_head=2,
                                             n_kv_head=2, seq_len=64, seed=1), ByteTokenizer())
    return h


def cfg_of(home: Path):
    from nanochat_cli.config_sources import load_config

    return load_config(flags={"home": str(home)}, environ={}).config


@pytest.fixture(scope="module")
def exported(home, tmp_path_factory):
    from nanochat_cli.interop.export_hf import export_hf

    out = tmp_path_factory.mktemp("exports") / "r1-sft"
    result = export_hf(cfg_of(home), "sft", out, run="r1")
    return out, result


@pytest.fixture(scope="module")
def ours(home):
    from nanochat_cli.model.inference import load_for_inference

    return load_for_inference(cfg_of(home), "sft", run="r1", device="cpu", quiet=True)


@pytest.fixture(scope="module")
def theirs(exported):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _ = exported
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, local_files_only=True).eval()
    return model, AutoTokenizer.from_pretrained(str(out), local_files_only=True)


def test_directory_has_transformers_files_and_config(exported, ours):
    from safetensors import safe_open

    out, result = exported
    assert set(result.files) == {"README.md", "config.json", "generation_config.json", "model.safetensors",
                                 "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"}
    config = json.loads((out / "config.json").read_text())
    tok = ours.tokenizer
    assert config["model_type"] == "nanochat" and config["architectures"] == ["NanoChatForCausalLM"]
    assert config["vocab_size"] == 700 and config["num_key_value_heads"] == 2 and config["head_dim"] == 16
    assert config["rms_norm_eps"] == 1.1920928955078125e-07 and config["final_logit_softcapping"] == 10.0
    assert config["eos_token_id"] == [tok.special_id(n) for n in ("<|assistant_end|>", "<|bos|>", "<|user_start|>",
                                                                  "<|user_end|>", "<|assistant_start|>")]
    assert config["pad_token_id"] is None and config["tie_word_embeddings"] is False
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["pad_token_id"] == tok.bos_id
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert f.get_slice("model.embed_tokens.weight").get_shape() == [700, 64]  # padding rows cut
        assert f.get_slice("lm_head.weight").get_shape() == [700, 64]
        assert f.metadata()["nanochat_step"] == "5" and f.metadata()["nanochat_run"] == "r1"
    assert oct(os.stat(out).st_mode & 0o777) == "0o755"
    assert oct(os.stat(out / "model.safetensors").st_mode & 0o777) == "0o644"


def test_logits_match_in_fp32_up_to_the_full_context(ours, theirs):
    import torch

    from nanochat_cli.interop.hf_tokenizer import SAMPLE_CONVERSATIONS, sample_texts
    from nanochat_cli.tokenizer.chat import render_for_completion

    hf, _ = theirs
    model, tok = ours.model, ours.tokenizer
    T = model.config.seq_len
    gen = torch.Generator().manual_seed(7)
    sequences = [render_for_completion(tok, {"messages": m}) for m in SAMPLE_CONVERSATIONS]
    sequences += [tok.encode(t, prepend=tok.bos_id)[:T] for t in sample_texts()[:3]]
    sequences += [[tok.bos_id] + torch.randint(0, tok.vocab_size, (T - 1,), generator=gen).tolist()]
    assert max(map(len, sequences)) == T
    worst = 0.0
    with torch.no_grad():
        for ids in sequences:
            x = torch.tensor([ids])
            a, b = model(x), hf(input_ids=x).logits
            assert a.shape == b.shape == (1, len(ids), 700)
            worst = max(worst, float((a - b).abs().max()))
    print(f"max |Δlogit| over {len(sequences)} sequences (up to {T} tokens): {worst:.3g}")
    assert worst <= 1e-4


def test_greedy_generate_equals_our_engine(ours, theirs):
    import torch

    from nanochat_cli.model.engine import Engine, GenerationConfig
    from nanochat_cli.tokenizer.chat import render_for_completion

    hf, _ = theirs
    tok = ours.tokenizer
    engine = Engine(ours.model, tok)
    prompts = [render_for_completion(tok, {"messages": [{"role": "user", "content": text}]})
               for text in ("What is 2 plus 3?", "Tell me a story.", "안녕하세요", "def f(x):")]
    prompts.append(tok.encode("The capital of France is", prepend=tok.bos_id))
    tool = {tok.special_id("<|python_start|>"), tok.special_id("<|output_start|>")}
    for prompt in prompts:
        mine = engine.generate_batch(prompt, 1, GenerationConfig(max_tokens=24, temperature=0))[0]
        assert not tool & set(mine)  # the calculator (ours only) never ran
        out = hf.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                          max_new_tokens=24, do_sample=False)
        assert out[0, len(prompt):].tolist()[:len(mine)] == mine


def test_chat_template_and_tokenizer_give_our_ids(ours, theirs):
    from nanochat_cli.interop.hf_tokenizer import SAMPLE_CONVERSATIONS, sample_texts
    from nanochat_cli.tokenizer.chat import render_conversation, render_for_completion

    _, hf_tok = theirs
    tok = ours.tokenizer
    for messages in SAMPLE_CONVERSATIONS:
        ids = hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        assert list(ids) == render_for_completion(tok, {"messages": messages})
        whole = messages + [{"role": "assistant", "content": "Sure. 12 × 7 = 84 🙂"}]
        ids = hf_tok.apply_chat_template(whole, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        assert list(ids) == render_conversation(tok, {"messages": whole})[0]
    with pytest.raises(Exception, match="alternate"):
        hf_tok.apply_chat_template([{"role": "assistant", "content": "hi"}], tokenize=True)
    texts = sample_texts()
    assert len(texts) >= 15
    for text in texts:
        assert hf_tok.encode(text) == tok.encode(text)  # add_special_tokens=True adds nothing
        assert hf_tok.decode(tok.encode(text)) == text
    assert hf_tok.decode([tok.bos_id, *tok.encode("hi")], skip_special_tokens=True) == "hi"


def test_the_export_records_what_it_measured(exported):
    _, result = exported
    v = result.verified
    assert v["class"] == "NanoChatForCausalLM" and v["max_abs_logit_diff"] <= 1e-4
    assert [s["tokens"] for s in v["sequences"]][-1] == 128 and v["greedy"]["equal"]
    assert v["tokenizer"]["different"] == [] and v["chat_template"]["different"] == []


def test_without_the_rotary_flip_the_check_refuses_and_writes_nothing(home, tmp_path, monkeypatch):
    from nanochat_cli.errors import NanochatError
    from nanochat_cli.interop import weights
    from nanochat_cli.interop.export_hf import export_hf

    monkeypatch.setattr(weights, "flip_rotary", lambda w, n_heads, head_dim: w.clone())
    with pytest.raises(NanochatError, match=r"max \|Δlogit\| [0-9.]+e?-?\d* > 0.0001") as e:
        export_hf(cfg_of(home), "sft", tmp_path / "out", run="r1")
    assert "nothing was written" in e.value.message
    assert not (tmp_path / "out").exists() and not any(tmp_path.iterdir())


def test_bfloat16_weights_verify_and_halve_the_file(home, tmp_path, exported):
    from nanochat_cli.interop.export_hf import export_hf

    result = export_hf(cfg_of(home), "sft", tmp_path / "bf16", run="r1", weights="bfloat16")
    assert result.verified["max_abs_logit_diff"] <= 1e-4  # against our model with the same rounded weights
    full = (exported[0] / "model.safetensors").stat().st_size
    assert (tmp_path / "bf16" / "model.safetensors").stat().st_size < 0.55 * full
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["dtype"] == "bfloat16"


def test_a_byte_level_base_model_exports_with_parity(home, tmp_path):
    from transformers import AutoTokenizer

    from nanochat_cli.interop.export_hf import export_hf
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer

    result = export_hf(cfg_of(home), "base", tmp_path / "byte", run="rb")
    assert result.verified["max_abs_logit_diff"] <= 1e-4 and result.verified["greedy"]["equal"]
    hf_tok = AutoTokenizer.from_pretrained(str(tmp_path / "byte"), local_files_only=True)
    text = "héllo 🙂\n\tworld"
    assert hf_tok.encode(text) == ByteTokenizer().encode(text)


def test_the_model_card_comes_from_the_run(exported):
    from nanochat_cli.paths import Paths  # noqa: F401

    out, _ = exported
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-generation")
    assert "run r1, step 5" in card and "| sft | done | 5/5 | 12.5 s | 2.5000 | 1.7500 |" in card
    assert "profile `cpu-tiny`" in card and "embedded public-domain corpus" in card
    assert "max |Δlogit|" in card and "greedy 16/16 tokens equal" in card
    assert "does not run the calculator" in card


def test_learn_mode_models_are_refused_by_name(home, tmp_path):
    from nanochat_cli.errors import UsageError
    from nanochat_cli.interop.export_hf import export_hf

    tok = install_bpe(home)
    save_trained(home, "learner", "sft", random_gpt(tok.vocab_size, seq_len=32), tok,
                 config_overrides={"model.file": "/work/me/gpt.py"})
    with pytest.raises(UsageError, match=r"model\.file = /work/me/gpt\.py"):
        export_hf(cfg_of(home), "sft", tmp_path / "x", run="learner")
    assert not (tmp_path / "x").exists()


def test_missing_transformers_is_one_line_naming_the_install(home, tmp_path, monkeypatch):
    from nanochat_cli.errors import UsageError
    from nanochat_cli.interop import verify
    from nanochat_cli.interop.export_hf import export_hf

    monkeypatch.setattr(verify, "transformers_version", lambda: None)
    with pytest.raises(UsageError) as e:
        export_hf(cfg_of(home), "sft", tmp_path / "x", run="r1")
    assert e.value.exit_code == 2 and "pip install 'nanochat-cli[hf]'" in e.value.one_line()
    assert "--no-verify" in e.value.one_line() and not (tmp_path / "x").exists()


def test_cli_refusals_and_no_verify_without_transformers(home, tmp_path):
    """As a user sees it: a broken transformers import (simulated by a stub package first on the path) is one line
    naming the install command; --no-verify still exports; a non-empty --out is refused and left as it was."""
    stub = tmp_path / "stub" / "transformers"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('simulated: transformers is not installed')\n")
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "stub"), src])}
    line = one_line_error(cli(home, "export", "hf", "--run", "r1", "--out", str(tmp_path / "a"), env=env))
    assert "pip install 'nanochat-cli[hf]'" in line and not (tmp_path / "a").exists()
    r = cli(home, "export", "hf", "--run", "r1", "--out", str(tmp_path / "a"), "--no-verify", "--json", env=env)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["verified"] is None and got["step"] == 5 and (tmp_path / "a" / "model.safetensors").is_file()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep.txt").write_text("mine")
    line = one_line_error(cli(home, "export", "hf", "--run", "r1", "--out", str(tmp_path / "b"), "--no-verify"))
    assert "not empty" in line and (tmp_path / "b" / "keep.txt").read_text() == "mine"
