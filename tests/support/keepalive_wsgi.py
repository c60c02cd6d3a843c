"""A small HTTP/1.1 server for a WSGI application that keeps its connections open.

For the bench's moto process. werkzeug's development server, which moto's own
server uses, closes the connection after every answer ("Connection: close",
deliberately: http.server cannot drain a request it did not read), so each
call the fault proxy forwards costs moto a new connection, an accept and a new
thread, and its requests' headers are parsed by the email package. Here each
connection has one thread for its life, requests are read by hand to their
Content-Length, and answers always carry a Content-Length. It serves what
botocore and the proxy send (requests with a Content-Length or no body), not
the whole of HTTP: chunked requests get 411 and the connection is closed.

Loopback only: :func:`serve` binds 127.0.0.1.
"""

from __future__ import annotations

import io
import socketserver
import sys
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_MAX_LINE = 65536
_MAX_HEADERS = 200
_SKIPPED = frozenset({"content-length", "connection", "transfer-encoding", "keep-alive"})


class _BadRequest(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


class _Handler(socketserver.StreamRequestHandler):
    server: Server
    disable_nagle_algorithm = True

    def handle(self) -> None:
        while True:
            try:
                if not self._one():
                    return
            except _BadRequest as bad:
                self._send(bad.status, [("Content-Type", "text/plain")], bad.status.encode("latin-1"), close=True)
                return
            except (ConnectionError, TimeoutError):
                return
            except Exception:  # noqa: BLE001 - the application failed: say so, as werkzeug does
                self._send("500 Internal Server Error", [("Content-Type", "text/plain")], b"", close=True)
                return

    def _one(self) -> bool:
        """Serve one request; False when the connection is to be closed."""
        line = self.rfile.readline(_MAX_LINE + 1)
        while line in (b"\r\n", b"\n"):
            line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            return False
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest("400 Bad Request")
        method, target, version = parts
        headers: list[tuple[str, str]] = []
        while True:
            raw = self.rfile.readline(_MAX_LINE + 1)
            if raw in (b"\r\n", b"\n", b""):
                break
            if len(headers) >= _MAX_HEADERS or len(raw) > _MAX_LINE:
                raise _BadRequest("431 Request Header Fields Too Large")
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest("400 Bad Request")
            headers.append((name.strip(), value.strip()))
        lowered = {k.lower(): v for k, v in headers}
        if "transfer-encoding" in lowered:
            raise _BadRequest("411 Length Required")
        try:
            length = int(lowered.get("content-length", "0"))
        except ValueError:
            raise _BadRequest("400 Bad Request") from None
        body = self.rfile.read(length) if length > 0 else b""
        if len(body) < length:
            return False  # the client went away mid-request
        status, out_headers, out_body = self._call(method, target, version, headers, body)
        close = lowered.get("connection", "").lower() == "close" or (
            version == "HTTP/1.0" and lowered.get("connection", "").lower() != "keep-alive"
        )
        self._send(status, out_headers, b"" if method == "HEAD" else out_body, close=close)
        return not close

    def _call(
        self, method: str, target: str, version: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[str, list[tuple[str, str]], bytes]:
        path, _, query = target.partition("?")
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "RAW_URI": target,
            "REQUEST_URI": target,
            "SERVER_NAME": str(host),
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "CONTENT_TYPE": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in headers:
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif key != "CONTENT_LENGTH":
                key = "HTTP_" + key
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        answer: list[Any] = []

        def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, response_headers]
            return chunks.append

        chunks: list[bytes] = []
        result = self.server.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, response_headers = answer
        return status, [(k, v) for k, v in response_headers if k.lower() not in _SKIPPED], b"".join(chunks)

    def _send(self, status: str, headers: list[tuple[str, str]], body: bytes, *, close: bool) -> None:
        lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), f"Content-Length: {len(body)}"]
        if close:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


class Server(socketserver.ThreadingTCPServer):
    """The server; ``serve_forever()`` runs it, ``shutdown()`` stops it from another thread."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, app: WsgiApp, port: int = 0) -> None:
        self.app = app
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def serve(app: WsgiApp, port: int) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` until the process ends."""
    with Server(app, port) as server:
        server.serve_forever()
