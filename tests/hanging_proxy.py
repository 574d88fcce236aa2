"""A local TCP proxy in front of the test PostgreSQL that can start hanging, like a frozen server.

``hang()``: new connections are accepted and never answered, and bytes on open connections stop
flowing (nothing is closed, so a client waits for ever unless it has its own deadline).
``recover()``: everything flows again. Only loopback addresses are used.

    with HangingProxy(("127.0.0.1", 5432)) as proxy:
        url = url.set(host="127.0.0.1", port=proxy.port)
        proxy.hang()
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType


class HangingProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._hanging = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, name="hanging-proxy", daemon=True).start()

    def hang(self) -> None:
        self._hanging.set()

    def recover(self) -> None:
        self._hanging.clear()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            self._keep(client)
            if self._hanging.is_set():
                continue  # accepted, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._keep(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        while not self._closed.is_set():
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            while self._hanging.is_set() and not self._closed.is_set():
                time.sleep(0.02)  # hold the bytes: the other side waits for ever
            try:
                sink.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                # shutdown first: close() alone leaves a socket another thread is blocked on
                # open, and the server would keep that session (and its locks) alive
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> HangingProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
