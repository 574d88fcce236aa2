"""A local Bot Framework connector that records what the bot sends, and answers as Teams does.

Point an activity's ``serviceUrl`` at it, and the bot's replies land here. It also plays the
rest of Microsoft's side: the OpenID metadata and key set the SDK validates tokens against, the
client-credentials token endpoint, conversation members (for e-mail lookups), and, over https,
the download URLs of uploaded files::

    with BotConnector(tmp_path) as connector:
        activity["serviceUrl"] = connector.url
        ...
        (sent,) = connector.wait_for_activities(1)
        assert sent.body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.teams_mock.auth import TokenIssuer, self_signed_cert

JsonDict = dict[str, Any]
OPENID_PATH = "/v1/.well-known/openidconfiguration"
KEYS_PATH = "/v1/.well-known/keys"
TOKEN_PATH = "/botframework.com/oauth2/v2.0/token"


@dataclass(frozen=True)
class Recorded:
    """One request as received; for activity calls, the conversation and activity it names."""

    verb: str
    path: str
    query: str
    headers: dict[str, str]
    body: JsonDict
    conversation: str | None = None
    activity_id: str | None = None

    @property
    def cards(self) -> list[JsonDict]:
        return [
            a["content"]
            for a in self.body.get("attachments") or []
            if a.get("contentType") == "application/vnd.microsoft.card.adaptive"
        ]

    @property
    def images(self) -> list[JsonDict]:
        return [
            a
            for a in self.body.get("attachments") or []
            if str(a.get("contentType", "")).startswith("image/")
        ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes; without this, delayed ACKs add 40 ms to every call.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.server.owner._serve(self)  # type: ignore[attr-defined]

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on recorded requests."""


