"""Backends: turn one chat request into one reply; record and replay transcripts.

    backend = OpenAIBackend("qwen2.5-7b", base_url)             # any OpenAI-compatible server
    backend = TransformersBackend(model_folder, max_new_tokens=64)  # a local save_pretrained folder
    backend = FunctionBackend(lambda request: "<Stop()>")        # a scripted policy
    backend = ReplayBackend(transcript_path)                     # a transcript, exactly
    reply = await backend.complete(Request("ep3/battle1/agent0/t12", messages))

- ``complete`` is one attempt. It raises :class:`RetryableError` for failures worth another try
  (HTTP 5xx and 429, connection errors, the HTTP call's own timeout) and :class:`BackendError`
  for the rest (other 4xx, a missing model, a transcript that does not match). Deadlines,
  retries and the cap on requests in flight are :mod:`marl.llm.query`'s, not the backends'.
- A backend's ``latency_s`` is that attempt's wall clock; ``query`` replaces it with the
  decision's (first send to answer) and sets ``attempts``, except for replayed replies.
- :class:`TranscriptWriter` writes one JSON line per decision; :class:`ReplayBackend` answers
  each key with the recorded reply (text, tokens, latency, timeout, error, attempts) and refuses
  a key whose messages differ from the recorded ones: the episode diverged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import openai

Messages = list[dict[str, str]]
"""Chat messages ``{"role": "system" | "user" | "assistant", "content": str}``."""


@dataclass(frozen=True)
class Request:
    key: str  # unique per decision, e.g. "ep3/battle1/agent0/t12": the transcript key
    messages: Messages


@dataclass
class Reply:
    text: str  # "" when timed out or failed
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0  # wall-clock seconds from first send to answer
    timed_out: bool = False
    error: str | None = None  # last error when every attempt failed
    attempts: int = 1


class BackendError(RuntimeError):
    """A failure another attempt would not fix (a 4xx, a missing model, a diverged replay)."""


class RetryableError(BackendError):
    """A failure worth another attempt (a 5xx, 429, a dropped connection, an HTTP timeout)."""


class Backend(Protocol):
    name: str

    async def complete(self, request: Request) -> Reply:
        """One attempt: a reply, or :class:`RetryableError` / :class:`BackendError`."""
        ...

    async def aclose(self) -> None:
        """Release what the backend holds in the running event loop; it stays usable."""
        ...


class OpenAIBackend:
    """Any OpenAI-compatible chat-completions server: vLLM, llama.cpp server, Ollama, OpenAI.

    The client never retries (``max_retries=0``): retries and deadlines are the query loop's.
    One client per event loop, since its pooled connections belong to the loop that opened them
    (each :func:`asyncio.run` is a new loop).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        temperature: float = 0.1,
        max_tokens: int = 512,
        request_timeout_s: float = 60.0,
    ) -> None:
        self.name = model
        self.model = model
        self.base_url = base_url
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.request_timeout_s = request_timeout_s
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or "none"
        self._client: openai.AsyncOpenAI | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def _client_for_running_loop(self) -> openai.AsyncOpenAI:
        import openai

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key,
                max_retries=0,
                timeout=self.request_timeout_s,
            )
            self._client_loop = loop
        return self._client

    async def complete(self, request: Request) -> Reply:
        import openai

        client = self._client_for_running_loop()
        start = time.perf_counter()
        try:
            response = await client.chat.completions.create(
                model=self.model,
                messages=request.messages,  # type: ignore[arg-type]
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
        except openai.APIStatusError as exc:
            message = f"HTTP {exc.status_code} from {self.model}: {exc.message}"
            if exc.status_code >= 500 or exc.status_code == 429:
                raise RetryableError(message) from exc
            raise BackendError(message) from exc
        except openai.APIConnectionError as exc:  # APITimeoutError is one
            raise RetryableError(f"{type(exc).__name__} from {self.model}: {exc}") from exc
        except openai.OpenAIError as exc:
            raise BackendError(f"{type(exc).__name__} from {self.model}: {exc}") from exc
        latency_s = time.perf_counter() - start
        if not response.choices:
            raise BackendError(f"{self.model} answered {request.key} with no choices")
        usage = response.usage
        return Reply(
            text=response.choices[0].message.content or "",
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            latency_s=latency_s,
        )

    async def aclose(self) -> None:
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.close()
        self._client = None
        self._client_loop = None


def _plain_prompt(messages: Messages) -> str:
    """The prompt for a tokenizer without a chat template: ``role: content`` lines."""
    lines = [f"{message['role']}: {message['content']}" for message in messages]
    return "\n".join([*lines, "assistant:"])


def _request_seed(seed: int, key: str) -> int:
    """A sampling seed from (seed, key), the same in every process (unlike ``hash``)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class TransformersBackend:
    """A local causal language model from a ``save_pretrained`` folder; never downloads.

    Greedy when ``temperature == 0``; otherwise sampling with a generator seeded from
    ``(seed, request.key)``, so a reply depends only on the request, not on the order or the
    concurrency of requests. One model: generations run one at a time in a worker thread, and
    a generation whose request was cancelled (timed out) stops at its next token.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise BackendError(
                f"no model in {folder}: expected a folder written by save_pretrained "
                "(config.json, weights, tokenizer files)"
            )
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # Any: the Auto classes return whichever tokenizer and model class the folder names.
        self.tokenizer: Any
        self.model: Any
        try:
            # never run code from the folder: no remote code, weights only as safetensors
            self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True,
                                                           trust_remote_code=False)
            self.model = AutoModelForCausalLM.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False, use_safetensors=True)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load a causal language model from {folder}: {exc}") from exc
        self.model.to(device).eval()
        self.name = folder.name
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.device = device
        self.seed = seed
        self.context_length: int | None = getattr(
            self.model.config, "max_position_embeddings", None
        )
        self.eos_token_ids = _eos_token_ids(self.tokenizer, self.model)
        # The key-value cache's argument: `cache` in newer transformers, `past_key_values` before.
        forward_parameters = inspect.signature(self.model.forward).parameters
        self._cache_name = "cache" if "cache" in forward_parameters else "past_key_values"
        self._model_lock = threading.Lock()

    def prompt_ids(self, messages: Messages) -> list[int]:
        """The prompt's token ids: the chat template when the tokenizer has one."""
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        return list(self.tokenizer(_plain_prompt(messages))["input_ids"])

    def _generate(self, request: Request, cancelled: threading.Event) -> tuple[int, list[int]]:
        """Runs in a worker thread: (prompt length, new token ids)."""
        import torch

        with self._model_lock, torch.inference_mode():
            prompt_ids = self.prompt_ids(request.messages)
            needed = len(prompt_ids) + self.max_new_tokens
            if self.context_length is not None and needed > self.context_length:
                raise BackendError(
                    f"{request.key}: a prompt of {len(prompt_ids)} tokens plus max_new_tokens "
                    f"{self.max_new_tokens} exceeds the context of {self.context_length} tokens"
                )
            generator = None
            if self.temperature > 0:
                generator = torch.Generator(device=self.device)
                generator.manual_seed(_request_seed(self.seed, request.key))
            inputs = torch.tensor([prompt_ids], device=self.device)
            cache: Any = None
            new_ids: list[int] = []
            while len(new_ids) < self.max_new_tokens and not cancelled.is_set():
                output = self.model(input_ids=inputs, use_cache=True, **{self._cache_name: cache})
                logits = output.logits[0, -1].float()
                if generator is None:
                    next_id = int(logits.argmax())
                else:
                    probabilities = torch.softmax(logits / self.temperature, dim=-1)
                    next_id = int(torch.multinomial(probabilities, 1, generator=generator))
                new_ids.append(next_id)
                if next_id in self.eos_token_ids:
                    break
                cache = getattr(output, self._cache_name)
                inputs = torch.tensor([[next_id]], device=self.device)
            return len(prompt_ids), new_ids

    async def complete(self, request: Request) -> Reply:
        cancelled = threading.Event()
        start = time.perf_counter()
        try:
            tokens_in, new_ids = await asyncio.to_thread(self._generate, request, cancelled)
        except asyncio.CancelledError:
            cancelled.set()  # the thread cannot be cancelled; it stops at its next token
            raise
        return Reply(
            text=self.tokenizer.decode(new_ids, skip_special_tokens=True),
            tokens_in=tokens_in,
            tokens_out=len(new_ids),
            latency_s=time.perf_counter() - start,
        )

    async def aclose(self) -> None:
        """Nothing to release: the model is freed with the backend."""


