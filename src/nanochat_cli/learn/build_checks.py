"""The checks before the forward pass: GPTConfig's derived values, the learner's model built at the tiny
config with the reference's parameter names and shapes, and the buffers their own code computes.

The model is then given the (perturbed) reference weights, so every later check compares outputs of the
same numbers; a model whose parameters differ in name or shape cannot be given them, so that is where a
step ends. Each check returns what it found; check.Session records it.
"""

from __future__ import annotations

from types import ModuleType

import torch

from nanochat_cli.learn import harness
from nanochat_cli.learn.components import Component
from nanochat_cli.learn.explain import Explainer
from nanochat_cli.learn.findings import Finding, Passed, compare
from nanochat_cli.learn.trace import describe

# The tiny config's vocabulary, an exact multiple of 64 (stays as it is), one more (rounds up by 63) and
# GPT-2's 50257: rounding down, or rounding an exact multiple up, shows on one of them.
VOCAB_SIZES = (harness.TINY["vocab_size"], 64, 65, 50257)


def check_config(comp: Component, user: ModuleType, explainer: Explainer) -> Finding | Passed:
    """A derived GPTConfig value (the padded vocabulary) for a few sizes, including the tiny one."""
    attr = comp.target.rpartition(".")[2]
    for vocab in VOCAB_SIZES:
        values = {**harness.TINY, "vocab_size": vocab}
        try:
            got = getattr(user.GPTConfig(**values), attr)
        except Exception as e:  # noqa: BLE001 - any error in their code is theirs to see
            return explainer.exception(e, "GPTConfig")
        want = getattr(explainer.ref.GPTConfig(**values), attr)
        if got != want:
            return Finding("mismatch", comp.name, f"GPTConfig(vocab_size={vocab}).{attr} is {got!r}, "
                           f"the reference's is {want!r}", expected=repr(want), got=repr(got),
                           cause="round *up* to a multiple of pad_vocab_to, with integers")
    return Passed(comp.name)


def build_model(user: ModuleType, ref_model: torch.nn.Module, explainer: Explainer) -> torch.nn.Module | Finding:
    """The learner's GPT at the tiny config holding `ref_model`'s weights, in fp32; or why it cannot."""
    try:
        torch.manual_seed(harness.SEED)
        model = user.GPT(user.GPTConfig(**harness.TINY))
    except Exception as e:  # noqa: BLE001
        return explainer.exception(e, "building GPT(config)")
    ref_state = ref_model.state_dict()
    differences = _parameter_differences(model.state_dict(), ref_state)
    if differences:
        return Finding("error", None, "your model's parameters differ from the reference's: " + "; ".join(differences),
                       cause="keep the parameter names and shapes of the skeleton's __init__ methods "
                             "(and check the config component)")
    model.load_state_dict(ref_state)
    model.float()
    return model


def _parameter_differences(mine: dict, ref_state: dict) -> list[str]:
    """Missing and unexpected names and wrong shapes, at most three of each; [] when the two agree."""
    if set(mine) == set(ref_state) and all(tuple(mine[k].shape) == tuple(v.shape) for k, v in ref_state.items()):
        return []
    missing = sorted(set(ref_state) - set(mine))
    extra = sorted(set(mine) - set(ref_state))
    shapes = [f"{k} {tuple(mine[k].shape)} not {tuple(v.shape)}" for k, v in ref_state.items()
              if k in mine and tuple(mine[k].shape) != tuple(v.shape)]
    return [f"missing {missing[:3]}"] * bool(missing) + [f"unexpected {extra[:3]}"] * bool(extra) + shapes[:3]


def check_buffers(comp: Component, model: torch.nn.Module, ref_model: torch.nn.Module) -> Finding | Passed:
    """Non-persistent buffers (the rotary table): not in the weights handed over, so the learner's own
    code computed them."""
    mine = dict(model.named_buffers())
    for name, want in ref_model.named_buffers():
        got = mine.get(name)
        ok, err, msg = compare(got, want)
        if not ok:
            return Finding("mismatch", comp.name, f"buffer `{name}` differs from the reference: {msg}",
                           max_error=err, expected=describe(want), got=describe(got),
                           cause="check the frequencies base ** (-2i/head_dim) for i = 0..head_dim/2-1, "
                                 "the positions 0..seq_len-1, and cos/sin in that order")
    return Passed(comp.name)
