"""The LLM backends and the query loop: a real local chat-completions server (127.0.0.1), a tiny
randomly initialised language model saved and loaded from a folder, scripted callables, and
transcripts recorded then replayed."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from marl.llm.backends import (
    BackendError,
    FunctionBackend,
    OpenAIBackend,
    ReplayBackend,
    Reply,
    Request,
    RetryableError,
    TranscriptWriter,
)
from marl.llm.chat_server import ChatServer, Response, max_overlap
from marl.llm.query import QueryLimits, query_one, run_queries

pytest.importorskip("openai")

SYSTEM = "You command Marines. Answer with actions like <Attack_Unit(0x1)>."


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]


def requests(count: int, prefix: str = "ep0/battle0") -> list[Request]:
    return [
        Request(f"{prefix}/agent{i}/t0", chat(f"agent {i}: enemy at 0x{i}")) for i in range(count)
    ]


def last_user_text(body: dict[str, Any]) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


def test_openai_backend_answers_with_text_and_tokens() -> None:
    with ChatServer(lambda body: Response("<Attack_Unit(0x1)> then hold")) as server:
        backend = OpenAIBackend("test-model", server.base_url)
        [reply] = run_queries(backend, requests(1), QueryLimits(timeout_s=5))
    assert reply.text == "<Attack_Unit(0x1)> then hold"
    assert (reply.tokens_in, reply.tokens_out) == (len(SYSTEM.split()) + 5, 3)
    assert not reply.timed_out and reply.error is None and reply.attempts == 1
    [record] = server.records
    assert record.body["model"] == "test-model" and record.body["messages"] == chat(
        "agent 0: enemy at 0x0"
    )


def test_requests_run_concurrently_up_to_the_cap() -> None:
    # The responder holds each request until `parties` of them are in the server at once: that
    # they all arrive shows the concurrency; the recorded intervals show the cap is kept.
    def held_until(parties: int) -> ChatServer:
        barrier = threading.Barrier(parties, timeout=5)

        def responder(body: dict[str, Any]) -> Response:
            barrier.wait()
            return Response(f"done {last_user_text(body)}", delay_s=0.05)

        return ChatServer(responder)

    for cap in (8, 2):
        with held_until(cap) as server:
            backend = OpenAIBackend("test-model", server.base_url)
            replies = run_queries(
                backend, requests(8), QueryLimits(timeout_s=8, max_concurrent=cap)
            )
        assert [r.text for r in replies] == [f"done agent {i}: enemy at 0x{i}" for i in range(8)]
        assert len(server.records) == 8
        assert max_overlap(server.records) == cap


def test_a_late_reply_times_out_with_empty_text_and_the_server_keeps_serving() -> None:
    def responder(body: dict[str, Any]) -> Response:
        slow = last_user_text(body).startswith("agent 0")
        return Response("too late" if slow else "on time", delay_s=2.0 if slow else 0.0)

    with ChatServer(responder) as server:
        backend = OpenAIBackend("test-model", server.base_url)
        [late] = run_queries(backend, requests(1), QueryLimits(timeout_s=0.3, retries=0))
        [on_time] = run_queries(backend, requests(2)[1:], QueryLimits(timeout_s=5))
    assert late.timed_out and late.text == "" and late.error is None
    assert 0.3 <= late.latency_s < 2.0
    assert on_time.text == "on time" and not on_time.timed_out


def failing_twice_then_answering(status: int) -> ChatServer:
    """Answers each prompt (by its last user message) with ``status`` twice, then a reply."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def responder(body: dict[str, Any]) -> Response:
        with lock:
            seen[last_user_text(body)] += 1
            failures = seen[last_user_text(body)]
        if failures <= 2:
            return Response(f"scripted failure {failures}", status=status)
        return Response("<Stop()>")

    return ChatServer(responder)


def test_server_errors_are_retried_with_backoff() -> None:
    with failing_twice_then_answering(500) as server:
        backend = OpenAIBackend("test-model", server.base_url)
        limits = QueryLimits(timeout_s=5, retries=3, backoff_s=0.01)
        [reply] = run_queries(backend, requests(1), limits)
    assert reply.text == "<Stop()>" and reply.attempts == 3 and reply.error is None
    assert [r.status for r in server.records] == [500, 500, 200]

    with failing_twice_then_answering(500) as server:
        backend = OpenAIBackend("test-model", server.base_url)
        limits = QueryLimits(timeout_s=5, retries=1, backoff_s=0.01)
        [reply] = run_queries(backend, requests(1), limits)
    assert reply.text == "" and reply.attempts == 2 and not reply.timed_out
    assert reply.error is not None and "500" in reply.error and "scripted failure 2" in reply.error


