"""A local Slack Web API that records every request and answers the way Slack does.

Point the real ``WebClient`` (or a bolt ``App``) at it and assert on what Slack would receive::

    with SlackApiServer() as slack:
        client = WebClient(token="xoxb-test", base_url=slack.api_url)
        client.chat_postMessage(channel="C1", text="hi")
        assert slack.calls("chat.postMessage")[0]["text"] == "hi"
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

JsonDict = dict[str, Any]
BOT = {"user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1", "team": "kpibot-test"}
WORKSPACE_URL = "https://kpibot-test.slack.com/"


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received; ``body`` is the parsed form or JSON, ``raw`` the bytes."""

    verb: str
    path: str
    method: str | None  # Web API method such as "chat.postMessage"; None off the /api/ prefix
    headers: dict[str, str]
    body: JsonDict
    raw: bytes
    #: ``time.monotonic()`` when the request arrived, for timing what happened in between.
    at: float = 0.0


@dataclass
class _Failure:
    status: int
    error: str
    retry_after: int | str | None
    remaining: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.owner._serve(self)  # type: ignore[attr-defined]

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests assert on recorded requests, not on access logs."""


def _parse_body(raw: bytes, content_type: str, query: str) -> JsonDict:
    params: JsonDict = dict(parse_qsl(query, keep_blank_values=True))
    try:
        if content_type.startswith("application/json") or raw.startswith(b"{"):
            return {**params, **json.loads(raw)}
        if content_type.startswith("application/x-www-form-urlencoded"):
            return {**params, **dict(parse_qsl(raw.decode(), keep_blank_values=True))}
    except ValueError:  # a raw upload that merely looks like JSON or text
        pass
    return params  # multipart and raw uploads: read RecordedRequest.raw


def _decoded(value: Any) -> Any:
    """Form-encoded calls carry blocks, views and file lists as JSON strings."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


