"""What check.Session does with what the checks return, on paths the planted bugs do not take: a step
ends at a build failure, gradients are compared after outputs match, code between components is
checked through the logits, and `status` records a failure and keeps checking."""

from __future__ import annotations

from nanochat_cli.learn import check
from nanochat_cli.learn.components import COMPONENTS
from nanochat_cli.learn.progress import NOT_REACHED


def test_build_failure_ends_the_step_in_every_mode(complete_text, ws_file):
    ws_file.write_text(complete_text.replace("self.mlp = MLP(config)",
                                             "self.mlp = MLP(config)\n        self.gain = nn.Parameter(torch.ones(1))"))
    for stop_first in (True, False):
        report = check.run_step(ws_file, stop_first=stop_first)
        assert len(report.findings) == 1 and "unexpected ['transformer.h.0.gain'" in report.findings[0].message
        assert report.results["norm"] == ("todo", NOT_REACHED) and report.curve is None


def test_a_cut_graph_is_caught_by_the_gradients(complete_text, ws_file, plant):
    ws_file.write_text(plant(complete_text, "mlp", "return self.c_proj(F.relu(self.c_fc(x)).square().detach())"))
    f = check.run_step(ws_file).findings[0]
    assert (f.kind, f.component) == ("mismatch", None) and f.message.startswith("the gradient of `"), f
    assert ".detach()" in f.cause


def test_a_loss_without_gradient_is_named(complete_text, ws_file, plant):
    ws_file.write_text(plant(complete_text, "loss", "if targets is None:\n    return logits\nwith torch.no_grad():\n"
                             "    return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), "
                             "ignore_index=-1, reduction=loss_reduction)"))
    f = check.run_step(ws_file).findings[0]
    assert (f.kind, f.component) == ("error", "loss") and "no gradient" in f.message, f


def test_code_between_components_is_checked_through_the_logits(complete_text, ws_file):
    ws_file.write_text(complete_text.replace("        return norm(x)\n", "        return x\n", 1))
    f = check.run_step(ws_file).findings[0]
    assert f.component is None and "although every component matches" in f.message, f


def test_status_records_a_failure_and_checks_the_rest(complete_text, ws_file, plant):
    ws_file.write_text(plant(complete_text, "mlp", "return self.c_proj(torch.relu(self.c_fc(x)))"))
    report = check.run_step(ws_file, stop_first=False)
    assert report.results["mlp"][0] == "failing" and report.findings[0].component == "mlp"
    later = [c.name for c in COMPONENTS][[c.name for c in COMPONENTS].index("mlp") + 1:]
    assert later and all(report.results[n][0] != "todo" for n in later), report.results
    assert report.curve is None  # the training run waits until everything matches
