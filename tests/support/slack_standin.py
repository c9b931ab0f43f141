"""A local stand-in for the Slack Web API and incoming webhooks, for the real slack-sdk client.

It answers on a free loopback port with the response shapes Slack documents:

- ``chat.postMessage``: HTTP 200 ``{"ok": true, "channel": "C…", "ts": "…", "message": {…}}``
- ``chat.update``: HTTP 200 ``{"ok": true, "channel": "C…", "ts": "…", "text": "…",
  "message": {…}}``
- errors: HTTP 200 ``{"ok": false, "error": "channel_not_found"}`` (and ``not_authed``,
  ``invalid_auth``, ``message_not_found``, ``invalid_blocks``)
- rate limits: HTTP 429 with ``Retry-After: <seconds>`` and ``{"ok": false, "error":
  "ratelimited"}``
- incoming webhooks (``POST /services/T…/B…/…``): HTTP 200 ``ok`` as text, or a text error
  (``invalid_payload``, ``no_text``, ``no_service``).

Tests script what comes next per method (:meth:`SlackStandIn.script`): a 429 with a
Retry-After, a 5xx; :meth:`go_down` stops listening (connection refused) until :meth:`come_up`
binds the same port again; :meth:`outage` answers every request by the clock, phase after
phase (503 for two minutes, then 429 with Retry-After for one), as Slack's edge does in an
incident; :attr:`SlackStandIn.hold` keeps each answer back for a while after the request took
effect, so a test can catch a client with a message in flight. Every request that reached it
is recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TOKEN = "xoxb-0000000000-0000000000000-standintokenstandintoken"
WEBHOOK_PATH = "/services/T0000STAND/B0000STAND/standinwebhooksecret00000"


@dataclass(frozen=True)
class Scripted:
    """One scripted answer: HTTP status, JSON (or text) body, extra headers."""

    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)


def rate_limited(retry_after: int = 1) -> Scripted:
    return Scripted(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})


def server_error(status: int = 503) -> Scripted:
    # Slack's edge answers 5xx with an HTML or empty body, not the API's JSON envelope.
    return Scripted(status, "<html><body>Service Unavailable</body></html>")


def api_error(error: str) -> Scripted:
    return Scripted(200, {"ok": False, "error": error})


@dataclass(frozen=True)
class Request:
    method: str  # API method (chat.postMessage) or "webhook"
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    answered: int  # the HTTP status it got
    at: float


def channel_id(name: str) -> str:
    """Slack answers with the channel ID even when posted to by ``#name``."""
    if name.startswith(("C", "G", "D")) and name.isupper():
        return name
    return "C" + hashlib.sha256(name.encode()).hexdigest()[:10].upper()


