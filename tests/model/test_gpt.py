"""The reference GPT: first loss, learning, KV-cache generation, GQA, accounting."""

import math

import pytest
import torch

from nanochat_cli.config_sources import load_config
from nanochat_cli.model.gpt import GPT, GPTConfig, KVCache
from tests.tiny import tiny_gpt


def tiny(vocab=300, **kw) -> GPT:
    return tiny_gpt(vocab, **kw)


def test_from_config_maps_the_model_section(home):
    cfg = load_config(flags={"model.depth": 4, "model.aspect_ratio": 64, "model.head_dim": 64,
                             "model.n_kv_heads": 2}).config
    c = GPTConfig.from_config(cfg, vocab_size=8192)
    assert (c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.head_dim, c.seq_len) == (4, 256, 4, 2, 64, 256)
    assert c.softcap == 15.0


def test_initial_loss_is_ln_vocab():
    model = tiny(vocab=1000)
    x = torch.randint(0, 1000, (4, 32))
    loss = model(x, torch.randint(0, 1000, (4, 32)))
    assert abs(loss.item() - math.log(1000)) < 0.02


def test_vocab_is_padded_but_logits_are_not():
    model = tiny(vocab=300)
    assert model.lm_head.weight.shape[0] == 320 and model.transformer.wte.weight.shape[0] == 320
    logits = model(torch.randint(0, 300, (2, 8)))
    assert logits.shape == (2, 8, 300) and logits.dtype == torch.float32
    assert logits.abs().max() < 15.0  # soft-capped


def test_ignore_index_and_per_token_reduction():
    model = tiny()
    x, y = torch.randint(0, 300, (2, 16)), torch.randint(0, 300, (2, 16))
    y[:, :4] = -1
    per_tok = model(x, y, loss_reduction="none")
    assert per_tok.shape == (32,)
    assert torch.all(per_tok.view(2, 16)[:, :4] == 0)
    assert torch.allclose(model(x, y), per_tok.sum() / 24, atol=1e-6)


def test_loss_decreases_on_a_tiny_overfit_batch(home):
    from nanochat_cli.model.optim import build_optimizers

    cfg = load_config(flags={"train.compile": "off", "train.dtype": "float32"}).config
    model = tiny(vocab=64, seq_len=16)
    optimizers = build_optimizers(model, cfg)
    x = torch.randint(0, 64, (4, 16))
    y = torch.roll(x, -1, dims=1)
    losses = []
    for _ in range(30):
        loss = model(x, y)
        loss.backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_outputs_start_as_identity_blocks():
    model = tiny()
    for block in model.transformer.h:
        assert torch.count_nonzero(block.attn.c_proj.weight) == 0
        assert torch.count_nonzero(block.mlp.c_proj.weight) == 0
    assert 0.0005 < model.lm_head.weight.std().item() < 0.002


@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_kv_cache_generation_matches_full_forward(n_kv_head):
    """Prefill then one token per step gives the logits of a full forward at every new position,
    and greedy decoding picks the same tokens."""
    model = tiny(n_kv_head=n_kv_head, seq_len=32)
    # Random weights everywhere (zero projections would hide attention bugs).
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    prompt = torch.randint(0, 300, (2, 7))
    cache = KVCache(2, 32, 2, n_kv_head, 16, "cpu", torch.float32)
    with torch.no_grad():
        logits = model(prompt, kv_cache=cache)
        assert cache.pos == 7
        ids = prompt
        for _ in range(10):
            nxt = logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
            full = model(ids)
            logits = model(nxt, kv_cache=cache)
            torch.testing.assert_close(logits[:, -1], full[:, -1], atol=1e-4, rtol=1e-4)
            assert torch.equal(logits[:, -1].argmax(-1), full[:, -1].argmax(-1))
        assert cache.pos == 17


def test_kv_cache_prefill_in_two_chunks_and_copy():
    model = tiny()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
        x = torch.randint(0, 300, (1, 12))
        full = model(x)
        cache = KVCache(1, 32, 2, 4, 16, "cpu", torch.float32)
        model(x[:, :5], kv_cache=cache)
        part = model(x[:, 5:], kv_cache=cache)  # a prefill after a prefix needs the offset causal mask
        torch.testing.assert_close(part, full[:, 5:], atol=1e-4, rtol=1e-4)
        big = KVCache(3, 32, 2, 4, 16, "cpu", torch.float32)
        big.prefill_from(cache)
        nxt = torch.full((3, 1), 5)
        out = model(nxt, kv_cache=big)
        ref = model(torch.cat([x, torch.full((1, 1), 5)], dim=1))[:, -1]
        torch.testing.assert_close(out[:, -1], ref.expand(3, -1), atol=1e-4, rtol=1e-4)
        cache.reset()
        assert cache.pos == 0


def test_kv_cache_overflow_is_an_error():
    model = tiny()
    cache = KVCache(1, 8, 2, 4, 16, "cpu", torch.float32)
    with pytest.raises(ValueError, match="KV cache full"):
        model(torch.zeros(1, 9, dtype=torch.long), kv_cache=cache)


def test_gqa_shapes():
    model = tiny(n_head=4, n_kv_head=2)
    attn = model.transformer.h[0].attn
    assert attn.c_q.weight.shape == (64, 64)
    assert attn.c_k.weight.shape == (32, 64) and attn.c_v.weight.shape == (32, 64)
    assert model(torch.randint(0, 300, (2, 8))).shape == (2, 8, 300)


def test_param_counts_and_flops_at_the_reference_config():
    model = GPT(GPTConfig(vocab_size=8192, n_layer=4, n_embd=256, n_head=4, n_kv_head=4, seq_len=256))
    c = model.param_counts()
    assert c["wte"] == c["lm_head"] == 8192 * 256
    assert c["blocks"] == 4 * 12 * 256 * 256  # q, k, v, proj: 4·d²; MLP: 8·d²
    assert c["total"] == sum(p.numel() for p in model.parameters())
    assert c["matmul"] == 5_242_880
    # 6·N + 12·L·H·D·T = 31,457,280 + 3,145,728 (docs/explanation/cpu-training-speed.md: 34.6 MFLOP per token)
    assert model.estimate_flops() == 6 * 5_242_880 + 12 * 4 * 4 * 64 * 256 == 34_603_008


def test_bf16_compute_keeps_fp32_weights_and_logits():
    model = tiny()
    model.compute_dtype = torch.bfloat16
    out = model(torch.randint(0, 300, (1, 4)))
    assert out.dtype == torch.float32 and model.lm_head.weight.dtype == torch.float32


def test_kv_cache_in_bf16_with_fp32_compute():
    model = tiny()
    cache = KVCache(1, 16, 2, 4, 16, "cpu", torch.bfloat16)
    with torch.no_grad():
        out = model(torch.randint(0, 300, (1, 5)), kv_cache=cache)
        out = model(torch.randint(0, 300, (1, 1)), kv_cache=cache)
    assert out.shape == (1, 1, 300) and cache.pos == 6
