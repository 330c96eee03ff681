"""The checks after the forward pass: the learner's `init_weights`, decoding with their KV cache, and
— once every component matches — a short training run compared with the reference's loss curve.

Init is compared by distribution (zeros where the reference has zeros, mean and std within 20%
otherwise), because a correct init that draws its random numbers in another order is still correct.
The curve uses a hand-written Adam: `torch.optim` imports torch._dynamo on first use (~2.4 s measured),
which would nearly double a complete step. Each check returns what it found (a Finding, or Passed
with how it was checked); check.Session records it.
"""

from __future__ import annotations

from types import ModuleType

import torch

from nanochat_cli.learn import harness
from nanochat_cli.learn.components import BY_NAME
from nanochat_cli.learn.explain import Explainer
from nanochat_cli.learn.findings import Finding, Passed, compare


def check_init(user: ModuleType, explainer: Explainer) -> Finding | Passed:
    """A fresh learner's GPT after their `init_weights`, parameter by parameter, against a fresh reference."""
    comp = BY_NAME["init"]
    try:
        torch.manual_seed(harness.SEED)
        fresh = user.GPT(user.GPTConfig(**harness.TINY))
        torch.manual_seed(harness.SEED)
        fresh.init_weights()
    except Exception as e:  # noqa: BLE001 - any error in their code is theirs to see
        return explainer.exception(e, "init_weights")
    want = dict(harness.reference_model().named_parameters())
    for name, p in fresh.named_parameters():
        w = want[name].detach()
        g = p.detach()
        if compare(g.to(w.dtype), w)[0]:
            continue
        problem = _init_problem(g.float(), w.float())
        if problem:
            return Finding("mismatch", comp.name, f"`{name}` is initialised differently: {problem}",
                           expected=f"mean {w.float().mean():.3g}, std {w.float().std():.3g}",
                           got=f"mean {g.float().mean():.3g}, std {g.float().std():.3g}",
                           cause="compare your distributions and std with the reference (hint level 2)")
    return Passed(comp.name, "matches the reference's distributions")


def check_kv_cache(user: ModuleType, model, ref_model, idx: torch.Tensor,
                   explainer: Explainer) -> Finding | Passed | None:
    """Decoding with the learner's KVCache (an 8-token prompt, then 3 tokens one at a time) against the
    reference recomputing the whole prefix each time; None when their file has no KVCache to check.
    `model` holds `ref_model`'s weights; `idx` is the step's batch."""
    comp = BY_NAME["kv-cache"]
    if not hasattr(user, "KVCache"):
        return None
    cfg = harness.TINY
    prompt = idx[:1, :8]
    full = ref_model(idx[:1, :12]).detach()
    head_dim = cfg["n_embd"] // cfg["n_head"]
    try:
        with torch.no_grad():
            cache = user.KVCache(1, cfg["seq_len"], cfg["n_layer"], cfg["n_kv_head"], head_dim,
                                 device=torch.device("cpu"), dtype=torch.float32)
            outs = [model(prompt, kv_cache=cache)[:, -1]]
            for t in range(8, 11):
                outs.append(model(idx[:1, t:t + 1], kv_cache=cache)[:, -1])
    except Exception as e:  # noqa: BLE001
        return explainer.exception(e, "decoding with the KV cache", model, ref_model)
    got = torch.stack(outs, 1)
    want = full[:, 7:11]  # the logits at positions 7..10: the prompt's last, then each decoded token
    ok, err, msg = compare(got, want)
    if ok:
        return Passed(comp.name, "cached decoding matches full recomputation")
    return Finding("mismatch", comp.name, f"decoding with the KV cache differs from recomputing the "
                   f"whole prefix: {msg}", max_error=err,
                   cause="check the write position (pos), that pos advances once per forward (after the "
                         "last layer), the rotary offset (T0 = kv_cache.pos) and the mask when T_q < T_k")


def compare_loss_curves(user: ModuleType) -> tuple[dict, Finding | None]:
    """A few Adam steps of both models from the same weights and batches; the curves must agree. Returns
    the curves (yours, reference, max_difference, match) and the finding when they do not."""
    mine = user.GPT(user.GPTConfig(**harness.TINY))
    ref = harness.reference_model()
    mine.load_state_dict(ref.state_dict())
    mine.float()
    curves = {"yours": [], "reference": []}
    for model, key in ((mine, "yours"), (ref, "reference")):
        params = [p for p in model.parameters() if p.requires_grad]
        state = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        for step, (x, y) in enumerate(harness.batches(harness.CURVE_STEPS), 1):
            loss = model(x, y)
            for p in params:
                p.grad = None
            loss.backward()
            _adam_step(params, state, step)
            curves[key].append(round(float(loss.detach()), 5))
    diff = max(abs(a - b) for a, b in zip(curves["yours"], curves["reference"]))
    curve = {**curves, "max_difference": diff, "match": diff <= 1e-3 * max(curves["reference"])}
    if curve["match"]:
        return curve, None
    return curve, Finding("mismatch", None, f"training diverges from the reference (max loss difference "
                          f"{diff:.3g} over {harness.CURVE_STEPS} steps)", max_error=diff,
                          cause="every component matches once; look for state that changes between calls")


@torch.no_grad()
def _adam_step(params, state, step, lr=3e-3, b1=0.9, b2=0.95, eps=1e-8):
    """Plain Adam, written out: `torch.optim` imports torch._dynamo on first use (~2.4 s measured), which
    would nearly double a complete `learn step`."""
    for p, (m, v) in zip(params, state):
        if p.grad is None:
            continue
        m.mul_(b1).add_(p.grad, alpha=1 - b1)
        v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
        denom = (v / (1 - b2 ** step)).sqrt_().add_(eps)
        p.addcdiv_(m, denom, value=-lr / (1 - b1 ** step))


def _init_problem(got: torch.Tensor, want: torch.Tensor) -> str | None:
    """Initialisations agree when their distributions do (the order of random draws may differ)."""
    if not torch.isfinite(got).all():
        return "it contains NaN or inf"
    if float(want.abs().max()) == 0:
        return None if float(got.abs().max()) == 0 else "the reference starts it at exactly zero"
    if float(got.abs().max()) == 0:
        return f"it is all zeros; the reference draws it with std {float(want.std()):.3g}"
    ws, gs = float(want.std()), float(got.std())
    if want.numel() > 1 and not (0.8 * ws <= gs <= 1.25 * ws):
        return f"std {gs:.3g}, the reference's is {ws:.3g}"
    if abs(float(got.mean()) - float(want.mean())) > 0.2 * max(ws, 1e-8) + 1e-6:
        return f"mean {float(got.mean()):.3g}, the reference's is {float(want.mean()):.3g}"
    if want.numel() == 1 and abs(float(got) - float(want)) > 1e-6:
        return f"value {float(got):.3g}, the reference's is {float(want):.3g}"
    return None
