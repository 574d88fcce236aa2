"""The Teams half of ``status_latency.py``: the same closed-loop load, as signed Teams activities.

``run_teams_load`` runs in the load process. Each simulated user has its own 1:1 conversation and
posts ``kpi status <contract>`` activities to ``/api/messages``, each with a Bot Framework JWT
signed by the key the server validates against (the key is handed over as PEM); the activity's
``serviceUrl`` is a recording connector in this same process, so a user is answered when the
bot's reply activity (an Adaptive Card) arrives there. Every clock is read here.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import jwt

REPLY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class TeamsJob:
    token: str
    text: str
    expect: str  # the reply card's title must contain this (the contract's name)


@dataclass(frozen=True)
class TeamsSample:
    token: str
    measured: bool
    status: int
    reply_s: float | None
    reply_ok: bool


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self.server.owner.serve(self)  # type: ignore[attr-defined]

    do_PUT = do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class Arrivals:
    """A Bot Connector stand-in: notes when each conversation's reply activity arrived, and the
    title of its card (only that: holding every parsed card would make this process's garbage
    collector pause the simulated users, as ``ArrivalRecorder`` explains)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.replies: dict[str, list[tuple[float, str]]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/teams/"

    def __enter__(self) -> Arrivals:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        arrived = time.perf_counter()
        # Answer first, as Teams does: the bot's sender is not kept waiting on this bookkeeping.
        data = json.dumps({"id": uuid.uuid4().hex}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
        path = unquote(urlsplit(handler.path).path)
        conversation = path.removeprefix("/teams/v3/conversations/").split("/", 1)[0]
        title = card_title(json.loads(raw or b"{}"))
        with self._cond:
            self.replies.setdefault(conversation, []).append((arrived, title))
            self._cond.notify_all()

    def wait(self, conversation: str, count: int, timeout: float) -> tuple[float, str] | None:
        with self._cond:
            self._cond.wait_for(lambda: len(self.replies.get(conversation, ())) >= count, timeout)
            got = self.replies.get(conversation, [])
            return got[count - 1] if len(got) >= count else None


def activity(
    service_url: str, conversation: str, text: str, user: str, app_id: str
) -> dict[str, Any]:
    """A message typed in a 1:1 chat, shaped as Teams sends it."""
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    return {
        "type": "message",
        "id": uuid.uuid4().hex,
        "timestamp": "2020-06-01T09:00:00.000Z",
        "serviceUrl": service_url,
        "channelId": "msteams",
        "text": text,
        "textFormat": "plain",
        "from": {"id": f"29:{user}", "name": "Benchmark commissioner", "aadObjectId": user},
        "conversation": {"conversationType": "personal", "tenantId": tenant, "id": conversation},
        "recipient": {"id": f"28:{app_id}", "name": "kpibot"},
        "channelData": {"tenant": {"id": tenant}},
        "locale": "en-GB",
    }


def card_title(body: dict[str, Any]) -> str:
    for attachment in body.get("attachments") or []:
        content = attachment.get("content") or {}
        if content.get("type") == "AdaptiveCard" and content.get("body"):
            return str(content["body"][0].get("text", ""))
    return ""


def run_teams_load(
    url: str,
    key_pem: bytes,
    kid: str,
    app_id: str,
    user: str,
    warmup: list[TeamsJob],
    jobs: list[TeamsJob],
    concurrency: int,
) -> tuple[list[TeamsSample], float]:
    """Closed loop, as ``run_load``: each user posts its next activity once its reply arrived."""
    samples: list[TeamsSample] = []
    lock = threading.Lock()
    with Arrivals() as arrivals, ExitStack() as stack:
        now = int(time.time())
        claims = {
            "iss": "https://api.botframework.com",
            "aud": app_id,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 3600,
            "serviceurl": arrivals.url,
        }
        # Teams reuses one connector token for its lifetime, so the load does too.
        token = jwt.encode(claims, key_pem, algorithm="RS256", headers={"kid": kid})
        headers = {"Authorization": f"Bearer {token}"}

        # One 1:1 chat per simulated user, kept across the warm-up and the measured phase.
        conversations = [f"a:bench-{uuid.uuid4().hex}" for _ in range(concurrency)]
        answered = [0] * concurrency

        # One HTTP client per user, made before any clock starts (see status_latency.run_load).
        clients = [
            stack.enter_context(
                httpx.Client(base_url=url, trust_env=False, timeout=REPLY_TIMEOUT_S)
            )
            for _ in range(concurrency)
        ]

        def one_user(todo: queue.SimpleQueue[TeamsJob], measured: bool, n: int) -> None:
            conversation = conversations[n]
            http = clients[n]
            while True:
                try:
                    job = todo.get_nowait()
                except queue.Empty:
                    return
                body = activity(arrivals.url, conversation, job.text, user, app_id)
                sent = time.perf_counter()
                response = http.post("/api/messages", json=body, headers=headers)
                answered[n] += 1
                got = arrivals.wait(conversation, answered[n], REPLY_TIMEOUT_S)
                ok = got is not None and job.expect in got[1]
                reply_s = None if got is None else got[0] - sent
                with lock:
                    samples.append(
                        TeamsSample(job.token, measured, response.status_code, reply_s, ok)
                    )

        def phase(batch: list[TeamsJob], measured: bool) -> float:
            todo: queue.SimpleQueue[TeamsJob] = queue.SimpleQueue()
            for job in batch:
                todo.put(job)
            users = [
                threading.Thread(target=one_user, args=(todo, measured, n))
                for n in range(concurrency)
            ]
            start = time.perf_counter()
            for t in users:
                t.start()
            for t in users:
                t.join()
            return time.perf_counter() - start

        phase(warmup, measured=False)
        wall_s = phase(jobs, measured=True)
    return samples, wall_s
