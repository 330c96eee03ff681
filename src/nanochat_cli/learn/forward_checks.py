"""Check what the learner's forward pass computed, one component at a time, against the reference on the
same inputs and the same weights; then the gradients.

A traced call is re-run alone: the learner's function on the inputs their own model gave it, every other
component swapped for the reference's, next to the reference's function on the same inputs. A region
(embedding, loss) is compared by its output, with every function component the reference's. After a
mismatch each known bug of the component runs as a variant of the reference (fingerprints.py), ~1 ms
each at the tiny config, and the one the learner's output matches names the cause. Each check returns
what it found; check.Session records it and decides what runs next.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import torch

from nanochat_cli.learn import fingerprints, probes, source
from nanochat_cli.learn.components import BY_NAME, COMPONENTS, Component
from nanochat_cli.learn.explain import Explainer
from nanochat_cli.learn.findings import Finding, Passed, compare
from nanochat_cli.learn.swap import function_of, swapped
from nanochat_cli.learn.trace import Call, Tracer, describe, detach

CALL_CHECKS = [c for c in COMPONENTS if c.check == "call"]
BLOCK = BY_NAME["block"].target


def block_inputs(call: Call) -> tuple:
    """What the embedding hands to the first block: its tensor arguments (x and the rotary rows)."""
    return tuple(a for a in call.args if isinstance(a, torch.Tensor))


def check_logits(logits, ref_logits) -> Finding | None:
    """The whole forward pass's logits: with every component matching alone, a difference here is in the
    code between them."""
    ok, err, msg = compare(logits, ref_logits)
    if ok:
        return None
    return Finding("mismatch", None, f"the logits differ from the reference although every component "
                   f"matches: {msg}", max_error=err,
                   cause="look at the code between components: the loop over the blocks, the final "
                         "norm, what GPT.forward passes on")


@dataclass
class ForwardChecks:
    """The learner's module and model next to the reference's model, holding the same weights."""

    explainer: Explainer
    user: ModuleType
    model: torch.nn.Module
    ref_model: torch.nn.Module
    ref_text: str = field(init=False)  # the reference's source, which the bug variants are cut from

    def __post_init__(self) -> None:
        self.ref_text = Path(self.ref.__file__).read_text(encoding="utf-8")

    @property
    def ref(self) -> ModuleType:
        return self.explainer.ref

    # ---------------------------------------------------------------------------------------------
    # function components: one traced call, re-run alone

    def call(self, comp: Component, call: Call) -> Finding | None:
        """The learner's `comp` on a traced call's inputs against the reference's; None when they match."""
        others = [c for c in CALL_CHECKS if c.name != comp.name]
        mine, ref_fn = function_of(self.user, comp.target), function_of(self.ref, comp.target)
        user_self = self.model.get_submodule(call.path) if call.path is not None else None
        ref_self = self.ref_model.get_submodule(call.path) if call.path is not None else None

        def run(fn, self_obj):
            args, kwargs = detach(call.args), detach(call.kwargs)  # a fresh copy per run: code may edit in place
            with torch.no_grad():
                return fn(*args, **kwargs) if self_obj is None else fn(self_obj, *args, **kwargs)

        want = run(ref_fn, ref_self)
        try:
            with swapped(self.user, self.ref, others, self.model):
                got = run(mine, user_self)
        except Exception as e:  # noqa: BLE001 - any error in their code is theirs to see
            return self.explainer.exception(e, comp.name, self.model, self.ref_model)
        ok, err, msg = compare(got, want)
        if ok:
            return None
        names = source.function_params(self.explainer.text, comp.target)
        inputs = {(names[i] if i < len(names) else f"arg{i}"): describe(a) for i, a in enumerate(call.args)}
        inputs.update({k: describe(v) for k, v in call.kwargs.items()})
        where = f"{comp.target}" + (f" of `{call.path}`" if call.path else "")
        cause = self.fingerprint(comp, got, lambda bug: run(self.variant(comp, bug), ref_self))
        return Finding("mismatch", comp.name, f"{comp.title} ({where}) differs from the reference: {msg}",
                       inputs=inputs, expected=describe(want), got=describe(got), max_error=err, cause=cause)

    def probe(self, comp: Component) -> Finding | Passed:
        """Cases the tiny training pass never reaches, run once per component on synthetic inputs:
        grouped-query attention (fewer key/value heads) and attending after a cached prefix."""
        others = [c for c in CALL_CHECKS if c.name != comp.name]
        for case in probes.cases(comp.name, self.ref):
            try:
                with swapped(self.user, self.ref, others), torch.no_grad():
                    want = case.run_reference()
                    got = case.run_user(self.user)
            except Exception as e:  # noqa: BLE001
                finding = self.explainer.exception(e, comp.name)
                finding.message = f"{case.name}: {finding.message}"
                return finding
            ok, err, msg = compare(got, want)
            if not ok:
                return Finding("mismatch", comp.name, f"{comp.title} differs from the reference for "
                               f"{case.name}: {msg}", inputs=case.inputs, expected=describe(want),
                               got=describe(got), max_error=err, cause=case.cause)
        return Passed(comp.name)

    # ---------------------------------------------------------------------------------------------
    # regions: compared by what they hand on

    def region(self, comp: Component, got, want, run_bug=None) -> Finding | Passed:
        """A region's output against the reference's; `run_bug(bug)` gives the output with a known bug
        planted in the reference, to name the cause (None: no known bug applies to this output)."""
        ok, err, msg = compare(got, want)
        if ok:
            return Passed(comp.name)
        cause = self.fingerprint(comp, got, run_bug) if run_bug is not None else None
        return Finding("mismatch", comp.name, f"{comp.title} differs from the reference: {msg}",
                       expected=describe(want), got=describe(got), max_error=err, cause=cause)

    def learner_outputs(self, idx, targets=None, **kw):
        """The learner's GPT.forward with every function component the reference's, so only their regions
        are theirs; and what its embedding handed to the first block."""
        with swapped(self.user, self.ref, CALL_CHECKS, self.model), torch.no_grad():
            return _to_first_block(self.user, self.model, lambda: _forward(self.model, idx, targets, **kw))

    def reference_outputs(self, idx, targets=None, **kw):
        """The reference's GPT.forward, and what its embedding handed to the first block."""
        with torch.no_grad():
            return _to_first_block(self.ref, self.ref_model, lambda: _forward(self.ref_model, idx, targets, **kw))

    def variant_outputs(self, comp: Component, bug, idx, targets=None, **kw):
        """The reference's GPT.forward with `bug` planted in the region `comp`."""
        fn = self.variant(comp, bug)
        with torch.no_grad():
            return _forward(functools.partial(fn, self.ref_model), idx, targets, **kw)

    def variant_block_input(self, comp: Component, bug, idx) -> tuple | None:
        """What the first block receives when the reference's region `comp` has `bug`."""
        with torch.no_grad():
            return _to_first_block(self.ref, self.ref_model, lambda: self.variant_outputs(comp, bug, idx))[1]

    # ---------------------------------------------------------------------------------------------
    # known bugs, gradients

    def variant(self, comp: Component, bug):
        return fingerprints.variant_function(comp, bug, self.ref, self.ref_text)

    def fingerprint(self, comp: Component, got, run_bug) -> str | None:
        """The known bug whose output the learner's matches, as "name: cause"; None when none does.
        Bugs that are no bugs in this architecture are skipped: their output is the reference's."""
        for bug in fingerprints.bugs_for(comp.name):
            if bug.equivalent:
                continue
            try:
                out = run_bug(bug)
            except Exception:  # noqa: BLE001 - a variant that cannot run says nothing
                continue
            if compare(got, out)[0]:
                return f"{bug.name}: {bug.cause}"
        return None

    def gradients(self, loss, ref_loss) -> Finding | None:
        """Backpropagate both losses and compare every parameter's gradient: a forward pass that matches
        but detaches somewhere still trains wrongly."""
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            return Finding("error", "loss", "the loss has no gradient (requires_grad is False)",
                           cause="something in the forward pass runs under torch.no_grad() or uses .detach()/.data")
        loss.backward()
        ref_loss.backward()
        ref_grads = {n: p.grad for n, p in self.ref_model.named_parameters()}
        for name, p in self.model.named_parameters():
            ok, err, msg = compare(p.grad if p.grad is not None else torch.zeros_like(p), ref_grads[name]
                                   if ref_grads[name] is not None else torch.zeros_like(p))
            if not ok:
                return Finding("mismatch", None, f"the gradient of `{name}` differs from the reference: {msg}",
                               max_error=err, cause="the outputs match but the gradients do not: a .detach(), "
                               ".data, torch.no_grad() or an in-place edit cuts the graph")
        return None


def _forward(fn, idx, targets=None, **kw):
    """`fn(idx, targets, **kw)`, leaving targets out when there are none, as the training loop does."""
    return fn(idx, targets, **kw) if targets is not None else fn(idx, **kw)


def _to_first_block(module: ModuleType, model, run) -> tuple:
    """`run()`'s result with `module`'s Block.forward traced, and what the first block received (None if
    no block ran)."""
    tracer = Tracer(module, model, {BLOCK: "block"})
    with tracer:
        out = run()
    calls = tracer.finished()
    return out, (block_inputs(calls[0]) if calls else None)
