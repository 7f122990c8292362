"""The query loop: many requests at once, each with a deadline, retries and a cap in flight.

    limits = QueryLimits(timeout_s=15.0, max_concurrent=32, retries=3, backoff_s=0.5)
    replies = await query_all(backend, requests, limits, transcript)  # in request order
    replies = run_queries(backend, requests, limits)                 # from synchronous code

Rules, per request:

- At most ``max_concurrent`` requests are in flight; a request holds its slot through its
  retries and their waits.
- ``timeout_s`` is the decision's wall clock from its first send (once it has a slot),
  retries included; a late decision is ``Reply(text="", timed_out=True)``, and an attempt
  still running then is cancelled. Waiting for a slot does not count: the cap never turns
  requests into timeouts.
- A :class:`RetryableError` is retried up to ``retries`` times after waits of ``backoff_s``,
  doubled each time (no jitter). When the next wait would end past the deadline the decision
  times out at once, its ``error`` naming the last failure.
- A :class:`BackendError`, or a retryable one after the last retry, gives
  ``Reply(text="", error=...)``: :func:`query_all` never raises for a backend's failure.
- ``latency_s`` is from first send to answer and ``attempts`` counts the attempts made,
  except that a :class:`ReplayBackend`'s reply is returned exactly as recorded, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from marl.llm.backends import (
    Backend,
    BackendError,
    ReplayBackend,
    Reply,
    Request,
    RetryableError,
    TranscriptWriter,
)


@dataclass(frozen=True)
class QueryLimits:
    timeout_s: float = 15.0  # per decision, retries included (LLM-PySC2's MAX_LLM_WAITING_TIME)
    max_concurrent: int = 32  # requests in flight at once
    retries: int = 3  # extra attempts after a RetryableError
    backoff_s: float = 0.5  # the first wait before a retry, doubled each retry

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ValueError(f"QueryLimits.timeout_s must be > 0, got {self.timeout_s}")
        if self.max_concurrent < 1:
            raise ValueError(f"QueryLimits.max_concurrent must be >= 1, got {self.max_concurrent}")
        if self.retries < 0:
            raise ValueError(f"QueryLimits.retries must be >= 0, got {self.retries}")
        if not self.backoff_s >= 0:
            raise ValueError(f"QueryLimits.backoff_s must be >= 0, got {self.backoff_s}")


async def query_one(
    backend: Backend,
    request: Request,
    limits: QueryLimits,
    semaphore: asyncio.Semaphore | None = None,
) -> Reply:
    """One decision under ``limits``; ``semaphore`` (shared by a batch) caps requests in flight."""
    slot = semaphore if semaphore is not None else contextlib.nullcontext()
    async with slot:
        return await _attempt_until_answered(backend, request, limits)


async def _attempt_until_answered(backend: Backend, request: Request, limits: QueryLimits) -> Reply:
    start = time.perf_counter()
    deadline = start + limits.timeout_s
    last_error: str | None = None
    attempt = 0
    while True:
        attempt += 1
        try:
            remaining = deadline - time.perf_counter()
            reply = await asyncio.wait_for(backend.complete(request), timeout=remaining)
        except asyncio.TimeoutError:
            return Reply(
                text="",
                latency_s=time.perf_counter() - start,
                timed_out=True,
                error=last_error,
                attempts=attempt,
            )
        except RetryableError as exc:
            last_error = str(exc)
            latency_s = time.perf_counter() - start
            if attempt > limits.retries:
                return Reply(text="", latency_s=latency_s, error=last_error, attempts=attempt)
            wait_s = limits.backoff_s * 2 ** (attempt - 1)
            if time.perf_counter() + wait_s >= deadline:
                return Reply(
                    text="",
                    latency_s=latency_s,
                    timed_out=True,
                    error=last_error,
                    attempts=attempt,
                )
            await asyncio.sleep(wait_s)
            continue
        except BackendError as exc:
            return Reply(
                text="", latency_s=time.perf_counter() - start, error=str(exc), attempts=attempt
            )
        if isinstance(backend, ReplayBackend):
            return reply
        return dataclasses.replace(reply, latency_s=time.perf_counter() - start, attempts=attempt)


async def query_all(
    backend: Backend,
    requests: Sequence[Request],
    limits: QueryLimits,
    transcript: TranscriptWriter | None = None,
) -> list[Reply]:
    """All ``requests`` at once; replies (and transcript lines) in the order of the requests."""
    repeated = sorted(key for key, count in Counter(r.key for r in requests).items() if count > 1)
    if repeated:
        raise ValueError(f"request keys must be unique per decision; repeated: {repeated}")
    semaphore = asyncio.Semaphore(limits.max_concurrent)
    replies = await asyncio.gather(
        *(query_one(backend, request, limits, semaphore) for request in requests)
    )
    if transcript is not None:
        for request, reply in zip(requests, replies, strict=True):
            transcript.write(request, reply)
    return list(replies)


def run_queries(
    backend: Backend,
    requests: Sequence[Request],
    limits: QueryLimits,
    transcript: TranscriptWriter | None = None,
) -> list[Reply]:
    """:func:`query_all` from synchronous code.

    Each call runs its own event loop and ends with ``backend.aclose()``, which releases what
    the backend holds in that loop (connections); the backend stays usable for the next call.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_query_all_then_close(backend, requests, limits, transcript))
    raise RuntimeError(
        "run_queries cannot start an event loop inside a running one; "
        "use `await query_all(backend, requests, limits, transcript)` instead"
    )


async def _query_all_then_close(
    backend: Backend,
    requests: Sequence[Request],
    limits: QueryLimits,
    transcript: TranscriptWriter | None,
) -> list[Reply]:
    try:
        return await query_all(backend, requests, limits, transcript)
    finally:
        await backend.aclose()
