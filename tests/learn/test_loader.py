"""`load_user_model_class`: what `train base --model FILE` uses to accept or refuse a learner's model."""

from __future__ import annotations

import pytest

from nanochat_cli.errors import UsageError
from nanochat_cli.learn.loader import load_user_model_class


def test_complete_workspace_gives_a_drop_in_gpt(complete_text, ws_file):
    import torch

    from nanochat_cli.learn import harness

    ws_file.write_text(complete_text)
    cls = load_user_model_class(ws_file)
    ref = harness.reference()
    model = cls(ref.GPTConfig(**harness.TINY))
    model.init_weights()
    idx, targets = harness.batches(1)[0]
    loss = model(idx, targets)
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("edit,message", [
    (lambda t: t, "still has TODOs"),
    (lambda t: t.replace("class GPT(", "class MyGPT("), "no class `GPT`"),
    (lambda t: t + "\ndef broken(:\n", "syntax"),
    (lambda t: t.replace("self.lm_head = ", "self.head = "), "parameters differ"),
])
def test_incompatible_files_are_usage_errors(edit, message, skeleton_text, complete_text, ws_file):
    base = skeleton_text if message == "still has TODOs" else complete_text
    ws_file.write_text(edit(base))
    with pytest.raises(UsageError) as e:
        load_user_model_class(ws_file)
    assert e.value.exit_code == 2
    assert message in e.value.one_line(), e.value.one_line()


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_user_model_class(tmp_path / "nope.py")


def test_build_user_model_trains_with_the_reference_optimizers(complete_text, ws_file):
    """What `train base --model` does: the learner's class, their init, the reference's optimizers."""
    import torch

    from nanochat_cli.config_sources import load_config
    from nanochat_cli.learn import harness
    from nanochat_cli.learn.loader import build_user_model, load_user_model_class
    from nanochat_cli.model.optim import build_optimizers

    ws_file.write_text(complete_text)
    cls = load_user_model_class(ws_file)
    model = build_user_model(cls, harness.reference().GPTConfig(**harness.TINY), "cpu", torch.float32)
    assert type(model).__module__.startswith("nanochat_learn_user_")
    cfg = load_config(flags={"train.compile": "off", "train.dtype": "float32"}).config
    optimizers = build_optimizers(model, cfg)
    (x, y), = harness.batches(1)
    losses = []
    for _ in range(3):
        loss = model(x, y)
        loss.backward()
        for opt in optimizers:
            opt.step()
        model.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