class SlackApiServer:
    """Recording fake of slack.com/api, upload URLs, file downloads and response_url."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()
        self._routes: dict[str, Callable[[JsonDict], JsonDict]] = {
            "auth.test": lambda _: {"ok": True, "url": WORKSPACE_URL, "user": "kpibot", **BOT},
            "chat.postMessage": lambda body: self._message(body, self._next_ts()),
            "chat.postEphemeral": lambda _: {"ok": True, "message_ts": self._next_ts()},
            "chat.update": lambda body: self._message(body, body.get("ts", "")),
            "views.open": self._view,
            "views.publish": self._view,
            "views.update": self._view,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "conversations.info": self._conversation,
            "users.info": self._user,
        }

    def start(self) -> SlackApiServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None and self._thread is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> SlackApiServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "SlackApiServer is not running; call start() first"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``WebClient``."""
        return f"{self.url}/api/"

    def response_url(self, token: str = "r1") -> str:
        """A response_url for payload builders; bolt's ``respond()`` posts land in ``responses``."""
        return f"{self.url}/response/{token}"

    def host_file(self, file_id: str, data: bytes) -> str:
        """Serve ``data`` at the returned URL, for a file event's ``url_private``."""
        with self._cond:
            self._hosted[file_id] = data
        return f"{self.url}/files/{file_id}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    def calls(self, method: str) -> list[JsonDict]:
        """Bodies of every call to ``method``, failed ones included, oldest first.

        A ``method`` starting with "/" matches paths instead: ``calls("/response/")``.
        """
        with self._cond:
            if method.startswith("/"):
                return [r.body for r in self._requests if r.path.startswith(method)]
            return [r.body for r in self._requests if r.method == method]

    @property
    def uploads(self) -> dict[str, bytes]:
        with self._cond:
            return dict(self._uploads)

    @property
    def responses(self) -> list[JsonDict]:
        """JSON bodies posted to any ``response_url``; await them with ``wait_for("/response/")``."""
        return self.calls("/response/")

    def wait_for(self, method: str, count: int = 1, timeout: float = 2.0) -> list[JsonDict]:
        """Block until ``count`` calls to ``method`` arrived; bolt listeners reply after ack."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.calls(method)) >= count, timeout):
                seen = [r.method or r.path for r in self._requests]
                raise AssertionError(f"expected {count} {method} call(s) in {timeout}s; got {seen}")
            return self.calls(method)

    def fail_next(
        self,
        method: str,
        *,
        status: int = 429,
        error: str | None = None,
        retry_after: int | str | None = 1,
        times: int = 1,
    ) -> None:
        """Fail the next ``times`` calls to ``method`` the way Slack does.

        ``fail_next("chat.postMessage")`` answers HTTP 429, ``Retry-After: 1`` and
        ``{"ok": false, "error": "ratelimited"}``; ``fail_next("chat.postMessage", status=200,
        error="channel_not_found")`` answers like a bad channel id.
        """
        error = error or ("ratelimited" if status == 429 else "fatal_error")
        with self._cond:
            self._failures.setdefault(method, []).append(
                _Failure(status, error, retry_after if status == 429 else None, times)
            )

    def reset(self) -> None:
        with self._cond:
            self._requests: list[RecordedRequest] = []
            self._uploads: dict[str, bytes] = {}
            self._hosted: dict[str, bytes] = {}
            self._filenames: dict[str, str] = {}
            self._failures: dict[str, list[_Failure]] = {}
            self._ids = itertools.count(1)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        split = urlsplit(handler.path)
        method = split.path.removeprefix("/api/") if split.path.startswith("/api/") else None
        body = _parse_body(raw, handler.headers.get("Content-Type", ""), split.query)
        request = RecordedRequest(
            handler.command, split.path, method, dict(handler.headers), body, raw, time.monotonic()
        )
        with self._cond:
            self._requests.append(request)
            status, headers, payload = self._answer(request)
            self._cond.notify_all()
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        handler.send_response(status)
        headers["Content-Type"] = "application/json" if isinstance(payload, dict) else "text/plain"
        headers["Content-Length"] = str(len(data))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, req: RecordedRequest) -> tuple[int, dict[str, str], JsonDict | bytes]:
        if req.path.startswith("/upload/"):
            self._uploads[req.path.removeprefix("/upload/")] = req.raw
            return 200, {}, f"OK - {len(req.raw)}".encode()
        if req.path.startswith("/response/"):
            return 200, {}, {"ok": True}
        if req.path.removeprefix("/files/") in self._hosted:
            return 200, {}, self._hosted[req.path.removeprefix("/files/")]
        if req.method is None:
            return 404, {}, b"Not Found"
        failures = self._failures.get(req.method)
        if failures:
            failure = failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                failures.pop(0)
            retry = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
            return failure.status, retry, {"ok": False, "error": failure.error}
        route = self._routes.get(req.method)
        if route is None:
            return 200, {}, {"ok": False, "error": "unknown_method"}
        return 200, {}, route(req.body)

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ids):06d}"

    def _message(self, body: JsonDict, ts: str) -> JsonDict:
        """chat.postMessage and chat.update answer with the channel, ts and the message echoed."""
        message = {"type": "message", "user": "UBOT", "bot_id": "BBOT", "ts": ts}
        message |= {"text": body.get("text", ""), "blocks": _decoded(body.get("blocks", []))}
        return {"ok": True, "channel": body.get("channel"), "ts": ts, "message": message}

    def _view(self, body: JsonDict) -> JsonDict:
        view_id = body.get("view_id") or f"V{next(self._ids):08d}"
        view = {**_decoded(body.get("view", {})), "id": view_id, "team_id": "T1", "bot_id": "BBOT"}
        return {"ok": True, "view": {**view, "hash": f"{view_id}.h", "state": {"values": {}}}}

    def _upload_url(self, body: JsonDict) -> JsonDict:
        file_id = f"F{next(self._ids):08d}"
        self._filenames[file_id] = body.get("filename", "")
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _complete_upload(self, body: JsonDict) -> JsonDict:
        channel = body.get("channel_id")
        files = []
        for f in _decoded(body.get("files", "[]")):
            file = {
                "id": f["id"],
                "title": f.get("title"),
                "name": self._filenames.get(f["id"], ""),
            }
            file |= {"size": len(self._uploads.get(f["id"], b"")), "user": "UBOT"}
            files.append({**file, "channels": [channel] if channel else []})
        return {"ok": True, "files": files}

    def _conversation(self, body: JsonDict) -> JsonDict:
        cid = body.get("channel", "C1")
        flags = {"is_channel": True, "is_private": False, "is_im": False, "is_member": True}
        channel = {"id": cid, "name": f"kpi-{cid.lower()}", "context_team_id": "T1", **flags}
        return {"ok": True, "channel": {**channel, "is_archived": False, "created": 1700000000}}

    def _user(self, body: JsonDict) -> JsonDict:
        uid = body.get("user", "U1")
        name = uid.lower()
        profile = {"real_name": f"User {uid}", "display_name": name, "email": f"{name}@example.com"}
        user = {"id": uid, "team_id": "T1", "name": name, "real_name": profile["real_name"]}
        user |= {"tz": "Europe/Berlin", "tz_label": "Central European Time", "tz_offset": 3600}
        return {"ok": True, "user": {**user, "is_bot": uid == "UBOT", "profile": profile}}
