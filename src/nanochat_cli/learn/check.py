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
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from nanochat_cli.learn import fingerprints, guard, harness, loader, probes, source, training_checks
from nanochat_cli.learn.components import BY_NAME, COMPONENTS
from nanochat_cli.learn.findings import Finding, Report, Stop, compare
from nanochat_cli.learn.progress import NOT_REACHED
from nanochat_cli.learn.trace import Tracer, bind_inputs, describe, detach, locate_exception, patch, unpatch

CALL_CHECKS = [c for c in COMPONENTS if c.check == "call"]
BLOCK = BY_NAME["block"].target


def _owner(module, qualname: str):
    owner_name, _, attr = qualname.rpartition(".")
    return (getattr(module, owner_name) if owner_name else module), attr


@contextlib.contextmanager
def swapped(user_mod, ref_mod, comps, model=None):
    """Temporarily replace the learner's functions for `comps` with the reference's (by qualname), also
    where `model`'s submodules hold the learner's function as an attribute."""
    undo: list = []
    try:
        for qualname in sorted({c.target for c in comps}):
            owner, attr = _owner(user_mod, qualname)
            ref_owner, _ = _owner(ref_mod, qualname)
            new = ref_owner.__dict__[attr] if isinstance(ref_owner, type) else getattr(ref_owner, attr)
            patch(owner, attr, new, model, undo)
        yield
    finally:
        unpatch(undo)