def test_a_client_error_is_not_retried() -> None:
    with failing_twice_then_answering(400) as server:
        backend = OpenAIBackend("test-model", server.base_url)
        [reply] = run_queries(backend, requests(1), QueryLimits(timeout_s=5, backoff_s=0.01))
    assert reply.text == "" and reply.attempts == 1 and not reply.timed_out
    assert reply.error is not None and "400" in reply.error
    assert len(server.records) == 1


def test_a_retry_that_would_end_past_the_deadline_times_out_at_once() -> None:
    def always_busy(request: Request) -> str:
        raise RetryableError("HTTP 503: busy")

    limits = QueryLimits(timeout_s=0.5, retries=5, backoff_s=0.2)
    [reply] = run_queries(FunctionBackend(always_busy), requests(1), limits)
    # attempts at 0, 0.2 (wait 0.2) and 0.6 (wait 0.4) would pass the 0.5 s deadline
    assert reply.timed_out and reply.text == "" and reply.attempts == 2
    assert reply.error == "HTTP 503: busy" and reply.latency_s < 0.5


def test_function_backend_counts_words_and_keeps_request_order() -> None:
    backend = FunctionBackend(lambda request: f"<Move_Screen({request.key})>  now", name="script")
    replies = run_queries(backend, requests(5), QueryLimits(max_concurrent=2))
    assert [r.text for r in replies] == [f"<Move_Screen({r.key})>  now" for r in requests(5)]
    assert all(r.tokens_out == 2 and r.tokens_in == len(SYSTEM.split()) + 5 for r in replies)
    assert backend.name == "script"


def test_limits_are_validated() -> None:
    for field, value in [("timeout_s", 0), ("max_concurrent", 0), ("retries", -1)]:
        with pytest.raises(ValueError, match=field):
            QueryLimits(**{field: value})
    with pytest.raises(ValueError, match="backoff_s"):
        QueryLimits(backoff_s=float("nan"))


def test_repeated_keys_and_a_running_loop_are_refused() -> None:
    backend = FunctionBackend(lambda request: "ok")
    with pytest.raises(ValueError, match="repeated"):
        run_queries(backend, requests(2) + requests(1), QueryLimits())

    async def inside_a_loop() -> None:
        with pytest.raises(RuntimeError, match="await query_all"):
            run_queries(backend, requests(1), QueryLimits())

    asyncio.run(inside_a_loop())


def test_a_transcript_replays_exactly(tmp_path: Path) -> None:
    def responder(body: dict[str, Any]) -> Response:
        slow = last_user_text(body).startswith("agent 2")
        return Response(f"<Attack_Unit(0x{last_user_text(body)[-1]})>", delay_s=2 if slow else 0)

    path = tmp_path / "transcript.jsonl"
    with ChatServer(responder) as server, TranscriptWriter(path) as transcript:
        backend = OpenAIBackend("test-model", server.base_url)
        recorded = run_queries(backend, requests(4), QueryLimits(timeout_s=0.5), transcript)
    assert [r.timed_out for r in recorded] == [False, False, True, False]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["key"] for line in lines] == [r.key for r in requests(4)]
    assert (
        lines[0]["reply"] == "<Attack_Unit(0x0)>"
        and lines[0]["messages"] == requests(1)[0].messages
    )

    replay = ReplayBackend(path)
    # A short deadline: a replayed timeout comes back as recorded, at once, not after waiting.
    replayed = run_queries(replay, requests(4), QueryLimits(timeout_s=0.05))
    assert replayed == recorded

    diverged = Request(requests(1)[0].key, chat("agent 0: enemy at 0x9"))
    with pytest.raises(BackendError, match="diverged from the transcript at ep0/battle0/agent0/t0"):
        asyncio.run(replay.complete(diverged))
    with pytest.raises(BackendError, match="ep9/battle0/agent0/t0"):
        asyncio.run(replay.complete(requests(1, prefix="ep9/battle0")[0]))
    [reply] = run_queries(replay, [diverged], QueryLimits())
    assert reply.text == "" and reply.attempts == 1
    assert reply.error is not None and "diverged" in reply.error


def test_transcript_extra_fields_are_written_but_may_not_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "transcript.jsonl"
    with TranscriptWriter(path) as transcript:
        transcript.write(requests(1)[0], Reply("<Stop()>"), battle=3, actions=["Stop"])
        with pytest.raises(ValueError, match="error"):
            transcript.write(requests(1)[0], Reply("<Stop()>"), error="other")
    [line] = [json.loads(line) for line in path.read_text().splitlines()]
    assert line["battle"] == 3 and line["actions"] == ["Stop"] and line["reply"] == "<Stop()>"


