"""prepare_for_training: the fast step gives the plain model's loss and gradients, keeps state_dict keys,
and leaves generation and per-token losses on the plain path."""

import pytest
import torch

from nanochat_cli.config_sources import load_config
from nanochat_cli.model.compiled import loss_and_grads_of_chunk, prepare_for_training
from nanochat_cli.model.gpt import GPT, KVCache
from tests.tiny import tiny_gpt


def random_model() -> GPT:
    # random everywhere, so no path hides behind a zero projection
    return tiny_gpt(300, n_kv_head=2, spread=0.2, all_params=True)


def check_same_as_plain(compile: str):
    x, y = torch.randint(0, 300, (4, 32)), torch.randint(0, 300, (4, 32))
    y[0, :5] = -1
    ref = random_model()
    ref_loss = ref(x, y)
    ref_loss.backward()
    cfg = load_config(flags={"train.compile": compile}).config
    fast = prepare_for_training(random_model(), cfg, "cpu", torch.float32)
    assert list(fast.state_dict()) == list(ref.state_dict())
    loss = fast(x, y)
    loss.backward()
    torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=1e-5)
    for (name, p), q in zip(fast.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(fast(x, y), ref_loss, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fast(x, y, loss_reduction="none"), ref(x, y, loss_reduction="none"),
                                   atol=1e-5, rtol=1e-5)
        cache = KVCache(4, 32, 2, 2, 16, "cpu", torch.float32)
        torch.testing.assert_close(fast(x[:, :3], kv_cache=cache), ref(x[:, :3]), atol=1e-5, rtol=1e-5)
    return fast


def test_eager_fast_step_equals_plain_model(home):
    fast = check_same_as_plain("off")
    assert fast.training_setup["compiled"] is False


@pytest.mark.slow
def test_compiled_fast_step_equals_plain_model(home):
    fast = check_same_as_plain("on")
    assert fast.training_setup["compiled"] is True and fast.training_setup["attention"] == "manual_causal_attention"


def test_chunk_gradients_match_autograd(seeded):
    x = torch.randn(6, 16, requires_grad=True)
    w = torch.randn(64, 16, requires_grad=True)  # padded vocab 64, real vocab 50
    t = torch.tensor([3, 49, -1, 0, 7, -1])
    loss, dx, dw = loss_and_grads_of_chunk(x.detach(), w.detach(), t, 50, 15.0)
    z = 15.0 * torch.tanh((x @ w.T)[:, :50] / 15.0)
    ref = torch.nn.functional.cross_entropy(z, t, ignore_index=-1, reduction="sum")
    ref.backward()
    torch.testing.assert_close(loss, ref.detach())
    torch.testing.assert_close(dx, x.grad)
    torch.testing.assert_close(dw, w.grad[:50])
    assert torch.all(w.grad[50:] == 0)
