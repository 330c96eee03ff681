"""MMLU, GSM8K, ARC and SmolTalk built from real-schema fixtures loaded with real `datasets`."""

from __future__ import annotations

import pytest

from nanochat_cli.tasks.arc import ARC
from nanochat_cli.tasks.gsm8k import GSM8K, answer_to_parts
from nanochat_cli.tasks.mmlu import MMLU
from nanochat_cli.tasks.smoltalk import SmolTalk
from nanochat_cli.tasks.task import shuffled_rows
from nanochat_cli.tokenizer.byte_level import ByteTokenizer
from nanochat_cli.tokenizer.chat import render_conversation
from tests.tasks import hf_fixtures as F


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    return F.build(tmp_path_factory.mktemp("hub"))


def test_mmlu_all_test_renders_letters_after_choices(hub):
    task = MMLU(F.load(hub, "cais/mmlu", "all", "test"), subset="all")
    assert len(task) == 12 and task.eval_type == "categorical"
    conv = task[0]
    user, reply = conv["messages"][0]["content"], conv["messages"][1]["content"]
    q = user.splitlines()[0].removeprefix("Multiple Choice question: ")
    letter = q.split("option ")[1][0]  # the fixture's question names its answer
    assert reply == letter and conv["letters"] == ("A", "B", "C", "D")
    assert user.splitlines()[1:5] == [f"- {c}={L}" for L, c in zip("ABCD", [l[2:-2] for l in user.splitlines()[1:5]])]
    assert user.endswith("\n\nRespond only with the letter of the correct answer.")
    assert "=A" in user and "= A" not in user  # no space before the letter: same token as the reply
    assert task.evaluate(conv, letter) == 1 and task.evaluate(conv, "ABCD".replace(letter, "")[0]) == 0


def test_mmlu_auxiliary_train_unwraps_the_train_struct(hub):
    ds = F.load(hub, "cais/mmlu", "auxiliary_train", "train")
    assert list(ds.features) == ["train"]  # the real config's single struct column
    task = MMLU(ds, subset="auxiliary_train")
    convs = [task[i] for i in range(len(task))]
    assert {c["subject"] for c in convs} == {""}
    assert all(c["messages"][1]["content"] in "ABCD" for c in convs)


def test_row_shuffle_matches_datasets_shuffle(hub):
    ds = F.load(hub, "cais/mmlu", "all", "test")
    as_list = shuffled_rows([ds[i] for i in range(len(ds))])
    assert [r["question"] for r in as_list] == ds.shuffle(seed=42)["question"]


def test_gsm8k_calculator_annotations_become_tool_parts(hub):
    task = GSM8K(F.load(hub, "openai/gsm8k", "main", "train"))
    parts = task[0]["messages"][1]["content"]
    assert parts == answer_to_parts(F.GSM8K_ANSWER)
    assert [p["type"] for p in parts] == ["text", "python", "python_output", "text", "python", "python_output",
                                          "text"]
    assert parts[1]["text"] == "48/2" and parts[2]["text"] == "24"
    assert parts[4]["text"] == "48+24" and parts[5]["text"] == "72"
    assert parts[-1]["text"].endswith("#### 72")
    assert answer_to_parts("a <<2*3>> b")[1:3] == [{"type": "python", "text": "2*3"},
                                                  {"type": "python_output", "text": ""}]
    assert answer_to_parts("x <<a=b=7>>7")[1]["text"] == "a=b"  # split at the last "="


def test_gsm8k_grading_reads_the_final_number(hub):
    task = GSM8K(F.load(hub, "openai/gsm8k", "main", "test"))
    conv = task[0]
    assert task.eval_type == "generative"
    assert task.evaluate(conv, "so the answer is\n#### 72") == 1
    assert task.evaluate(conv, "#### 72.0") == 0
    assert task.evaluate(conv, "#### 7,2") == 1  # commas are dropped, as in the official grader
    assert task.evaluate(conv, "72") == 0        # no marker, no credit


def test_gsm8k_tool_output_is_not_learned(hub):
    tok = ByteTokenizer()
    conv = GSM8K(F.load(hub, "openai/gsm8k", "main", "train"))[0]
    ids, mask = render_conversation(tok, conv, max_tokens=None)
    out_start, out_end = tok.special_id("<|output_start|>"), tok.special_id("<|output_end|>")
    py_start = tok.special_id("<|python_start|>")
    inside = False
    for i, m in zip(ids, mask):
        if i == out_start:
            inside = True
        if inside or i == py_start:
            assert m == (0 if inside else 1)
        if i == out_end:
            inside = False
    assert tok.decode([i for i, m in zip(ids, mask) if m]).count("<|python_start|>") == 2


def test_arc_keeps_numeric_labels_and_five_choices(hub):
    task = ARC(F.load(hub, "allenai/ai2_arc", "ARC-Challenge", "train"), subset="ARC-Challenge", shuffle=False)
    numeric, five, three = task[0], task[1], task[2]
    assert numeric["letters"] == ("1", "2", "3", "4") and numeric["messages"][1]["content"] == "1"
    assert "- one=1\n" in numeric["messages"][0]["content"]
    assert five["letters"] == tuple("ABCDE") and "- planet=E" in five["messages"][0]["content"]
    assert three["letters"] == tuple("ABC")
    assert task.evaluate(five, five["messages"][1]["content"]) == 1


def test_smoltalk_system_message_merges_into_first_user_turn(hub):
    task = SmolTalk(F.load(hub, "HuggingFaceTB/smol-smoltalk", None, "train"), shuffle=False)
    assert len(task) == 20
    with_system = task[1]
    assert with_system["messages"][0]["role"] == "system"
    tok = ByteTokenizer()
    ids, mask = render_conversation(tok, with_system)
    text = tok.decode(ids)
    assert text.startswith("<|bos|><|user_start|>You are kind.\n\nHello 1<|user_end|>")
    assert tok.decode([i for i, m in zip(ids, mask) if m]) == "Hi there 1!<|assistant_end|>"


def test_smoltalk_rejects_malformed_rows():
    bad = [{"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}]}]
    with pytest.raises(ValueError, match="expected a 'user'"):
        SmolTalk(bad)[0]


def test_slices_follow_the_shuffle(hub):
    ds = F.load(hub, "openai/gsm8k", "main", "train")
    full, head = GSM8K(ds), GSM8K(ds, stop=4)
    assert len(head) == 4 and [head[i] for i in range(4)] == [full[i] for i in range(4)]
    with pytest.raises(IndexError):
        head[4]