class Session:
    def __init__(self, gpt_file: Path, stop_first: bool = True, time_limit: float | None = guard.DEFAULT_TIME_LIMIT):
        self.file = Path(gpt_file)
        self.stop_first = stop_first
        self.time_limit = time_limit
        self.stage = "importing gpt.py"  # what runs now: named when the learner's code stops it
        self.text = self.file.read_text(encoding="utf-8")
        self.todo = {c.name for c in COMPONENTS if source.is_todo(self.text, c)}
        self.findings: list[Finding] = []
        self.results: dict[str, tuple[str, str]] = {}
        self.curve = None
        self.ref = harness.reference()
        self.ref_text = Path(self.ref.__file__).read_text(encoding="utf-8")

    # ---------------------------------------------------------------------------------------------
    # bookkeeping

    def passed(self, name: str, note: str = "matches the reference") -> None:
        if name not in self.results:
            self.results[name] = ("done", note)

    def found(self, finding: Finding) -> None:
        if finding.where is None and finding.component is not None:
            try:  # a mismatch points at the component's code in the learner's file
                finding.where = self.where(source.locate(self.text, BY_NAME[finding.component]).start + 1)
            except Exception:  # noqa: BLE001 - no line is better than a crash
                pass
        if finding.component is not None:
            if self.results.get(finding.component, ("",))[0] == "failing":
                return
            status = "todo" if finding.kind == "todo" else "failing"
            note = finding.cause or finding.message if finding.kind != "todo" else "not implemented"
            self.results[finding.component] = (status, note[:120])
        self.findings.append(finding)
        if self.stop_first:
            raise Stop

    def where(self, line: int) -> str:
        return f"{self.file.name}:{line}"

    # ---------------------------------------------------------------------------------------------
    # exceptions from the learner's code

    def exception(self, exc: BaseException, stage: str, model=None, ref_model=None) -> Finding:
        def is_component(loc) -> bool:
            return source.component_at(self.text, loc.line, COMPONENTS) is not None

        loc = locate_exception(exc, self.file, prefer=is_component)
        stopped = isinstance(exc, (guard.Stopped, SystemExit))
        if loc is None:
            if stopped:
                return Finding("error", None, f"{stage}: {guard.stopped_message(exc)}")
            return Finding("error", None, f"{stage} failed outside gpt.py: {type(exc).__name__}: {exc}")
        name = source.component_at(self.text, loc.line, COMPONENTS) or next(
            (c.name for c in COMPONENTS if c.target == loc.qualname and not c.is_region), None)
        comp = BY_NAME.get(name) if name else None
        if comp is not None and comp.debug:
            values = {n: _resolve(n, loc.locals) for n in comp.debug}
            inputs = {n: describe(v) for n, v in values.items() if v is not _MISSING}
            shown = []
        elif comp is not None and comp.is_region:
            shown = [n for n in loc.locals if n != "self"]
        else:
            shown = [n for n in loc.locals if n != "self"]
            fn_params = source.function_params(self.text, loc.qualname) if loc.qualname != "<module>" else []
            shown = [n for n in fn_params if n in loc.locals] or shown
        if loc.qualname == "<module>":
            inputs = {}  # a module's locals are its globals: nothing the learner passed in
        elif shown or not (comp is not None and comp.debug):
            inputs = {n: describe(loc.locals[n]) for n in shown[:8]}
        expected = self.expected_output(comp, loc.locals, model, ref_model) if comp else None
        if isinstance(exc, NotImplementedError):
            kind, message = "todo", (f"{comp.title}: {comp.computes}" if comp else str(exc))
        elif stopped:
            kind, message = "error", f"{stage}: {guard.stopped_message(exc)}"
        else:
            kind, message = "error", f"{type(exc).__name__}: {exc}"
        cause = None
        if "out of bounds" in str(exc) and "-1" in str(exc):
            cause = "targets contain -1 (positions to ignore): pass ignore_index=-1 to the cross-entropy"
        return Finding(kind, name, message, where=self.where(loc.line), inputs=inputs, expected=expected,
                       cause=cause, code=loc.source_line)

    def expected_output(self, comp, values: dict, model, ref_model) -> str | None:
        """What the reference returns for these inputs; else the documented output."""
        documented = next((s[5:] for s in comp.shapes if s.startswith("out:")), None)
        if comp.is_region or comp.check in ("init", "buffers"):
            return documented
        owner, attr = _owner(self.ref, comp.target)
        fn = getattr(owner, attr)
        bound = bind_inputs(fn, values)
        if bound is None:
            return documented
        _, kwargs = bound
        try:
            with torch.no_grad():
                if isinstance(owner, type):
                    path = _module_path(model, values.get("self"))
                    if path is None or ref_model is None:
                        return documented
                    out = fn(ref_model.get_submodule(path), **detach(kwargs))
                else:
                    out = fn(**detach(kwargs))
        except Exception:  # noqa: BLE001 - the documented shape is still useful
            return documented
        return describe(out)

    # ---------------------------------------------------------------------------------------------
    # stages

    def run(self) -> Report:
        t0 = time.perf_counter()
        harness.setup_torch()
        try:
            with guard.guarded(self.time_limit, str(self.file), self.name_line):
                self._run_stages()
        except Stop:
            pass
        except (guard.Stopped, SystemExit) as e:  # unwound from wherever the learner's code was
            try:
                self.found(self.exception(e, self.stage, getattr(self, "model", None),
                                          getattr(self, "ref_model", None)))
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

    def name_line(self, line: int) -> str:
        comp = source.component_at(self.text, line, COMPONENTS)
        return f"{comp or 'module-level code'} at {self.where(line)}"

    def _run_stages(self) -> None:
        self.stage = "importing gpt.py"
        try:
            self.user = loader.load_module(self.file)
        except Exception as e:  # noqa: BLE001 - any import-time error is the learner's to see
            self.found(self.exception(e, "importing gpt.py"))
            raise Stop
        # In status/check mode the reference stands in for TODOs (a TODO region: its whole function).
        with swapped(self.user, self.ref, self.substitutes()):
            self.ref_model = harness.perturb(harness.reference_model())
            self.stage = "GPTConfig"
            self.config_check()
            self.stage = "building GPT(config)"
            model = self.build()
            if model is None:
                raise Stop
            self.model = model
            self.stage = "the forward pass"
            self.forward_pass()
            self.stage = "the loss and its gradients"
            self.loss_and_grads()
            self.stage = "init_weights"
            training_checks.check_init(self)
            self.stage = "decoding with the KV cache"
            training_checks.check_kv_cache(self)
        if not self.findings and all(self.results.get(c.name, ("",))[0] == "done" for c in COMPONENTS):
            self.stage = "the short training run"
            training_checks.compare_loss_curves(self)

    def config_check(self) -> None:
        """Derived config values (the padded vocabulary) for a few sizes, including the tiny one."""
        for comp in (c for c in COMPONENTS if c.check == "config"):
            if comp.name in self.todo and not self.stop_first:
                continue
            attr = comp.target.rpartition(".")[2]
            for vocab in (harness.TINY["vocab_size"], 64, 65, 50257):
                values = {**harness.TINY, "vocab_size": vocab}
                try:
                    got = getattr(self.user.GPTConfig(**values), attr)
                except Exception as e:  # noqa: BLE001
                    self.found(self.exception(e, "GPTConfig"))
                    return
                want = getattr(self.ref.GPTConfig(**values), attr)
                if got != want:
                    self.found(Finding("mismatch", comp.name, f"GPTConfig(vocab_size={vocab}).{attr} is {got!r}, "
                                       f"the reference's is {want!r}", expected=repr(want), got=repr(got),
                                       cause="round *up* to a multiple of pad_vocab_to, with integers"))
                    return
            self.passed(comp.name)

    def substitutes(self):
        """Components to run as the reference: the TODOs, except in step mode (which must stop at them)."""
        if self.stop_first:
            return []
        return [BY_NAME[n] for n in self.todo]

    def build(self):
        try:
            torch.manual_seed(harness.SEED)
            model = self.user.GPT(self.user.GPTConfig(**harness.TINY))
        except Exception as e:  # noqa: BLE001
            self.found(self.exception(e, "building GPT(config)"))
            return None
        ref_state = self.ref_model.state_dict()
        mine = model.state_dict()
        if set(mine) != set(ref_state) or any(tuple(mine[k].shape) != tuple(v.shape) for k, v in ref_state.items()):
            missing = sorted(set(ref_state) - set(mine))
            extra = sorted(set(mine) - set(ref_state))
            shapes = [f"{k} {tuple(mine[k].shape)} not {tuple(v.shape)}" for k, v in ref_state.items()
                      if k in mine and tuple(mine[k].shape) != tuple(v.shape)]
            parts = [f"missing {missing[:3]}"] * bool(missing) + [f"unexpected {extra[:3]}"] * bool(extra) + shapes[:3]
            self.found(Finding("error", None, "your model's parameters differ from the reference's: " + "; ".join(parts),
                               cause="keep the parameter names and shapes of the skeleton's __init__ methods "
                                     "(and check the config component)"))
            return None
        model.load_state_dict(ref_state)
        model.float()
        # Non-persistent buffers (the rotary table) are computed by the learner's own code.
        for comp in (c for c in COMPONENTS if c.check == "buffers"):
            if comp.name in self.todo and not self.stop_first:
                continue
            mine = dict(model.named_buffers())
            for name, want in self.ref_model.named_buffers():
                got = mine.get(name)
                ok, err, msg = compare(got, want)
                if not ok:
                    self.found(Finding("mismatch", comp.name, f"buffer `{name}` differs from the reference: {msg}",
                                       max_error=err, expected=describe(want), got=describe(got),
                                       cause="check the frequencies base ** (-2i/head_dim) for i = 0..head_dim/2-1, "
                                             "the positions 0..seq_len-1, and cos/sin in that order"))
                    break
            else:
                self.passed(comp.name)
        return model

    def forward_pass(self) -> None:
        """The learner's forward pass as they wrote it, traced; then every event checked in the order it
        finished: the embedding (what the first block receives), each traced call (alone), the error."""
        idx, _ = harness.batches(1)[0]
        self.idx = idx
        tracer = Tracer(self.user, self.model, {c.target: c.name for c in CALL_CHECKS})
        logits = error = None
        with tracer:
            try:
                logits = self.model(idx)
            except Exception as e:  # noqa: BLE001
                error = e
        calls = tracer.finished()
        ref_logits, ref_first = self.ref_outputs(idx)
        emb = BY_NAME["embedding"]
        blocks = [c for c in calls if c.qualname == BLOCK]
        first = _block_inputs(blocks[0]) if blocks else None
        if not self.stop_first and emb.name not in self.todo:
            try:  # isolated: the learner's region around the reference's components
                first = self.model_outputs(self.model, idx)[1]
            except Exception:  # noqa: BLE001 - the traced run reports it
                pass
        events = [(c.end, "call", c) for c in calls]
        if first is not None and emb.name not in self.todo:
            events.append(((blocks[0].start - 0.5) if blocks else 0, "embedding", first))
        for _, kind, item in sorted(events, key=lambda e: e[0]):
            if kind == "call":
                comp = BY_NAME[item.component]
                if self.results.get(comp.name, ("",))[0] == "failing" or comp.name in self.todo:
                    continue
                if self.check_call(comp, item, self.ref_model) and comp.name not in self.results:
                    if self.probe(comp):
                        self.passed(comp.name)
            else:
                self.check_region(emb, item, ref_first,
                                  lambda bug: self._first_block_input(self.region_variant_outputs, emb, bug, idx))
        if error is not None:
            self.found(self.exception(error, "the forward pass", self.model, self.ref_model))
            raise Stop
        ok, err, msg = compare(logits, ref_logits)
        if not ok and not self.findings:
            self.found(Finding("mismatch", None, f"the logits differ from the reference although every component "
                               f"matches: {msg}", max_error=err,
                               cause="look at the code between components: the loop over the blocks, the final "
                                     "norm, what GPT.forward passes on"))

    def check_call(self, comp, call, ref_model) -> None:
        others = [c for c in CALL_CHECKS if c.name != comp.name]
        owner, attr = _owner(self.user, comp.target)
        ref_owner, _ = _owner(self.ref, comp.target)
        mine = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        ref_fn = ref_owner.__dict__[attr] if isinstance(ref_owner, type) else getattr(ref_owner, attr)
        user_self = self.model.get_submodule(call.path) if call.path is not None else None
        ref_self = ref_model.get_submodule(call.path) if call.path is not None else None

        def run(fn, self_obj):
            args = detach(call.args)
            with torch.no_grad():
                return fn(self_obj, *args, **detach(call.kwargs)) if self_obj is not None else fn(*args, **detach(call.kwargs))

        want = run(ref_fn, ref_self)
        try:
            with swapped(self.user, self.ref, others, self.model):
                got = run(mine, user_self)
        except Exception as e:  # noqa: BLE001
            self.found(self.exception(e, comp.name, self.model, ref_model))
            return False
        ok, err, msg = compare(got, want)
        if ok:
            return True
        names = source.function_params(self.text, comp.target)
        inputs = {(names[i] if i < len(names) else f"arg{i}"): describe(a) for i, a in enumerate(call.args)}
        inputs.update({k: describe(v) for k, v in call.kwargs.items()})
        where = f"{comp.target}" + (f" of `{call.path}`" if call.path else "")
        bug = self.fingerprint(comp, got, lambda f: run(f, ref_self))
        self.found(Finding("mismatch", comp.name, f"{comp.title} ({where}) differs from the reference: {msg}",
                           inputs=inputs, expected=describe(want), got=describe(got),
                           max_error=err, cause=bug))
        return False

    def probe(self, comp) -> bool:
        """Cases the tiny training pass never reaches, run once per component on synthetic inputs:
        grouped-query attention (fewer key/value heads) and attending after a cached prefix."""
        cases = probes.cases(comp.name, self.ref)
        if not cases:
            return True
        owner, attr = _owner(self.user, comp.target)
        others = [c for c in CALL_CHECKS if c.name != comp.name]
        for case in cases:
            try:
                with swapped(self.user, self.ref, others), torch.no_grad():
                    want = case.run_reference()
                    got = case.run_user(self.user)
            except Exception as e:  # noqa: BLE001
                finding = self.exception(e, comp.name)
                finding.message = f"{case.name}: {finding.message}"
                self.found(finding)
                return False
            ok, err, msg = compare(got, want)
            if not ok:
                self.found(Finding("mismatch", comp.name, f"{comp.title} differs from the reference for "
                                   f"{case.name}: {msg}", inputs=case.inputs, expected=describe(want),
                                   got=describe(got), max_error=err, cause=case.cause))
                return False
        return True

    def fingerprint(self, comp, got, run_variant) -> str | None:
        """The known bug whose output the learner's matches, or the closest one when clearly closer."""
        best = None
        for bug in fingerprints.bugs_for(comp.name):
            if bug.equivalent:
                continue
            try:
                variant = fingerprints.variant_function(comp, bug, self.ref, self.ref_text)
                out = run_variant(variant)
            except Exception:  # noqa: BLE001 - a variant that cannot run says nothing
                continue
            ok, err, _ = compare(got, out)
            if ok:
                return f"{bug.name}: {bug.cause}"
            if best is None or err < best[0]:
                best = (err, bug)
        return None

    def model_outputs(self, model, idx, targets=None, **kw):
        """The learner's GPT.forward with every function component swapped for the reference's."""
        with swapped(self.user, self.ref, CALL_CHECKS, model), torch.no_grad():
            tracer = Tracer(self.user, model, {BLOCK: "block"})
            with tracer:
                out = model(idx, targets, **kw) if targets is not None else model(idx, **kw)
        calls = tracer.finished()
        return out, (_block_inputs(calls[0]) if calls else None)

    def ref_outputs(self, idx, targets=None, **kw):
        with torch.no_grad():
            tracer = Tracer(self.ref, self.ref_model, {BLOCK: "block"})
            with tracer:
                out = self.ref_model(idx, targets, **kw) if targets is not None else self.ref_model(idx, **kw)
        calls = tracer.finished()
        return out, (_block_inputs(calls[0]) if calls else None)

    def region_variant_outputs(self, comp, bug, idx, targets=None, **kw):
        fn = fingerprints.variant_function(comp, bug, self.ref, self.ref_text)
        with torch.no_grad():
            return fn(self.ref_model, idx, targets, **kw) if targets is not None else fn(self.ref_model, idx, **kw)

    def check_region(self, comp, got, want, run_variant_out) -> bool:
        ok, err, msg = compare(got, want)
        if ok:
            self.passed(comp.name)
            return True
        cause = None
        for bug in fingerprints.bugs_for(comp.name):
            try:
                out = run_variant_out(bug)
            except Exception:  # noqa: BLE001
                continue
            if compare(got, out)[0]:
                cause = f"{bug.name}: {bug.cause}"
                break
        self.found(Finding("mismatch", comp.name, f"{comp.title} differs from the reference: {msg}",
                           expected=describe(want), got=describe(got), max_error=err, cause=cause))
        return False

    def loss_and_grads(self) -> None:
        idx = self.idx
        _, targets = harness.batches(1)[0]
        # The loss as the learner computes it (their forward pass, all their components).
        masked = targets.clone()
        masked[0, :5] = -1  # positions to ignore, as the SFT loader produces them
        try:
            loss = self.model(idx, masked)
        except Exception as e:  # noqa: BLE001
            self.found(self.exception(e, "the loss", self.model, self.ref_model))
            raise Stop
        ref_loss = self.ref_model(idx, masked)
        if "loss" in self.todo and not self.stop_first:
            return  # the reference's GPT.forward stands in: nothing of the learner's to check here
        got_loss = loss.detach() if self.stop_first else self.model_outputs(self.model, idx, masked)[0]
        self.check_region(BY_NAME["loss"], got_loss, ref_loss.detach(),
                          lambda bug: self.region_variant_outputs(BY_NAME["loss"], bug, idx, masked))
        if self.results.get("loss", ("",))[0] == "done":
            none, _ = self.model_outputs(self.model, idx, masked, loss_reduction="none")
            ref_none = self.ref_model(idx, masked, loss_reduction="none").detach()
            self.check_region(BY_NAME["loss"], none, ref_none, lambda bug: None)
        # Gradients: a forward that matches but detaches somewhere still trains wrongly.
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            self.found(Finding("error", "loss", "the loss has no gradient (requires_grad is False)",
                               cause="something in the forward pass runs under torch.no_grad() or uses .detach()/.data"))
            return
        loss.backward()
        ref_loss.backward()
        ref_grads = {n: p.grad for n, p in self.ref_model.named_parameters()}
        for name, p in self.model.named_parameters():
            ok, err, msg = compare(p.grad if p.grad is not None else torch.zeros_like(p), ref_grads[name]
                                   if ref_grads[name] is not None else torch.zeros_like(p))
            if not ok:
                self.found(Finding("mismatch", None, f"the gradient of `{name}` differs from the reference: {msg}",
                                   max_error=err, cause="the outputs match but the gradients do not: a .detach(), "
                                   ".data, torch.no_grad() or an in-place edit cuts the graph"))
                return

    def _first_block_input(self, run, comp, bug, idx):
        with torch.no_grad():
            tracer = Tracer(self.ref, self.ref_model, {BLOCK: "block"})
            with tracer:
                run(comp, bug, idx)
        calls = tracer.finished()
        return _block_inputs(calls[0]) if calls else None

_MISSING = object()


def _resolve(name: str, values: dict):
    """`x` or `self.vocab_size` from a frame's locals; _MISSING when absent."""
    head, *rest = name.split(".")
    obj = values.get(head, _MISSING)
    for part in rest:
        obj = getattr(obj, part, _MISSING) if obj is not _MISSING else _MISSING
    return obj


def _block_inputs(call) -> tuple:
    """What the embedding hands to the first block: its tensor arguments (x and the rotary rows)."""
    return tuple(a for a in call.args if isinstance(a, torch.Tensor))


def _module_path(model, obj) -> str | None:
    if model is None or obj is None:
        return None
    for name, m in model.named_modules():
        if m is obj:
            return name
    return None


def run_step(gpt_file: Path, stop_first: bool = True, time_limit: float | None = guard.DEFAULT_TIME_LIMIT) -> Report:
    """One step over the learner's file; `time_limit` seconds (None: none) for everything it runs."""
    return Session(gpt_file, stop_first=stop_first, time_limit=time_limit).run()