class SlackStandIn:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str = TOKEN) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.requests: list[Request] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.webhook_messages: list[dict[str, Any]] = []
        self._scripts: dict[str, deque[Scripted]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ts = 0
        #: (until, answer) by time.monotonic(): what every request gets until then.
        self._outage: list[tuple[float, Scripted]] = []
        #: Seconds each answer is held back after its request took effect (a message posted
        #: but not yet acknowledged): the window in which a client can die with it in flight.
        self.hold = 0.0
        #: Requests that took effect and whose answer is being held back, now.
        self.in_flight = 0

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> SlackStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                standin._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="slack-standin")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def go_down(self) -> None:
        """Stop listening: clients get connection refused, as in an outage."""
        self.stop()

    def come_up(self) -> None:
        """Listen again on the same port."""
        self.start()

    def __enter__(self) -> SlackStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://{self.host}:{self.port}{WEBHOOK_PATH}"

    # --- scripting and inspection ------------------------------------------------------

    def script(self, method: str, *answers: Scripted) -> None:
        """Answer the next requests to ``method`` (or ``webhook``) with these, in order."""
        with self._lock:
            self._scripts.setdefault(method, deque()).extend(answers)

    def outage(self, *phases: tuple[float, Scripted]) -> float:
        """From now on, answer every request with each phase's answer for its seconds.

        Returns when (``time.monotonic()``) the last phase ends; after it, the API answers
        normally again. Scripted answers (:meth:`script`) still come first.
        """
        start = time.monotonic()
        with self._lock:
            self._outage = []
            for seconds, answer in phases:
                start += seconds
                self._outage.append((start, answer))
        return start

    def _outage_answer(self) -> Scripted | None:
        now = time.monotonic()
        while self._outage and self._outage[0][0] <= now:
            self._outage.pop(0)
        return self._outage[0][1] if self._outage else None

    def unscript(self, method: str) -> None:
        """Forget the answers scripted for ``method`` that no request has used."""
        with self._lock:
            self._scripts.pop(method, None)

    def calls(self, method: str, *, ok_only: bool = False) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method == method and (not ok_only or r.answered == 200)
            ]

    def posted(self) -> list[dict[str, Any]]:
        """Messages chat.postMessage created, in order."""
        with self._lock:
            return sorted(self.messages.values(), key=lambda m: m["ts"])

    # --- the API -----------------------------------------------------------------------

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        length = int(http.headers.get("Content-Length") or 0)
        raw = http.rfile.read(length) if length else b""
        body = _parse_body(raw, http.headers.get("Content-Type", ""))
        path = http.path.split("?", 1)[0]
        method = "webhook" if path.startswith("/services/") else path.rsplit("/", 1)[-1]
        with self._lock:
            scripted = self._scripts.get(method)
            answer = scripted.popleft() if scripted else self._outage_answer()
            if answer is None:
                answer = self._answer(method, path, dict(http.headers), body)
            self.requests.append(
                Request(method, path, dict(http.headers), body, answer.status, time.time())
            )
            hold = self.hold
            if hold:
                self.in_flight += 1
        if hold:
            time.sleep(hold)
            with self._lock:
                self.in_flight -= 1
        # The client may have gone (killed while waiting): the request took effect anyway.
        with contextlib.suppress(OSError):
            _reply(http, answer)

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> Scripted:
        if method == "webhook":
            return self._webhook(path, body)
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        token = body.get("token") or auth.removeprefix("Bearer ").strip()
        if not token:
            return api_error("not_authed")
        if token != self.token:
            return api_error("invalid_auth")
        if method == "chat.postMessage":
            return self._post(body)
        if method == "chat.update":
            return self._update(body)
        return api_error("unknown_method")

    def _blocks_error(self, body: dict[str, Any]) -> Scripted | None:
        blocks = body.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if blocks is None:
            return None if body.get("text") else api_error("no_text")
        if not isinstance(blocks, list) or len(blocks) > 50:
            return api_error("invalid_blocks")
        for block in blocks:
            if block.get("type") == "header" and len(block["text"]["text"]) > 150:
                return api_error("invalid_blocks")
            text = block.get("text")
            if isinstance(text, dict) and len(text.get("text", "")) > 3000:
                return api_error("invalid_blocks")
        body["blocks"] = blocks
        return None

    def _post(self, body: dict[str, Any]) -> Scripted:
        if not body.get("channel"):
            return api_error("channel_not_found")
        error = self._blocks_error(body)
        if error:
            return error
        self._ts += 1
        ts = f"{1_700_000_000 + self._ts}.{self._ts:06d}"
        channel = channel_id(str(body["channel"]))
        message: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": "B0STANDIN",
            "text": body.get("text", ""),
            "ts": ts,
            "blocks": body.get("blocks", []),
        }
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        self.messages[(channel, ts)] = {**message, "channel": channel}
        return Scripted(200, {"ok": True, "channel": channel, "ts": ts, "message": message})

    def _update(self, body: dict[str, Any]) -> Scripted:
        channel, ts = str(body.get("channel", "")), str(body.get("ts", ""))
        if (channel, ts) not in self.messages:
            # chat.update takes the channel ID only; a #name finds nothing.
            return api_error("message_not_found")
        error = self._blocks_error(body)
        if error:
            return error
        stored = self.messages[(channel, ts)]
        stored["text"] = body.get("text", stored["text"])
        stored["blocks"] = body.get("blocks", stored["blocks"])
        stored["edited"] = {"user": "U0STANDIN", "ts": ts}
        return Scripted(
            200,
            {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "text": stored["text"],
                "message": {"text": stored["text"], "blocks": stored["blocks"]},
            },
        )

    def _webhook(self, path: str, body: dict[str, Any]) -> Scripted:
        if path != WEBHOOK_PATH:
            return Scripted(404, "no_service")
        if not body:
            return Scripted(400, "invalid_payload")
        error = self._blocks_error(body)
        if error:
            return Scripted(400, str(error.body["error"]) if isinstance(error.body, dict) else "")
        self.webhook_messages.append(body)
        return Scripted(200, "ok")


def _parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    if not raw:
        return {}
    if "json" in content_type:
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, dict) else {}
    form = parse_qs(raw.decode(), keep_blank_values=True)
    return {k: v[-1] for k, v in form.items()}


def _reply(http: BaseHTTPRequestHandler, answer: Scripted) -> None:
    if isinstance(answer.body, str):
        payload = answer.body.encode()
        content_type = "text/html" if answer.body.startswith("<") else "text/plain"
    else:
        payload = json.dumps(answer.body).encode()
        content_type = "application/json; charset=utf-8"
    http.send_response(answer.status)
    http.send_header("Content-Type", content_type)
    http.send_header("Content-Length", str(len(payload)))
    for name, value in answer.headers.items():
        http.send_header(name, value)
    http.end_headers()
    http.wfile.write(payload)
