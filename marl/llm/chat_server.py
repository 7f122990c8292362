"""A local chat-completions server with scripted replies: the OpenAI protocol on 127.0.0.1,
for tests and benchmarks of the query loop without a model.

    with ChatServer(lambda body: Response("<Stop()>")) as server:
        OpenAIBackend("test-model", server.base_url)   # "http://127.0.0.1:<port>/v1"

- ``POST /v1/chat/completions``: ``responder(body) -> Response(text, delay_s, status)``; a
  status >= 400 answers an OpenAI-style JSON error body. Usage counts whitespace-separated words.
- ``GET /v1/models``: the one model.
- ``server.records``: one :class:`Record` per chat request (body, status, start/end times).
  ``start`` is taken once the request is read and ``end`` before the answer is written, so a
  client that sends its next request only after reading an answer is never seen overlapping it.
- A client that disconnects (a request it timed out) is noted, never an error.
"""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


@dataclass(frozen=True)
class Response:
    """What the server answers to one chat request: ``text`` after ``delay_s``, or an error."""

    text: str = ""
    delay_s: float = 0.0
    status: int = 200


@dataclass
class Record:
    body: dict[str, Any]
    start: float  # time.monotonic() once the request was read
    end: float  # time.monotonic() just before the answer was written
    status: int
    disconnected: bool = False  # the client was gone when the answer was written


Responder = Callable[[dict[str, Any]], Response]


def max_overlap(records: list[Record]) -> int:
    """The most requests the server was handling at one instant."""
    events = sorted([(r.start, 1) for r in records] + [(r.end, -1) for r in records])
    in_flight = peak = 0
    for _, change in events:  # at equal times an end (-1) sorts before a start (+1)
        in_flight += change
        peak = max(peak, in_flight)
    return peak


def _words(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))


class _ChatHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the OpenAI client expects
    # headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm holds the
    # body until the client's delayed ACK (~40 ms a request)
    disable_nagle_algorithm = True
    server: _ChatHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        """Quiet: tests read ``records``, not a log."""

    def _send_json(self, status: int, payload: dict[str, Any]) -> bool:
        """Write a JSON answer; False when the client has already disconnected."""
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802 - the base class's name
        if self.path.rstrip("/") != "/v1/models":
            self._send_json(404, _error_body(404, f"no route {self.path}"))
            return
        model = {"id": self.server.model, "object": "model", "created": 0, "owned_by": "tests"}
        self._send_json(200, {"object": "list", "data": [model]})

    def do_POST(self) -> None:  # noqa: N802 - the base class's name
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, _error_body(404, f"no route {self.path}"))
            return
        start = time.monotonic()
        body: dict[str, Any] = json.loads(raw)
        try:
            response = self.server.responder(body)
        except Exception as exc:  # a broken responder answers 500 and fails the test visibly
            response = Response(status=500, text=f"responder raised {exc!r}")
        if response.delay_s > 0:
            time.sleep(response.delay_s)
        if response.status >= 400:
            payload = _error_body(response.status, response.text or "scripted error")
        else:
            payload = self.server.completion(body, response.text)
        end = time.monotonic()
        sent = self._send_json(response.status, payload)
        self.server.record(Record(body, start, end, response.status, disconnected=not sent))


def _error_body(status: int, message: str) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}


class _ChatHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a request still sleeping for a gone client never blocks shutdown

    def __init__(self, responder: Responder, model: str) -> None:
        super().__init__(("127.0.0.1", 0), _ChatHandler)
        self.responder = responder
        self.model = model
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._ids = itertools.count()

    def record(self, record: Record) -> None:
        with self._lock:
            self.records.append(record)

    def completion(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        with self._lock:
            number = next(self._ids)
        prompt_tokens, completion_tokens = _words(body), len(text.split())
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone mid-request is expected (timeouts); anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ChatServer:
    """A chat-completions server in a daemon thread on a free port of 127.0.0.1."""

    def __init__(self, responder: Responder, model: str = "test-model") -> None:
        self._server = _ChatHTTPServer(responder, model)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        host, port = self._server.server_address[:2]
        self.base_url = f"http://{host!s}:{port}/v1"

    @property
    def records(self) -> list[Record]:
        """A snapshot of the chat requests answered so far, in the order they finished."""
        with self._server._lock:
            return list(self._server.records)

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
