"""Forward checks return what they found: None or Passed when the learner's code matches the reference,
a Finding (with the known bug's name when one matches) when it does not."""

from __future__ import annotations

import pytest

from nanochat_cli.learn import build_checks, harness
from nanochat_cli.learn.components import BY_NAME
from nanochat_cli.learn.findings import Passed
from nanochat_cli.learn.forward_checks import ForwardChecks
from nanochat_cli.learn.trace import Tracer

RELU = "return self.c_proj(torch.relu(self.c_fc(x)))"


def _checks(user, explainer) -> ForwardChecks:
    ref_model = harness.perturb(harness.reference_model())
    return ForwardChecks(explainer, user, build_checks.build_model(user, ref_model, explainer), ref_model)


@pytest.mark.parametrize("body,cause", [(None, None), (RELU, "ReLU instead of ReLU²: ")], ids=["reference", "relu"])
def test_a_traced_call_is_checked_alone(body, cause, complete_text, learner, plant):
    user, explainer = learner(plant(complete_text, "mlp", body) if body else complete_text)
    checks = _checks(user, explainer)
    tracer = Tracer(user, checks.model, {BY_NAME["mlp"].target: "mlp"})
    with tracer:
        checks.model(harness.batches(1)[0][0])
    call = tracer.finished()[0]
    finding = checks.call(BY_NAME["mlp"], call)
    if cause is None:
        assert finding is None and checks.probe(BY_NAME["mlp"]) == Passed("mlp")
    else:
        assert (finding.kind, finding.component) == ("mismatch", "mlp") and finding.cause.startswith(cause)
        assert f"of `{call.path}`" in finding.message and finding.inputs == {"x": "(4, 32, 64) float32"}


def test_gradients_are_compared_after_the_outputs(complete_text, learner, plant):
    idx, targets = harness.batches(1)[0]
    for body, broken in ((None, False), ("return self.c_proj(F.relu(self.c_fc(x)).square().detach())", True)):
        user, explainer = learner(plant(complete_text, "mlp", body) if body else complete_text)
        checks = _checks(user, explainer)
        finding = checks.gradients(checks.model(idx, targets), checks.ref_model(idx, targets))
        assert (finding is not None) == broken, finding
    assert finding.message.startswith("the gradient of `transformer.wte.weight`")  # the first parameter
