"""model/sizes.py estimates what GPT.param_counts/estimate_flops count on a built model — for every profile's
shape (built on the meta device: no memory) and for GQA and padded vocabularies."""

from __future__ import annotations

import pytest
import torch

from nanochat_cli.config import Config
from nanochat_cli.config_sources import load_config, profile_names
from nanochat_cli.model.gpt import GPT, GPTConfig
from nanochat_cli.model.sizes import config_counts, config_flops_per_token, param_counts


@pytest.mark.parametrize("profile", profile_names())
def test_the_estimate_equals_the_built_model_for_every_profile(profile):
    cfg: Config = load_config(profile=profile, environ={}).config
    with torch.device("meta"):
        model = GPT(GPTConfig.from_config(cfg, cfg.tokenizer.vocab_size))
    assert config_counts(cfg) == model.param_counts()
    assert config_flops_per_token(cfg) == model.estimate_flops()


def test_gqa_and_an_unpadded_vocab():
    with torch.device("meta"):
        model = GPT(GPTConfig(vocab_size=1000, n_layer=3, n_embd=128, n_head=4, n_kv_head=2, seq_len=64))
    assert param_counts(1000, 3, 128, 4, 2) == model.param_counts()
