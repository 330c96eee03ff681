"""The checks before the forward pass return what they found: the padded vocabulary, the parameters'
names and shapes, and the rotary buffers the learner's own code computes."""

from __future__ import annotations

from nanochat_cli.learn import build_checks, harness
from nanochat_cli.learn.components import BY_NAME
from nanochat_cli.learn.findings import Finding, Passed

PADDING = "-(-self.vocab_size // self.pad_vocab_to) * self.pad_vocab_to"
ROTARY_FREQ = "inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)"


def test_reference_code_passes_every_build_check(complete_text, learner):
    user, explainer = learner(complete_text)
    assert build_checks.check_config(BY_NAME["config"], user, explainer) == Passed("config")
    ref_model = harness.perturb(harness.reference_model())
    model = build_checks.build_model(user, ref_model, explainer)
    assert not isinstance(model, Finding), model
    assert all((p == q).all() for p, q in zip(model.parameters(), ref_model.parameters()))
    assert build_checks.check_buffers(BY_NAME["rotary-table"], model, ref_model) == Passed("rotary-table")


def test_padding_that_rounds_an_exact_multiple_up_is_caught(complete_text, learner):
    assert PADDING in complete_text
    rounds_up_always = "(self.vocab_size // self.pad_vocab_to + 1) * self.pad_vocab_to"
    user, explainer = learner(complete_text.replace(PADDING, rounds_up_always))
    f = build_checks.check_config(BY_NAME["config"], user, explainer)
    assert (f.kind, f.component, f.got, f.expected) == ("mismatch", "config", "128", "64"), f
    assert f.message.startswith("GPTConfig(vocab_size=64).padded_vocab_size")


def test_parameters_of_another_shape_are_named(complete_text, learner):
    old = "self.c_fc = Linear(config.n_embd, 4 * config.n_embd)"
    assert old in complete_text
    user, explainer = learner(complete_text.replace(old, "self.c_fc = Linear(config.n_embd, 3 * config.n_embd)"))
    f = build_checks.build_model(user, harness.perturb(harness.reference_model()), explainer)
    assert isinstance(f, Finding) and (f.kind, f.component) == ("error", None), f
    assert "transformer.h.0.mlp.c_fc.weight (192, 64) not (256, 64)" in f.message


def test_rotary_table_with_another_base_is_caught(complete_text, learner):
    assert ROTARY_FREQ in complete_text
    user, explainer = learner(complete_text.replace(ROTARY_FREQ, ROTARY_FREQ.replace("base **", "(2 * base) **")))
    ref_model = harness.perturb(harness.reference_model())
    model = build_checks.build_model(user, ref_model, explainer)
    f = build_checks.check_buffers(BY_NAME["rotary-table"], model, ref_model)
    assert (f.kind, f.component) == ("mismatch", "rotary-table") and "`cos`" in f.message, f
