"""`nanochat chat`: missing checkpoint is exit 2 naming the fix; a saved checkpoint answers -p."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from nanochat_cli.paths import Paths
from nanochat_cli.checkpoint import save_checkpoint
from tests.tiny import byte_gpt


def test_chat_without_checkpoint_names_the_fix(run_cli):
    r = run_cli("chat", "-i", "sft", "-p", "hi")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "nanochat train sft" in r.stderr


def _save_tiny(home, phase: str) -> None:
    model, tok = byte_gpt(seq_len=64, n_embd=64, n_head=1, spread=0.5)
    cfg = model.config
    meta = {"phase": phase, "run_id": "t", "model_config": asdict(cfg), "num_iterations": 1,
            "tokenizer": {"kind": "byte", "vocab_size": tok.vocab_size, "fingerprint": None}}
    save_checkpoint(Paths(home).run_checkpoints("t", phase), 1, model.state_dict(), [], meta)


def test_chat_one_shot_answers_from_a_checkpoint(run_cli, home):
    _save_tiny(home, "sft")
    r = run_cli("chat", "-i", "sft", "-p", "Hello, who are you?", "--temperature", "0", "--max-tokens", "12")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() != ""


def test_chat_interactive_session_handles_commands_and_eof(run_cli, home):
    _save_tiny(home, "sft")
    r = run_cli("chat", "--max-tokens", "5", input="hello\n/clear\nagain\n")  # ends with EOF (Ctrl-D)
    assert r.returncode == 0, r.stderr
    assert "conversation cleared" in r.stdout and r.stdout.count("model>") == 2


def test_chat_base_completion(run_cli, home):
    _save_tiny(home, "base")
    r = run_cli("chat", "-i", "base", "-p", "The capital", "-t", "0", "--max-tokens", "8")
    assert r.returncode == 0, r.stderr


def test_ctrl_c_mid_reply_keeps_the_session_usable():
    """A reply stopped by Ctrl-C leaves no unanswered user turn: the next message still renders."""
    import pytest

    from nanochat_cli.chat_session import ChatSession
    from nanochat_cli.model.engine import GenerationConfig
    from nanochat_cli.model.inference import LoadedModel

    model, tok = byte_gpt(seq_len=256)
    session = ChatSession(LoadedModel(model, tok, {}, 1, "x", "sft"), GenerationConfig(max_tokens=4, temperature=0.0))

    def interrupt(_piece):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.reply("hello", on_text=interrupt)
    assert session.messages == []
    session.reply("hello again")
    assert [m["role"] for m in session.messages] == ["user", "assistant"]


def _session(phase: str, seq_len: int = 64, max_tokens: int = 8):
    from nanochat_cli.chat_session import ChatSession
    from nanochat_cli.model.engine import GenerationConfig
    from nanochat_cli.model.inference import LoadedModel

    model, tok = byte_gpt(seq_len=seq_len)
    return ChatSession(LoadedModel(model, tok, {}, 1, "x", phase),
                       GenerationConfig(max_tokens=max_tokens, temperature=0.0))


def _one_line(r) -> str:
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr


def test_a_prompt_longer_than_the_context_is_refused_in_one_line(run_cli, home):
    """Refused, not cut from the left: a cut prompt would be answered as a different question."""
    for phase in ("sft", "base"):
        _save_tiny(home, phase)
        r = run_cli("chat", "-i", phase, "-p", "hello " * 100, "--max-tokens", "4")
        assert r.returncode == 2 and r.stdout == "", r.stderr
        err = _one_line(r)
        assert "64 tokens at most" in err and "shorten it to at most 60 tokens" in err, err


def test_a_long_message_in_a_session_is_refused_and_the_session_goes_on(run_cli, home):
    _save_tiny(home, "sft")
    r = run_cli("chat", "--max-tokens", "4", "-t", "0", input="hi\n" + "hello " * 100 + "\nagain\n")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.count("model>") == 2
    assert sum(line.startswith("not sent: the message is") for line in r.stderr.splitlines()) == 1, r.stderr


def test_a_refused_message_leaves_the_history_as_it_was():
    from nanochat_cli.errors import UsageError

    session = _session("sft")
    session.reply("hi")
    before = list(session.messages)
    with pytest.raises(UsageError):
        session.reply("word " * 100)
    assert session.messages == before
    session.reply("hi again")
    assert [m["role"] for m in session.messages] == ["user", "assistant"] * 2


def test_old_turns_are_forgotten_whole_with_a_note():
    session = _session("sft", max_tokens=4)
    for i in range(6):
        turn = session.prepare(f"message number {i} " * 2)
        session.respond(turn)
    assert len(session.prepare("x").ids) <= session.prompt_limit
    roles = [m["role"] for m in session.messages]
    assert roles == ["user", "assistant"] * (len(roles) // 2) and len(roles) < 12  # alternation kept, oldest gone
    assert session.messages[-2]["content"] == "message number 5 " * 2
    turn = session.prepare("message number 6 " * 2)
    assert turn.dropped >= 1 and session.notices(turn)[0].startswith("note: forgot the")


def test_a_reply_that_runs_into_the_end_of_the_context_stops_there_with_a_note():
    session = _session("base", seq_len=32, max_tokens=1000)
    session.engine.stop_ids = set()  # never stop early: run into the context's end
    answer = session.reply("abc")
    assert len(answer.encode("utf-8", "surrogatepass")) >= 1 and session.stopped_at_context
    assert session.notices() == ["note: the reply stopped at the end of the model's 32-token context"]


def test_ctrl_c_after_old_turns_were_forgotten_keeps_the_whole_history():
    """The turn commits only when its reply is complete: an interrupted reply that needed old turns dropped
    leaves every old turn and no unanswered message (it used to leave the new user message behind)."""
    session = _session("sft", max_tokens=4)
    while not session.prepare("another message " * 2).dropped:
        session.reply("another message " * 2)
    before = list(session.messages)

    def interrupt(_piece):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.reply("another message " * 2, on_text=interrupt)
    assert session.messages == before
    session.reply("after the interruption")
    assert [m["role"] for m in session.messages][-2:] == ["user", "assistant"]


def test_bytes_that_are_not_utf8_become_replacement_characters(run_cli, home):
    """A terminal in another encoding: Python hands such bytes over as lone surrogates, which broke the encode."""
    import os

    _save_tiny(home, "sft")
    r = run_cli("chat", "-p", os.fsdecode(b"caf\xe9?"), "-t", "0", "--max-tokens", "2")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    session = _session("sft")
    session.reply(os.fsdecode(b"\xff\xfe hi"))
    assert session.messages[0]["content"] == "\ufffd\ufffd hi"


def test_a_turn_token_sampled_mid_reply_ends_the_reply():
    """Seen after a cpu-tiny speedrun: the reply printed `<|user_end|><|assistant_start|>` and a made-up next
    turn. A turn token ends the reply like <|assistant_end|>, and the history keeps only the reply."""
    from nanochat_cli.chat_session import ChatSession
    from nanochat_cli.model.engine import GenerationConfig
    from nanochat_cli.model.inference import LoadedModel
    from tests.serve.conftest import scripted_model

    model, tok = scripted_model(seq_len=256, turn_break=True)
    session = ChatSession(LoadedModel(model, tok, {}, 1, "x", "sft"), GenerationConfig(max_tokens=60, temperature=0))
    shown: list[str] = []
    answer = session.reply("hi", on_text=shown.append)
    assert answer == "<script><|python_start|>6*7<|python_end|><|output_start|>42<|output_end|> la"
    assert "".join(shown) == answer and not session.stopped_at_context
    assert session.messages[-1] == {"role": "assistant", "content": answer}
