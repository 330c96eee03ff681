"""An imported model trains further like one of ours: `train sft` starts from an imported mid model whose shape is
not the profile's (the phase keeps the checkpoint's shape and says so)."""

from __future__ import annotations

from pathlib import Path


from tests.interop.builders import random_gpt, save_trained

TOML = """
[model]
depth = 2
aspect_ratio = 32
head_dim = 32
seq_len = 128

[tokenizer]
kind = "byte"

[train]
device = "cpu"
dtype = "float32"
compile = "off"
eval_every = 0
sample_every = 0
save_every = 0
threads = 1

[sft]
mixture = "packaged"
num_iterations = 2
device_batch_size = 2
examples_per_step = 4
eval_every = 0
eval_steps = 1
"""


def test_sft_trains_from_an_imported_mid_model_of_another_shape(home, tmp_path, capsys):
    from nanochat_cli import checkpoint as ck
    from nanochat_cli.config_sources import load_config
    from nanochat_cli.interop.export_hf import export_hf
    from nanochat_cli.interop.import_hf import import_hf
    from nanochat_cli.runs import Manifest
    from nanochat_cli.tokenizer.byte_level import ByteTokenizer
    from nanochat_cli.train.loop import run_phase

    (tmp_path / "tiny.toml").write_text(TOML)
    cfg = load_config(config_file=tmp_path / "tiny.toml", flags={"home": str(home)}, environ={}).config
    tok = ByteTokenizer()
    model = random_gpt(tok.vocab_size, n_layer=1, n_embd=48, n_head=2, n_kv_head=1, seq_len=96, seed=2)
    save_trained(home, "elsewhere", "mid", model, tok, step=3)
    export_hf(cfg, "mid", tmp_path / "hf", run="elsewhere", verify=False)
    imported = import_hf(cfg, tmp_path / "hf", run="imp", verify=False)
    assert imported.phase == "mid"
    cfg.track.run = "imp"
    result = run_phase(cfg, "sft")
    assert result.status == "done" and result.run_id == "imp" and result.step == 2
    meta = ck.read_meta(Path(result.checkpoint))
    assert meta["model_config"] == {**ck.read_meta(Path(imported.checkpoint))["model_config"]}
    assert meta["model_config"]["n_embd"] == 48 and meta["model_config"]["n_layer"] == 1
    assert "keeps the shape of the checkpoint it starts from (n_layer 1, n_embd 48" in capsys.readouterr().err
    phases = Manifest.load(home / "runs" / "imp").phases
    assert phases["mid"]["imported_from"]["format"] == "hf" and phases["sft"]["status"] == "done"
    assert phases["sft"]["init_from"]["run"] == "imp"
