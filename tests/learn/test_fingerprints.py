"""Every known bug planted in a complete workspace is reported at its component, with its name."""

from __future__ import annotations

import pytest
import torch

from nanochat_cli.learn import check, fingerprints, harness, source
from nanochat_cli.learn.components import BY_NAME
from nanochat_cli.learn.findings import compare
from nanochat_cli.learn.trace import patch, unpatch
from tests.learn.planted import ATTENTION, PLANTS


@pytest.mark.parametrize("component,bug,body", PLANTS, ids=[f"{c}:{b}" for c, b, _ in PLANTS])
def test_planted_bug_is_named(component, bug, body, complete_text, ws_file):
    comp = BY_NAME[component]
    text = source.replace(complete_text, source.locate(complete_text, comp), body,
                          region=comp.name if comp.is_region else None)
    ws_file.write_text(text)
    report = check.run_step(ws_file)
    assert report.findings, "the planted bug was not detected"
    f = report.findings[0]
    assert (f.kind, f.component) == ("mismatch", component), f
    assert f.cause and f.cause.startswith(bug), f
    assert f.max_error is not None and f.max_error > 0


def test_every_plant_has_a_known_bug():
    names = {(b.component, b.name) for b in fingerprints.BUGS}
    assert {(c, b) for c, b, _ in PLANTS} <= names


def test_mutations_apply_to_the_reference_and_change_its_output(reference_text):
    """Guards against the reference drifting away from the fingerprints (model/gpt.py edits)."""
    ref = harness.reference()
    model = harness.perturb(harness.reference_model())
    idx, targets = harness.batches(1)[0]
    with torch.no_grad():
        want = (model(idx), model(idx, targets))
    for bug in fingerprints.BUGS:
        if bug.fn is not None:
            continue
        comp = BY_NAME[bug.component]
        variant = fingerprints.variant_function(comp, bug, ref, reference_text)  # raises if it no longer applies
        owner_name, _, attr = comp.target.rpartition(".")
        owner = getattr(ref, owner_name) if owner_name else ref
        undo: list = []
        patch(owner, attr, variant, model, undo)  # also where a module holds the function (self.attend)
        try:
            with torch.no_grad():
                got = (model(idx), model(idx, targets))
        finally:
            unpatch(undo)
        same = compare(got, want)[0]
        assert same == bug.equivalent, f"{bug.component}: {bug.name} (equivalent={bug.equivalent})"


def test_init_mismatch_names_the_parameter(complete_text, reference_text, ws_file):
    comp = BY_NAME["init"]
    body = source.span_text(complete_text, source.locate(complete_text, comp))
    body = body.replace("zeros_(block.attn.c_proj.weight)", "normal_(block.attn.c_proj.weight, std=0.02)")
    assert "normal_(block.attn.c_proj.weight" in body
    ws_file.write_text(source.replace(complete_text, source.locate(complete_text, comp), body))
    f = check.run_step(ws_file).findings[0]
    assert f.component == "init" and "attn.c_proj.weight" in f.message and "zero" in f.message


def test_error_inside_a_component_is_located(complete_text, ws_file):
    comp = BY_NAME["mlp"]
    text = source.replace(complete_text, source.locate(complete_text, comp),
                          "h = self.c_fc(x)\nreturn self.c_proj(h[..., :10])")
    ws_file.write_text(text)
    f = check.run_step(ws_file).findings[0]
    assert f.kind == "error" and f.component == "mlp"
    line = int(f.where.split(":")[1])
    assert "h[..., :10]" in text.splitlines()[line - 1]
    assert "x" in f.inputs


def test_missing_ignore_index_is_explained(complete_text, ws_file):
    comp = BY_NAME["loss"]
    text = source.replace(complete_text, source.locate(complete_text, comp),
                          "if targets is None:\n    return logits\n"
                          "return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))", region="loss")
    ws_file.write_text(text)
    f = check.run_step(ws_file).findings[0]
    assert f.component == "loss" and "ignore_index" in (f.cause or "")


@pytest.mark.parametrize("component,body,case", [
    ("sdpa", "return F.scaled_dot_product_attention(q, k, v, is_causal=True)", "grouped-query"),
    ("sdpa", "return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.size(1) != k.size(1))",
     "after 5 cached positions"),
    ("attention", ATTENTION.replace("v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)",
                                    "v = self.c_v(x).view(B, T, self.n_head, -1)"), "grouped-query"),
], ids=["sdpa-no-gqa", "sdpa-ignores-n_past", "attention-gqa-view"])
def test_probes_catch_what_the_training_pass_misses(component, body, case, complete_text, ws_file):
    """GQA and cached prefixes are not on the tiny training path; the probes still catch them."""
    comp = BY_NAME[component]
    ws_file.write_text(source.replace(complete_text, source.locate(complete_text, comp), body))
    f = check.run_step(ws_file).findings[0]
    assert f.component == component and case in f.message, f