def _eos_token_ids(tokenizer: Any, model: Any) -> set[int]:
    """End-of-sequence ids from the tokenizer and the model's generation config."""
    ids: set[int] = set()
    generation_config = getattr(model, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


class FunctionBackend:
    """A Python callable writes the reply: scripted text policies and tests.

    Tokens are counted as whitespace-separated words (prompt: all message contents). The
    callable may raise :class:`RetryableError` or :class:`BackendError` to script failures.
    """

    def __init__(self, reply: Callable[[Request], str], name: str = "function") -> None:
        self.reply = reply
        self.name = name

    async def complete(self, request: Request) -> Reply:
        start = time.perf_counter()
        text = self.reply(request)
        return Reply(
            text=text,
            tokens_in=sum(len(message["content"].split()) for message in request.messages),
            tokens_out=len(text.split()),
            latency_s=time.perf_counter() - start,
        )

    async def aclose(self) -> None:
        """Nothing to release."""


_REPLY_FIELDS = ("tokens_in", "tokens_out", "latency_s", "timed_out", "error", "attempts")


class TranscriptWriter:
    """A JSONL transcript, one line per decision, flushed as written (a crash keeps the lines).

    Each line: ``key``, ``messages``, ``reply`` (the text), ``tokens_in``, ``tokens_out``,
    ``latency_s``, ``timed_out``, ``error``, ``attempts`` and any ``extra`` fields.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = self.path.open("w", encoding="utf-8")

    def write(self, request: Request, reply: Reply, **extra: object) -> None:
        line: dict[str, object] = {"key": request.key, "messages": request.messages}
        line["reply"] = reply.text
        line.update({field: getattr(reply, field) for field in _REPLY_FIELDS})
        clashes = sorted(set(extra) & set(line))
        if clashes:
            raise ValueError(f"extra fields {clashes} would overwrite the transcript's own")
        line.update(extra)
        self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ReplayBackend:
    """Plays a transcript back exactly: each key's recorded reply, immediately.

    Its replies are final: the query loop returns them as recorded (a recorded timeout is a
    timeout again, at once; recorded latency and attempts are kept).
    """

    name = "replay"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._recorded: dict[str, tuple[Messages, Reply]] = {}
        with self.path.open(encoding="utf-8") as lines:
            for number, text in enumerate(lines, start=1):
                if not text.strip():
                    continue
                try:
                    line = json.loads(text)
                    key = line["key"]
                    reply = Reply(line["reply"], **{f: line[f] for f in _REPLY_FIELDS})
                    messages = line["messages"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(
                        f"{self.path}:{number} is not a transcript line: {exc}"
                    ) from exc
                if key in self._recorded:
                    raise ValueError(f"{self.path}:{number} repeats the key {key!r}")
                self._recorded[key] = (messages, reply)

    async def complete(self, request: Request) -> Reply:
        if request.key not in self._recorded:
            raise BackendError(f"the transcript {self.path} has no decision {request.key!r}")
        messages, reply = self._recorded[request.key]
        if messages != request.messages:
            raise BackendError(f"the episode diverged from the transcript at {request.key}")
        return dataclasses.replace(reply)

    async def aclose(self) -> None:
        """Nothing to release."""