class BotConnector:
    """Recording fake of the Bot Connector service, Microsoft's token endpoints and file storage.

    File storage works both ways: ``host_file`` serves an uploaded return for the bot to download,
    and ``upload_url`` is an upload session (as OneDrive gives one when a user accepts a file the
    bot offers) whose bytes land in ``uploads``.
    """

    def __init__(self, workdir: Path, app_id: str = "00000000-0000-0000-0000-0000000b07b0") -> None:
        self.workdir = workdir
        self.app_id = app_id
        self.issuer = TokenIssuer()
        self.members: dict[str, JsonDict] = {}
        self._cond = threading.Condition()
        self._requests: list[Recorded] = []
        self._failures: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self._files: dict[str, bytes] = {}
        self._uploads: dict[str, bytes] = {}
        self._ids = itertools.count(1)
        self._servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []
        self.cert_path: Path | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> BotConnector:
        self._http = self._listen()
        cert, key = self_signed_cert(self.workdir)
        self.cert_path = cert
        self._https = self._listen()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._https.socket = context.wrap_socket(self._https.socket, server_side=True)
        for server in (self._http, self._https):
            thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
            )
            thread.start()
            self._servers.append((server, thread))
        return self

    def _listen(self) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.owner = self  # type: ignore[attr-defined]
        return server

    def stop(self) -> None:
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join()
        self._servers = []

    def __enter__(self) -> BotConnector:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses
    @property
    def url(self) -> str:
        """The ``serviceUrl`` to put in activities (Teams' have a trailing slash)."""
        return f"http://127.0.0.1:{self._http.server_address[1]}/teams/"

    @property
    def openid_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}{OPENID_PATH}"

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}{TOKEN_PATH}"

    def host_file(self, name: str, data: bytes) -> str:
        """Serve ``data`` over https at the returned URL, as a file's ``downloadUrl``."""
        with self._cond:
            self._files[name] = data
        return f"https://127.0.0.1:{self._https.server_address[1]}/files/{name}"

    def upload_url(self, name: str) -> str:
        """An https upload session for ``name``; what the bot PUTs there lands in ``uploads``."""
        return f"https://127.0.0.1:{self._https.server_address[1]}/upload/{name}"

    @property
    def uploads(self) -> dict[str, bytes]:
        with self._cond:
            return dict(self._uploads)

    def token(self, service_url: str | None = None, **claims: Any) -> str:
        """A connector token for requests to the bot, signed with the published key."""
        return self.issuer.token(self.app_id, service_url or self.url, **claims)

    # ------------------------------------------------------------------ what was sent
    @property
    def requests(self) -> list[Recorded]:
        with self._cond:
            return list(self._requests)

    @property
    def activities(self) -> list[Recorded]:
        """Activities the bot created (POST) or updated (PUT), oldest first."""
        with self._cond:
            return self._activity_calls()

    def wait_for_activities(self, count: int = 1, timeout: float = 10.0) -> list[Recorded]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._activity_calls()) >= count, timeout):
                seen = [f"{r.verb} {r.path}" for r in self._requests]
                raise AssertionError(f"expected {count} activities in {timeout}s; got {seen}")
            return self._activity_calls()

    def _activity_calls(self) -> list[Recorded]:
        return [r for r in self._requests if r.conversation is not None and "/activities" in r.path]

    def fail_next(self, status: int = 429, *, retry_after: int | None = 1, times: int = 1) -> None:
        """Refuse the next ``times`` activity calls with ``status`` (429 carries Retry-After)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._cond:
            self._failures.setdefault("activities", []).extend([(status, headers)] * times)

    # ------------------------------------------------------------------ serving
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        split = urlsplit(handler.path)
        path = unquote(split.path)
        body: JsonDict = {}
        if path.startswith("/upload/"):
            with self._cond:
                self._uploads[path.removeprefix("/upload/")] = raw
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        conversation = activity_id = None
        if path.startswith("/teams/v3/conversations/"):
            rest = path.removeprefix("/teams/v3/conversations/")
            conversation, _, tail = rest.partition("/")
            if tail.startswith("activities/"):
                activity_id = tail.removeprefix("activities/")
        recorded = Recorded(
            handler.command,
            path,
            split.query,
            dict(handler.headers),
            body,
            conversation,
            activity_id,
        )
        with self._cond:
            self._requests.append(recorded)
            status, headers, payload = self._answer(recorded)
            self._cond.notify_all()
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        content_type = (
            "application/octet-stream" if isinstance(payload, bytes) else "application/json"
        )
        for name, value in (
            {"Content-Type": content_type, "Content-Length": str(len(data))} | headers
        ).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(self, req: Recorded) -> tuple[int, dict[str, str], JsonDict | bytes]:
        if req.path == OPENID_PATH:
            base = self.openid_url.removesuffix(OPENID_PATH)
            return (
                200,
                {},
                {
                    "issuer": "https://api.botframework.com",
                    "jwks_uri": base + KEYS_PATH,
                    "id_token_signing_alg_values_supported": ["RS256"],
                },
            )
        if req.path == KEYS_PATH:
            return 200, {}, self.issuer.jwks()
        if req.path == TOKEN_PATH:
            if req.body.get("client_secret") != "test-app-password":
                return 401, {}, {"error": "invalid_client"}
            token = self.issuer.token(
                "https://api.botframework.com", None, issuer="https://sts.windows.net/test/"
            )
            return 200, {}, {"token_type": "Bearer", "expires_in": 3600, "access_token": token}
        if req.path.startswith("/upload/") and req.verb == "PUT":
            name = req.path.removeprefix("/upload/")
            return 201, {}, {"id": f"01GZ{next(self._ids):06d}", "name": name, "file": {}}
        if req.path.startswith("/files/"):
            data = self._files.get(req.path.removeprefix("/files/"))
            return (200, {}, data) if data is not None else (404, {}, b"")
        if req.conversation is None:
            return 404, {}, {"error": {"code": "NotFound"}}
        if "/members/" in req.path:
            member = self.members.get(req.path.rsplit("/", 1)[1])
            return (200, {}, member) if member else (404, {}, {"error": {"code": "NotFound"}})
        failures = self._failures.get("activities")
        if failures:
            status, headers = failures.pop(0)
            return status, headers, {"error": {"code": "Throttled" if status == 429 else "Failed"}}
        if req.verb == "PUT" and req.activity_id:
            return 200, {}, {"id": req.activity_id}
        return 200, {}, {"id": f"1700000000{next(self._ids):03d}"}
