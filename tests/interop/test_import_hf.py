"""`nanochat import hf`: an export comes back bit for bit (weights and tokenizer fingerprint), anyone's
NanoChatForCausalLM directory imports with measured parity, and what our GPT cannot express, damaged files and
wrong names are refused in one line (exit 2) with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nanochat_cli.errors import UsageError
from tests.interop.builders import bpe_ranks, install_bpe, random_gpt, save_trained
from tests.interop.conftest import cli, one_line_error

transformers = pytest.importorskip("transformers", minversion="5.0")


def cfg_of(home: Path):
    from nanochat_cli.config_sources import load_config

    return load_config(flags={"home": str(home)}, environ={}).config


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    h = tmp_path_factory.mktemp("import-home")
    tok = install_bpe(h)
    save_trained(h, "orig", "mid", random_gpt(tok.vocab_size, n_layer=2, n_embd=64, n_head=4, n_kv_head=1,
                                              seq_len=64, softcap=12.0, seed=5), tok, step=7)
    return h


@pytest.fixture(scope="module")
def export_dir(home, tmp_path_factory) -> Path:
    from nanochat_cli.interop.export_hf import export_hf

    out = tmp_path_factory.mktemp("hf") / "orig-mid"
    export_hf(cfg_of(home), "mid", out, run="orig", verify=False)
    return out


@pytest.fixture(scope="module")
def round_trip(home, export_dir):
    from nanochat_cli.interop.import_hf import import_hf

    return import_hf(cfg_of(home), export_dir, run="back")  # phase and step from the export's metadata


def test_export_then_import_gives_back_the_same_model(home, round_trip):
    import torch
    from safetensors.torch import load_file

    from nanochat_cli import checkpoint as ck

    result = round_trip
    assert (result.run, result.phase, result.step) == ("back", "mid", 7)
    assert result.verified["max_abs_logit_diff"] <= 1e-4 and result.verified["greedy"]["equal"]
    orig_dir = home / "runs" / "orig" / "checkpoints" / "mid" / "step_000007"
    a, b = load_file(str(orig_dir / ck.MODEL_FILE)), load_file(str(Path(result.checkpoint) / ck.MODEL_FILE))
    assert a.keys() == b.keys()
    for name in a:
        if name in ("transformer.wte.weight", "lm_head.weight"):
            assert torch.equal(a[name][:700], b[name][:700]) and not b[name][700:].any()  # padding: zeros
        else:
            assert torch.equal(a[name], b[name]), name
    ma, mb = ck.read_meta(orig_dir), ck.read_meta(Path(result.checkpoint))
    assert ma["tokenizer"] == mb["tokenizer"] and ma["model_config"] == mb["model_config"]
    assert result.tokenizer["new"] is False  # the same fingerprint: the stored version was found
    assert mb["imported_from"]["format"] == "hf" and mb["imported_from"]["run"] == "orig"


def test_the_imported_run_exports_the_identical_file(home, round_trip, tmp_path, export_dir):
    from safetensors.torch import load_file

    from nanochat_cli.interop.export_hf import export_hf

    export_hf(cfg_of(home), "mid", tmp_path / "again", run="back", verify=False)
    a, b = load_file(str(export_dir / "model.safetensors")), load_file(str(tmp_path / "again" / "model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert (export_dir / "tokenizer.json").read_bytes() == (tmp_path / "again" / "tokenizer.json").read_bytes()


def test_imported_runs_are_ordinary_runs(home, round_trip):
    """`chat` answers from the import what it answers from the original; the report card and the run's config
    describe it."""
    from nanochat_cli.report import build_report

    r = cli(home, "chat", "-i", "mid", "--run", "back", "-p", "hello", "-t", "0", "--max-tokens", "6")
    s = cli(home, "chat", "-i", "mid", "--run", "orig", "-p", "hello", "-t", "0", "--max-tokens", "6")
    assert r.returncode == 0 and s.returncode == 0, r.stderr + s.stderr
    assert r.stdout == s.stdout and r.stdout.strip()
    assert build_report(cfg_of(home), "back")["phases"]["mid"]["status"] == "done"
    toml = (home / "runs" / "back" / "config.toml").read_text()
    assert "depth = 2" in toml and "n_kv_heads = 1" in toml and "seq_len = 64" in toml and "softcap = 12.0" in toml


def test_a_phase_with_a_model_is_never_written_over(home, export_dir):
    before = sorted(p.name for p in (home / "runs" / "back" / "checkpoints" / "mid").iterdir())
    line = one_line_error(cli(home, "import", "hf", str(export_dir), "--run", "back", "--no-verify"))
    assert "already has a mid model (step 7)" in line
    assert sorted(p.name for p in (home / "runs" / "back" / "checkpoints" / "mid").iterdir()) == before


# ---------------------------------------------------------------------------------------------------
# Anyone's NanoChatForCausalLM: built with transformers itself, tokenizer by transformers' tiktoken converter

@pytest.fixture(scope="module")
def foreign_dir(tmp_path_factory) -> Path:
    import torch
    from transformers import NanoChatConfig, NanoChatForCausalLM
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from nanochat_cli.tokenizer.bpe import SPLIT_PATTERN, ranks_to_file_bytes
    from nanochat_cli.tokenizer.special import SPECIAL_TOKENS

    out = tmp_path_factory.mktemp("foreign") / "someones-model"
    ranks = dict(bpe_ranks())
    n = len(ranks)
    config = NanoChatConfig(vocab_size=n + 9, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                            bos_token_id=n, eos_token_id=n + 4, pad_token_id=None)  # rms_norm_eps: its 1e-6
    torch.manual_seed(11)
    model = NanoChatForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 1.0 if "embed" in name else 3 / p.shape[1] ** 0.5)
    model.save_pretrained(str(out))
    # what transformers.integrations.tiktoken.convert_tiktoken_to_fast does (it needs blobfile to write the ranks)
    ranks_file = out.parent / "ranks.tiktoken"
    ranks_file.write_bytes(ranks_to_file_bytes(ranks))
    specials = {name: n + i for i, name in enumerate(SPECIAL_TOKENS)}
    converted = TikTokenConverter(vocab_file=str(ranks_file), pattern=SPLIT_PATTERN,
                                  extra_special_tokens=specials).converted()
    converted.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                                           "bos_token": "<|bos|>", "eos_token": "<|assistant_end|>"}))
    return out


def test_anyones_nanochat_directory_imports_with_parity(foreign_dir, tmp_path):
    from nanochat_cli.interop.import_hf import import_hf

    home = tmp_path / "home"
    result = import_hf(cfg_of(home), foreign_dir, run="theirs")
    assert result.phase == "sft" and result.step == 0 and result.tokenizer["new"]
    v = result.verified
    print(f"foreign import: max |Δlogit| {v['max_abs_logit_diff']:.3g} (their eps 1e-6 vs ours)")
    assert v["max_abs_logit_diff"] <= 1e-4 and v["tokenizer"]["different"] == []
    assert any("rms_norm_eps" in n for n in result.notes)
    assert any("chat template" in n for n in result.notes)  # it has none; ours is used


# ---------------------------------------------------------------------------------------------------
# Refusals

def edited(export_dir: Path, tmp_path: Path, **config) -> Path:
    d = tmp_path / "edited"
    shutil.copytree(export_dir, d)
    data = json.loads((d / "config.json").read_text())
    for k, v in config.items():
        if v is ...:
            data.pop(k, None)
        else:
            data[k] = v
    (d / "config.json").write_text(json.dumps(data))
    return d


CANNOT = {
    "gelu": ({"hidden_act": "gelu"}, "hidden_act is 'gelu'"),
    "biases": ({"attention_bias": True}, "attention_bias is true"),
    "rope base": ({"rope_parameters": {"rope_type": "default", "rope_theta": 100000.0}}, "rope_theta is 100000.0"),
    "rope scaling": ({"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}},
                     "rope type is 'linear'"),
    "mlp width": ({"intermediate_size": 200}, "intermediate_size is 200"),
    "no softcap": ({"final_logit_softcapping": None}, "final_logit_softcapping is null"),
    "head_dim": ({"head_dim": 32}, "head_dim 32"),
    "llama": ({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}, "model_type is 'llama'"),
    "vocab": ({"vocab_size": 800}, "vocab_size 800 differs from the tokenizer's 700"),
}


@pytest.mark.parametrize("case", sorted(CANNOT))
def test_configs_our_gpt_cannot_express_are_refused_by_name(export_dir, tmp_path, case):
    from nanochat_cli.interop.import_hf import import_hf

    change, expected = CANNOT[case]
    home = tmp_path / "home"
    with pytest.raises(UsageError) as e:
        import_hf(cfg_of(home), edited(export_dir, tmp_path, **change), verify=False)
    assert e.value.exit_code == 2 and expected in e.value.one_line(), e.value.one_line()
    assert not (home / "runs").exists()


def _resave(directory: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    path = directory / "model.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


WEIGHTS = {
    "truncated": (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:3000]),
                  "is not a complete safetensors file"),
    "wrong name": (lambda d: _resave(d, lambda t: t.__setitem__("model.layers.0.self_attn.query.weight",
                                                                t.pop("model.layers.0.self_attn.q_proj.weight"))),
                   "tensors this model does not know: model.layers.0.self_attn.query.weight"),
    "missing": (lambda d: _resave(d, lambda t: t.pop("model.layers.1.mlp.fc2.weight")),
                "lacks 1 tensor(s) the model needs: model.layers.1.mlp.fc2.weight"),
    "bias": (lambda d: _resave(d, lambda t: t.__setitem__("model.layers.0.self_attn.q_proj.bias",
                                                          t["lm_head.weight"][0].clone())),
             "model.layers.0.self_attn.q_proj.bias"),
    "shape": (lambda d: _resave(d, lambda t: t.__setitem__("model.layers.0.mlp.fc1.weight",
                                                           t["model.layers.0.mlp.fc1.weight"][:100].clone())),
              "model.layers.0.mlp.fc1.weight has shape (100, 64), expected (256, 64)"),
    "no weights": (lambda d: (d / "model.safetensors").unlink(), "has no model.safetensors"),
    "bad tokenizer": (lambda d: (d / "tokenizer.json").write_text('{"model": {"type": "Unigram"}}'),
                      "its model is 'Unigram', not BPE"),
}


@pytest.mark.parametrize("case", sorted(WEIGHTS))
def test_damaged_or_foreign_weights_are_refused_by_name(export_dir, tmp_path, case):
    from nanochat_cli.interop.import_hf import import_hf

    change, expected = WEIGHTS[case]
    d = edited(export_dir, tmp_path)
    change(d)
    home = tmp_path / "home"
    with pytest.raises(UsageError) as e:
        import_hf(cfg_of(home), d, verify=False)
    assert e.value.exit_code == 2 and expected in e.value.one_line(), e.value.one_line()
    assert not (home / "runs").exists() and not (home / "tokenizers").exists()


def test_a_truncated_safetensors_file_through_the_cli(export_dir, tmp_path):
    d = edited(export_dir, tmp_path)
    WEIGHTS["truncated"][0](d)
    line = one_line_error(cli(tmp_path / "home", "import", "hf", str(d), "--no-verify"))
    assert "model.safetensors is not a complete safetensors file" in line


def test_sharded_and_bin_weights_import_like_a_single_file(export_dir, round_trip, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    from nanochat_cli import checkpoint as ck
    from nanochat_cli.interop.import_hf import import_hf

    expected = load_file(str(Path(round_trip.checkpoint) / ck.MODEL_FILE))
    tensors = load_file(str(export_dir / "model.safetensors"))
    names = sorted(tensors)
    sharded = edited(export_dir, tmp_path)
    (sharded / "model.safetensors").unlink()
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2:])):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        save_file({k: tensors[k] for k in part}, str(sharded / file), metadata={"format": "pt"})
        weight_map.update({k: file for k in part})
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    binary = tmp_path / "bin"
    shutil.copytree(sharded, binary)
    for f in binary.glob("model*"):
        f.unlink()
    torch.save(tensors, binary / "pytorch_model.bin")
    for d, run in ((sharded, "sharded"), (binary, "bin")):
        got = import_hf(cfg_of(tmp_path / "home"), d, run=run, phase="mid", verify=False)
        state = load_file(str(Path(got.checkpoint) / ck.MODEL_FILE))
        assert all(torch.equal(state[k], expected[k]) for k in expected), run
