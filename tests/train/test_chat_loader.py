"""Mid packing and SFT padding: shapes, the assistant-only mask, and exact resume from state_dict()."""

from __future__ import annotations

import json

import pytest
import torch

from nanochat_cli.tasks.arithmetic import Arithmetic
from nanochat_cli.tasks.chitchat import ChitChat
from nanochat_cli.tasks.quiz import Quiz
from nanochat_cli.tasks.task import TaskMixture
from nanochat_cli.tokenizer.byte_level import ByteTokenizer
from nanochat_cli.tokenizer.chat import render_conversation
from nanochat_cli.train.chat_loader import PackedChatLoader, PaddedChatLoader

TOK = ByteTokenizer()


@pytest.fixture(scope="module")
def mixture():
    return TaskMixture([Arithmetic(40), Quiz(40), ChitChat("test")])


def test_render_mask_is_assistant_only():
    conv = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                         {"role": "assistant", "content": [{"type": "text", "text": "a"},
                                                           {"type": "python", "text": "1+1"},
                                                           {"type": "python_output", "text": "2"},
                                                           {"type": "text", "text": "b"}]},
                         {"role": "user", "content": "V"}, {"role": "assistant", "content": "c"}]}
    ids, mask = render_conversation(TOK, conv)
    learned = TOK.decode([i for i, m in zip(ids, mask) if m])
    ignored = TOK.decode([i for i, m in zip(ids, mask) if not m])
    assert learned == ("a<|python_start|>1+1<|python_end|>b<|assistant_end|>c<|assistant_end|>")
    assert ignored == ("<|bos|><|user_start|>S\n\nU<|user_end|><|assistant_start|><|output_start|>2<|output_end|>"
                       "<|user_start|>V<|user_end|><|assistant_start|>")
    assert render_conversation(TOK, conv, max_tokens=5) == (ids[:5], mask[:5])


def test_packed_rows_are_the_concatenated_conversations(mixture):
    loader = PackedChatLoader(mixture, TOK, 2, 64)
    x, y = next(loader)
    assert x.shape == y.shape == (2, 64) and x.dtype == torch.long
    stream = []
    for i in range(10):
        stream += render_conversation(TOK, mixture[i])[0]
    flat = torch.tensor(stream[:129])
    assert torch.equal(x.reshape(-1), flat[:-1]) and torch.equal(y.reshape(-1), flat[1:])


def test_padded_targets_only_on_assistant_tokens(mixture):
    loader = PaddedChatLoader(mixture, TOK, 4, 128)
    x, y = next(loader)
    assert x.shape == y.shape == (4, 128)
    for row in range(4):
        ids, mask = render_conversation(TOK, mixture[row], 129)
        n = len(ids) - 1
        expect = [t if m else -1 for t, m in zip(ids[1:], mask[1:])]
        assert y[row, :n].tolist() == expect and (y[row, n:] == -1).all()
        assert x[row, :n].tolist() == ids[:-1]
        assert (x[row, n:] == TOK.special_id("<|assistant_end|>")).all()
        assert (y[row] >= 0).any()


@pytest.mark.parametrize("cls", [PackedChatLoader, PaddedChatLoader])
@pytest.mark.parametrize("world", [1, 2])
def test_exact_resume(mixture, cls, world):
    def stream(state=None, n=6, rank=0):
        loader = cls(mixture, TOK, 3, 48, rank=rank, world_size=world)
        if state is not None:
            loader.load_state_dict(json.loads(json.dumps(state)))  # what a checkpoint stores
        return loader, [next(loader) for _ in range(n)]

    loader, first = stream(n=4)
    state = loader.state_dict()
    _, rest = stream(state, n=4)
    _, straight = stream(n=8)
    for (a, b), (c, d) in zip(first + rest, straight):
        assert torch.equal(a, c) and torch.equal(b, d)
    if world == 2:  # ranks read different conversations
        _, other = stream(n=1, rank=1)
        assert not torch.equal(other[0][0], straight[0][0])


def test_padded_skips_conversations_without_assistant_tokens():
    long_user = {"messages": [{"role": "user", "content": "x" * 200}, {"role": "assistant", "content": "y"}]}
    short = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}

    class Two:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return [long_user, short][i]

    x, y = next(PaddedChatLoader(Two(), TOK, 2, 32))
    assert ((y >= 0).sum(dim=1) > 0).all()  # both rows hold the short one: the long one was skipped