def test_query_one_without_a_semaphore() -> None:
    reply = asyncio.run(
        query_one(FunctionBackend(lambda request: "hold"), requests(1)[0], QueryLimits())
    )
    assert reply.text == "hold" and reply.attempts == 1


UNITS = ["Marine", "Marauder", "Medivac", "Zealot", "Stalker", "Zergling"]


def training_sentences() -> list[str]:
    """A few dozen lines of observation and action text for the tiny tokenizer."""
    lines = []
    for i, unit in enumerate(UNITS):
        lines += [
            f"Unit: {unit} Tag: 0x{i + 1} ScreenPos: [{10 * i}, {5 * i}] Health: {40 + i}",
            f"<Attack_Unit(0x{i + 1})> <Move_Screen([{3 * i}, {7 * i}])> <Stop()>",
            f"Team {unit} Valid Actions: <Attack_Unit(tag)> <Heal_Unit(tag)> <No_Operation()>",
            f"Focus fire on the weakest enemy {unit} and keep your units alive.",
            f"system: {SYSTEM} user: agent {i}: enemy at 0x{i} assistant: <Stop()>",
        ]
    return lines


@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised one-layer GPT-2 and a byte-level BPE tokenizer trained here."""
    torch = pytest.importorskip("torch")
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    tokenizer = tokenizers.Tokenizer(tokenizers.models.BPE())
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(training_sentences(), trainer)
    wrapped = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    wrapped.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    end = wrapped.eos_token_id
    config = transformers.GPT2Config(
        n_layer=1,
        n_head=2,
        n_embd=32,
        vocab_size=len(wrapped),
        n_positions=512,
        bos_token_id=end,
        eos_token_id=end,
        pad_token_id=end,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-lm")
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    wrapped.save_pretrained(folder)
    return folder


def test_transformers_backend_answers_from_a_local_folder(
    tiny_model_folder: Path, one_thread: None
) -> None:
    import torch

    from marl.llm.backends import TransformersBackend

    backend = TransformersBackend(tiny_model_folder, max_new_tokens=16)
    batch = requests(2)
    first = run_queries(backend, batch, QueryLimits(timeout_s=30))
    again = run_queries(backend, batch, QueryLimits(timeout_s=30))
    assert [r.text for r in first] == [r.text for r in again]
    for request, reply in zip(batch, first, strict=True):
        assert isinstance(reply.text, str) and reply.error is None and not reply.timed_out
        assert 0 < reply.tokens_out <= 16
        prompt_ids = backend.prompt_ids(request.messages)
        assert reply.tokens_in == len(prompt_ids)
        # The chat template renders the prompt; the reply is greedy decoding's new tokens only.
        assert backend.tokenizer.decode(prompt_ids) == (
            f"<|system|>{SYSTEM}\n<|user|>{request.messages[1]['content']}\n<|assistant|>"
        )
        reference = backend.model.generate(
            torch.tensor([prompt_ids]),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
            max_new_tokens=16,
            do_sample=False,
        )
        new_tokens = reference[0, len(prompt_ids) :]
        assert reply.text == backend.tokenizer.decode(new_tokens, skip_special_tokens=True)

    backend.tokenizer.chat_template = None
    plain = backend.tokenizer.decode(backend.prompt_ids(batch[0].messages))
    assert plain == f"system: {SYSTEM}\nuser: agent 0: enemy at 0x0\nassistant:"

    too_long = Request("ep0/battle0/agent0/t1", chat("Marine " * 600))
    [reply] = run_queries(backend, [too_long], QueryLimits(timeout_s=30))
    assert reply.text == "" and reply.error is not None and "exceeds the context" in reply.error


def test_transformers_sampling_is_seeded_per_request_key(
    tiny_model_folder: Path, one_thread: None
) -> None:
    from marl.llm.backends import TransformersBackend

    backend = TransformersBackend(tiny_model_folder, max_new_tokens=16, temperature=1.0, seed=3)
    batch = requests(3)
    forward = run_queries(backend, batch, QueryLimits(timeout_s=30))
    backward = run_queries(backend, batch[::-1], QueryLimits(timeout_s=30))[::-1]
    assert [r.text for r in forward] == [r.text for r in backward]
    assert all(r.error is None and 0 < r.tokens_out <= 16 for r in forward)


def test_transformers_backend_names_a_folder_without_a_model(tmp_path: Path) -> None:
    from marl.llm.backends import TransformersBackend

    with pytest.raises(BackendError, match="no model in .*absent"):
        TransformersBackend(tmp_path / "absent")
