"""One `learn step`: build the learner's model, give it the reference's weights, run one tiny training
iteration, and check every component it reached against the reference on the same inputs.

Order: construction (rotary table) → forward pass, checking each traced call in the order calls
*finish* (inner code before the code that called it, so a bug is blamed on the innermost component
that has it) → loss → gradients → init → KV-cache decoding → a short training run compared with the
reference's loss curve. Each component is checked in isolation: the learner's code runs on the inputs
their own model produced, with every *other* component swapped for the reference's, so one bug is
reported once, where it is. `stop_first` (learn step) stops at the first TODO or failure;
without it (status, check) todo components are swapped for the reference and everything is checked.
All of it runs under `guard.guarded`: an endless loop is stopped at the time limit and an exit call is
reported, both like any other error in the component that was running.
Costs ~0.3 s at the tiny config on 2 cores, on top of importing torch.
`Session` runs the stages and records what they find; the checks live in build_checks, forward_checks
and training_checks, and explain turns an exception into a finding.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import ModuleType

import torch

from nanochat_cli.learn import build_checks, guard, harness, loader, source, training_checks
from nanochat_cli.learn.components import BY_NAME, COMPONENTS
from nanochat_cli.learn.explain import Explainer
from nanochat_cli.learn.findings import Finding, Passed, Report, Stop
from nanochat_cli.learn.forward_checks import BLOCK, CALL_CHECKS, ForwardChecks, block_inputs, check_logits
from nanochat_cli.learn.progress import NOT_REACHED
from nanochat_cli.learn.swap import swapped
from nanochat_cli.learn.trace import Call, Tracer


class Session:
    """One run over the learner's file: the stages in order, and the findings and per-component results
    they produced (what `learn step`, `status` and `check` print)."""

    def __init__(self, gpt_file: Path, stop_first: bool = True, time_limit: float | None = guard.DEFAULT_TIME_LIMIT):
        self.file = Path(gpt_file)
        self.stop_first = stop_first
        self.time_limit = time_limit
        self.stage = "importing gpt.py"  # what runs now: named when the learner's code stops it
        self.text = self.file.read_text(encoding="utf-8")
        self.todo = {c.name for c in COMPONENTS if source.is_todo(self.text, c)}
        self.findings: list[Finding] = []
        self.results: dict[str, tuple[str, str]] = {}
        self.curve: dict | None = None
        self.ref = harness.reference()
        self.explainer = Explainer(self.file, self.text, self.ref)
        # The one batch every stage runs on: inputs (B, T) and their next-token targets.
        self.idx, self.targets = harness.batches(1)[0]
        # Set by the stages as they get that far; None before.
        self.user: ModuleType | None = None  # the learner's gpt.py, imported
        self.ref_model: torch.nn.Module | None = None  # the reference at the tiny config, perturbed
        self.model: torch.nn.Module | None = None  # the learner's GPT holding ref_model's weights
        self.checks: ForwardChecks | None = None

    # ---------------------------------------------------------------------------------------------
    # bookkeeping

    def _passed(self, name: str, note: str = "matches the reference") -> None:
        if name not in self.results:
            self.results[name] = ("done", note)

    def _found(self, finding: Finding) -> None:
        """Record a finding (a component's first failure only) and, in step mode, stop the run."""
        if finding.where is None and finding.component is not None:
            finding.where = self.explainer.component_where(finding.component)
        if finding.component is not None:
            if self._status(finding.component) == "failing":
                return
            status = "todo" if finding.kind == "todo" else "failing"
            note = finding.cause or finding.message if finding.kind != "todo" else "not implemented"
            self.results[finding.component] = (status, note[:120])
        self.findings.append(finding)
        if self.stop_first:
            raise Stop

    def _record(self, outcome: Finding | Passed | None) -> None:
        """What a check returned: a finding, a pass, or None (nothing to record)."""
        if isinstance(outcome, Finding):
            self._found(outcome)
        elif isinstance(outcome, Passed):
            self._passed(outcome.component, outcome.note)

    def _status(self, name: str) -> str:
        return self.results.get(name, ("",))[0]

    def _stood_in(self, name: str) -> bool:
        """A TODO the reference stands in for (status and check); step mode runs into it instead."""
        return name in self.todo and not self.stop_first

    # ---------------------------------------------------------------------------------------------
    # stages

    def run(self) -> Report:
        t0 = time.perf_counter()
        harness.setup_torch()
        try:
            with guard.guarded(self.time_limit, str(self.file), self.explainer.name_line):
                self._run_stages()
        except Stop:
            pass
        except (guard.Stopped, SystemExit) as e:  # unwound from wherever the learner's code was
            try:
                self._found(self.explainer.exception(e, self.stage, self.model, self.ref_model))
            except Stop:
                pass
        for comp in COMPONENTS:
            if comp.name not in self.results:
                if comp.name in self.todo:
                    self.results[comp.name] = ("todo", "not implemented")
                else:
                    self.results[comp.name] = ("todo", NOT_REACHED)
        ordered = {c.name: self.results[c.name] for c in COMPONENTS}
        return Report(str(self.file.parent), self.findings, ordered, self.curve, time.perf_counter() - t0)

    def _run_stages(self) -> None:
        try:
            self.user = loader.load_module(self.file)
        except Exception as e:  # noqa: BLE001 - any import-time error is the learner's to see
            self._found(self.explainer.exception(e, "importing gpt.py"))
            raise Stop
        # In status/check mode the reference stands in for TODOs (a TODO region: its whole function).
        substitutes = [] if self.stop_first else [BY_NAME[n] for n in self.todo]
        with swapped(self.user, self.ref, substitutes):
            self.ref_model = harness.perturb(harness.reference_model())
            self.stage = "GPTConfig"
            for comp in self._checked("config"):
                self._record(build_checks.check_config(comp, self.user, self.explainer))
            self.stage = "building GPT(config)"
            self._build()
            self.stage = "the forward pass"
            self._forward_pass()
            self.stage = "the loss and its gradients"
            self._loss_and_grads()
            self.stage = "init_weights"
            if not self._stood_in("init"):
                self._record(training_checks.check_init(self.user, self.explainer))
            self.stage = "decoding with the KV cache"
            if not self._stood_in("kv-cache"):
                self._record(training_checks.check_kv_cache(self.user, self.model, self.ref_model, self.idx,
                                                            self.explainer))
        # The curve trains both models for harness.CURVE_STEPS steps: worth it, and telling, only once
        # every component matches.
        if not self.findings and all(self._status(c.name) == "done" for c in COMPONENTS):
            self.stage = "the short training run"
            self.curve, finding = training_checks.compare_loss_curves(self.user)
            self._record(finding)

    def _checked(self, kind: str) -> list:
        """The components checked as `kind` that this run checks (not the TODOs the reference stands in for)."""
        return [c for c in COMPONENTS if c.check == kind and not self._stood_in(c.name)]

    def _build(self) -> None:
        """The learner's model holding the reference's weights, and the buffers their code computed."""
        built = build_checks.build_model(self.user, self.ref_model, self.explainer)
        if isinstance(built, Finding):
            self._found(built)
            raise Stop  # nothing later can run without a model holding the reference's weights
        # Non-persistent buffers (the rotary table) are computed by the learner's own code.
        for comp in self._checked("buffers"):
            self._record(build_checks.check_buffers(comp, built, self.ref_model))
        self.model = built
        self.checks = ForwardChecks(self.explainer, self.user, self.model, self.ref_model)

    def _forward_pass(self) -> None:
        """The learner's forward pass as they wrote it, traced; then every event checked in the order it
        finished: the embedding (what the first block receives), each traced call (alone), the error."""
        tracer = Tracer(self.user, self.model, {c.target: c.name for c in CALL_CHECKS})
        logits = error = None
        with tracer:
            try:
                logits = self.model(self.idx)
            except Exception as e:  # noqa: BLE001 - reported after the calls that finished before it
                error = e
        calls = tracer.finished()
        ref_logits, ref_first = self.checks.reference_outputs(self.idx)
        events: list[tuple[float, Call | tuple]] = [(c.end, c) for c in calls]
        embedding = self._embedding_output(calls)
        if embedding is not None:
            events.append(embedding)
        emb = BY_NAME["embedding"]
        for _, item in sorted(events, key=lambda e: e[0]):
            if isinstance(item, Call):
                self._check_call(item)
            else:
                self._record(self.checks.region(emb, item, ref_first,
                                                lambda bug: self.checks.variant_block_input(emb, bug, self.idx)))
        if error is not None:
            self._found(self.explainer.exception(error, "the forward pass", self.model, self.ref_model))
            raise Stop
        if not self.findings:
            self._record(check_logits(logits, ref_logits))

    def _embedding_output(self, calls: list[Call]) -> tuple[float, tuple] | None:
        """(when, what) the learner's embedding handed to the first block: when is just before that block
        started, on the calls' clock, so the embedding is checked before anything it feeds."""
        if "embedding" in self.todo:
            return None
        blocks = [c for c in calls if c.qualname == BLOCK]
        first = block_inputs(blocks[0]) if blocks else None
        if not self.stop_first:
            try:  # isolated: the learner's region around the reference's components
                first = self.checks.learner_outputs(self.idx)[1]
            except Exception:  # noqa: BLE001 - the traced run reports it
                pass
        if first is None:
            return None
        return ((blocks[0].start - 0.5) if blocks else 0, first)

    def _check_call(self, call: Call) -> None:
        """One traced call of a function component, unless that component has already failed."""
        comp = BY_NAME[call.component]
        if self._status(comp.name) == "failing" or comp.name in self.todo:
            return  # reported once, where it is; a TODO is the reference's code, or has stopped the step
        finding = self.checks.call(comp, call)
        if finding is not None:
            self._found(finding)
        elif comp.name not in self.results:  # its first matching call: now the cases training never reaches
            self._record(self.checks.probe(comp))

    def _loss_and_grads(self) -> None:
        """The loss region on targets with ignored positions (mean and per token), then the gradients."""
        loss_comp = BY_NAME["loss"]
        # The loss as the learner computes it (their forward pass, all their components).
        masked = self.targets.clone()
        masked[0, :5] = -1  # positions to ignore, as the SFT loader produces them
        try:
            loss = self.model(self.idx, masked)
        except Exception as e:  # noqa: BLE001
            self._found(self.explainer.exception(e, "the loss", self.model, self.ref_model))
            raise Stop
        ref_loss = self.ref_model(self.idx, masked)
        if self._stood_in(loss_comp.name):
            return  # the reference's GPT.forward stands in: nothing of the learner's to check here
        got_loss = loss.detach() if self.stop_first else self.checks.learner_outputs(self.idx, masked)[0]
        self._record(self.checks.region(loss_comp, got_loss, ref_loss.detach(),
                                        lambda bug: self.checks.variant_outputs(loss_comp, bug, self.idx, masked)))
        if self._status(loss_comp.name) == "done":
            per_token, _ = self.checks.learner_outputs(self.idx, masked, loss_reduction="none")
            ref_per_token = self.ref_model(self.idx, masked, loss_reduction="none").detach()
            self._record(self.checks.region(loss_comp, per_token, ref_per_token))
        self._record(self.checks.gradients(loss, ref_loss))


def run_step(gpt_file: Path, stop_first: bool = True, time_limit: float | None = guard.DEFAULT_TIME_LIMIT) -> Report:
    """One step over the learner's file; `time_limit` seconds (None: none) for everything it runs."""
    return Session(gpt_file, stop_first=stop_first, time_limit=time_limit).run()
