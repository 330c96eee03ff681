"""The checks after the forward pass return what they found (nothing is written into a session): a pass
with its note for the reference's own code, a finding naming the component for a planted bug."""

from __future__ import annotations

from nanochat_cli.learn import build_checks, harness, training_checks
from nanochat_cli.learn.findings import Finding, Passed

NO_ADVANCE = ("        if layer == self.n_layer - 1:\n            self.pos = end\n", "")


def _model(user, explainer):
    """The learner's GPT holding the perturbed reference weights, as check.Session builds it."""
    ref_model = harness.perturb(harness.reference_model())
    model = build_checks.build_model(user, ref_model, explainer)
    assert not isinstance(model, Finding), model
    return model, ref_model


def test_init_passes_with_its_note(complete_text, learner):
    user, explainer = learner(complete_text)
    assert training_checks.check_init(user, explainer) == Passed("init", "matches the reference's distributions")


def test_init_names_the_parameter(complete_text, learner):
    user, explainer = learner(complete_text.replace("nn.init.zeros_(block.mlp.c_proj.weight)",
                                                    "nn.init.normal_(block.mlp.c_proj.weight, std=0.02)"))
    f = training_checks.check_init(user, explainer)
    assert isinstance(f, Finding) and (f.kind, f.component) == ("mismatch", "init"), f
    assert "mlp.c_proj.weight" in f.message and "zero" in f.message


def test_init_error_is_located(complete_text, learner):
    text = complete_text.replace("nn.init.zeros_(block.mlp.c_proj.weight)", "raise RuntimeError('boom')")
    user, explainer = learner(text)
    f = training_checks.check_init(user, explainer)
    assert (f.kind, f.component, f.message) == ("error", "init", "RuntimeError: boom"), f
    assert "raise RuntimeError('boom')" in text.splitlines()[int(f.where.split(":")[1]) - 1]


def test_kv_cache_passes_and_catches_a_cache_that_never_advances(complete_text, learner):
    idx, _ = harness.batches(1)[0]
    user, explainer = learner(complete_text)
    assert training_checks.check_kv_cache(user, *_model(user, explainer), idx, explainer) == \
        Passed("kv-cache", "cached decoding matches full recomputation")
    assert NO_ADVANCE[0] in complete_text
    user, explainer = learner(complete_text.replace(*NO_ADVANCE))
    f = training_checks.check_kv_cache(user, *_model(user, explainer), idx, explainer)
    assert isinstance(f, Finding) and (f.kind, f.component) == ("mismatch", "kv-cache"), f
    assert "pos" in f.cause


def test_loss_curves_agree_for_the_reference():
    curve, finding = training_checks.compare_loss_curves(harness.reference())
    assert finding is None and curve["match"] and curve["max_difference"] == 0
    assert len(curve["yours"]) == harness.CURVE_STEPS and curve["yours"] == curve["reference"]


def test_loss_curves_return_the_finding_when_they_differ(complete_text, learner, plant):
    user, _ = learner(plant(complete_text, "mlp", "return self.c_proj(torch.relu(self.c_fc(x)))"))
    curve, finding = training_checks.compare_loss_curves(user)
    assert not curve["match"] and finding.kind == "mismatch" and finding.component is None
    assert "training diverges" in finding.message and finding.max_error == curve["max_difference"] > 0
