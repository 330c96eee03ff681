"""The batched decoder and the scheduler, in-process: same logits as the model's own forward, greedy output
bit-identical alone and batched (the property `8 concurrent == solo` rests on), samples, tools, slots."""

from __future__ import annotations

import queue

import pytest
import torch

from nanochat_cli.model.batched import BatchedDecoder
from nanochat_cli.serve.scheduler import Job, QueueFull, Sampling, Scheduler
from tests.serve.conftest import random_model, scripted_model


@pytest.fixture(scope="module")
def model_tok():
    return random_model(seq_len=256)


def test_decode_step_matches_the_full_forward(model_tok):
    """Rows of different lengths in one step (GQA model): each row's logits are the model's own (fp32 noise)."""
    model, _ = model_tok
    dec = BatchedDecoder(model, 4)
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, 250, (n,), generator=g).tolist() for n in (3, 17, 70, 130)]
    for slot, s in enumerate(seqs):
        dec.prefill(slot, s[:-1])
    logits = dec.step([s[-1] for s in seqs], [len(s) - 1 for s in seqs])
    with torch.no_grad():
        for i, s in enumerate(seqs):
            expected = model(torch.tensor([s]))[0, -1]
            torch.testing.assert_close(logits[i], expected, atol=2e-4, rtol=1e-4)


def test_probe_keeps_the_full_batch_and_only_exact_sizes(model_tok):
    model, _ = model_tok
    dec = BatchedDecoder(model, 8)
    found = dec.probe()
    assert found["batch_sizes"][-1] == 8 and found["batch_sizes"] == sorted(found["batch_sizes"])
    assert all(dec.padded(b) >= b for b in range(1, 9))
    assert float(dec.k.abs().sum()) == 0.0  # the probe leaves the cache as it found it


def _run(scheduler: Scheduler, events: queue.Queue, jobs: list[Job]) -> dict[int, list]:
    """Submit jobs (a list per step of arrival is fine) and collect {id(job): [Finished per sample]}."""
    out: dict[int, list] = {id(j): [None] * j.n for j in jobs}
    for j in jobs:
        scheduler.submit(j)
    left = sum(j.n for j in jobs)
    while left:
        job, ev = events.get(timeout=60)
        assert ev[0] == "done", ev
        out[id(job)][ev[1].index] = ev[1]
        left -= 1
    return out


@pytest.fixture(scope="module")
def scheduler(model_tok):
    model, tok = model_tok
    events: queue.Queue = queue.Queue()
    s = Scheduler(model, tok, max_batch=8, max_queue=16, threads=1)
    s.post = lambda batch: [events.put(e) for e in batch]
    s.start()
    yield s, events
    s.stop()


def test_greedy_alone_equals_batched_with_seven_others(scheduler, model_tok):
    """Requests of different lengths that join and leave at different steps (so the batch runs at every size
    from 1 to 8, rows move between slots) get exactly the tokens each gets alone."""
    s, events = scheduler
    _, tok = model_tok
    prompts = [tok.encode(f"Tell me about the number {i}." * (1 + i % 3), prepend=tok.bos_id) for i in range(8)]
    lengths = [12 + 7 * i for i in range(8)]
    sampling = [Sampling(max_tokens=n, temperature=0.0, ignore_eos=True) for n in lengths]
    alone = [_run(s, events, [j])[id(j)][0].text for j in (Job(p, k) for p, k in zip(prompts, sampling))]
    jobs = [Job(p, k, stream=True) for p, k in zip(prompts, sampling)]
    texts: dict[int, list[str]] = {id(j): [] for j in jobs}
    for j in jobs[:3]:
        s.submit(j)
    done, waiting = 0, jobs[3:]
    while done < len(jobs):
        job, ev = events.get(timeout=60)
        if ev[0] == "text":
            texts[id(job)].append(ev[2])
            if waiting and len(texts[id(job)]) == 5:  # the others join a few steps later, one by one
                s.submit(waiting.pop(0))
        else:
            assert ev[0] == "done" and ev[1].completion_tokens == lengths[jobs.index(job)]
            done += 1
            if waiting:
                s.submit(waiting.pop(0))
    assert ["".join(texts[id(j)]) for j in jobs] == alone
    assert len(set(alone)) > 1  # the prompts really lead to different replies


def test_samples_share_a_prefill_and_a_seed_reproduces_them(scheduler, model_tok):
    s, events = scheduler
    _, tok = model_tok
    prompt = tok.encode("Once upon a time", prepend=tok.bos_id)
    sampled = Sampling(max_tokens=12, temperature=1.0, top_k=50, seed=7, ignore_eos=True)
    a, b = Job(prompt, sampled, n=3), Job(prompt, sampled, n=3)
    prefills = s.stats["requests"]
    first = [f.text for f in _run(s, events, [a])[id(a)]]
    assert s.stats["requests"] == prefills + 1  # three samples, one prefill
    # the same seed beside another job gives the same samples (per-sample generators)
    again = _run(s, events, [b, Job(prompt, Sampling(max_tokens=12, temperature=0.0), n=2)])[id(b)]
    assert [f.text for f in again] == first
    assert len(set(first)) > 1  # three different samples
    greedy = Job(prompt, Sampling(max_tokens=12, temperature=0.0, ignore_eos=True), n=2)
    g = _run(s, events, [greedy])[id(greedy)]
    assert g[0].text == g[1].text and g[0].completion_tokens == 12


def test_top_p_tiny_is_greedy(scheduler, model_tok):
    s, events = scheduler
    _, tok = model_tok
    prompt = tok.encode("abc", prepend=tok.bos_id)
    greedy = Job(prompt, Sampling(max_tokens=10, temperature=0.0, ignore_eos=True))
    nucleus = Job(prompt, Sampling(max_tokens=10, temperature=1.0, top_p=1e-6, seed=3, ignore_eos=True))
    res = _run(s, events, [greedy, nucleus])
    assert res[id(greedy)][0].text == res[id(nucleus)][0].text


def test_stop_string_ends_the_reply_before_it(scheduler, model_tok):
    s, events = scheduler
    _, tok = model_tok
    prompt = tok.encode("Tell me about the number 3.", prepend=tok.bos_id)
    full = _run(s, events, [j := Job(prompt, Sampling(max_tokens=30, ignore_eos=True))])[id(j)][0]
    stop = full.text[5:7]
    cut = _run(s, events, [k := Job(prompt, Sampling(max_tokens=30, ignore_eos=True, stop=[stop]))])[id(k)][0]
    assert cut.finish_reason == "stop" and cut.text == full.text[:full.text.index(stop)]


def test_queue_limit_and_cancel_free_the_slots(model_tok):
    model, tok = model_tok
    events: queue.Queue = queue.Queue()
    s = Scheduler(model, tok, max_batch=1, max_queue=0, threads=1)
    s.post = lambda batch: [events.put(e) for e in batch]
    s.start()
    try:
        long = Job(tok.encode("x", prepend=tok.bos_id), Sampling(max_tokens=250, ignore_eos=True), stream=True)
        s.submit(long)
        with pytest.raises(QueueFull):
            s.submit(Job([tok.bos_id], Sampling(max_tokens=1)))
        events.get(timeout=30)  # it is decoding
        s.cancel(long)
        short = Job(tok.encode("y", prepend=tok.bos_id), Sampling(max_tokens=2, ignore_eos=True))
        for _ in range(200):  # the cancelled job's slot frees at the next step
            try:
                s.submit(short)
                break
            except QueueFull:
                import time

                time.sleep(0.01)
        while True:
            job, ev = events.get(timeout=30)
            if job is short:
                assert ev[0] == "done" and ev[1].completion_tokens == 2
                break
            assert job is long and ev[0] == "text"  # no "done" for a cancelled job
    finally:
        s.stop()


def _scripted_reply(turn_break: bool = False):
    """The scripted model's greedy reply to "hi" (at most 40 tokens), decoded by a real Scheduler."""
    model, tok = scripted_model(seq_len=256, turn_break=turn_break)
    events: queue.Queue = queue.Queue()
    s = Scheduler(model, tok, max_batch=2, threads=1)
    s.post = lambda batch: [events.put(e) for e in batch]
    s.start()
    try:
        from nanochat_cli.tokenizer.chat import render_for_completion

        prompt = render_for_completion(tok, {"messages": [{"role": "user", "content": "hi"}]})
        job = Job(prompt, Sampling(max_tokens=40, temperature=0.0))
        return _run(s, events, [job])[id(job)][0]
    finally:
        s.stop()


def test_calculator_runs_in_the_server_and_the_reply_shows_call_and_result():
    res = _scripted_reply()
    assert res.text.startswith("<script><|python_start|>6*7<|python_end|><|output_start|>42<|output_end|> la la")
    assert res.finish_reason == "length" and res.completion_tokens == 40


def test_a_turn_token_sampled_mid_reply_ends_the_reply():
    """A model that samples `<|user_end|><|assistant_start|>` mid-reply has ended its turn: the reply stops
    there (finish_reason stop) instead of carrying the tokens and a made-up next turn as text."""
    res = _scripted_reply(turn_break=True)
    assert res.text == "<script><|python_start|>6*7<|python_end|><|output_start|>42<|output_end|> la"
    assert res.finish_reason == "stop"
