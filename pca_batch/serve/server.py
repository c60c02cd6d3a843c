"""The HTTP/1.1 server: keep-alive connections, one thread each, for botocore's connection pool.

``POST /`` is an API call (:mod:`.protocol`); ``GET .../<CA id>.crl`` is the CA's current CRL
(DER, ``application/pkix-crl``), where the certificates' CRL Distribution Points point. Requests
are read by hand (request line, headers, a body of Content-Length bytes): no chunked bodies (411),
nothing over :data:`MAX_BODY_BYTES` (413, and the connection is closed unread). Nothing is
printed per request; with a log, one line per request goes there. An exception while serving a
request is answered InternalFailure (500) and written to the log: it never stops the server.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

from pca_batch.errors import BackendError
from pca_batch.serve.buckets import ca_id, crl_configuration
from pca_batch.serve.protocol import CONTENT_TYPE, MAX_BODY_BYTES, ServiceError, encode, parse_call
from pca_batch.serve.service import Context, Service
from pca_batch.serve.shapes import operation
from pca_batch.serve.sigv4 import Credentials, SignedRequest, read_authorization, verify
from pca_batch.serve.validation import validate

_MAX_LINE = 65536
_MAX_HEADERS = 100
IDLE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = CONTENT_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    label: str = ""  # what the access log says the request was


_REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            411: "Length Required", 413: "Payload Too Large", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip


class _Refused(Exception):
    """A request that cannot be read: answered with this status, then the connection is closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Application:
    """What a request gets: the API's answer, a CRL, or an error."""

    service: Service
    credentials: Mapping[str, Credentials] = field(default_factory=dict)
    log: IO[str] | None = None
    _log_lock: threading.Lock = field(default_factory=threading.Lock)

    def respond(self, request: SignedRequest) -> Response:
        try:
            if request.method == "POST" and request.path.split("?")[0] == "/":
                return self._api(request)
            if request.method in ("GET", "HEAD") and request.path.split("?")[0].endswith(".crl"):
                return self._crl(request)
            return _plain(404 if request.method in ("GET", "HEAD") else 405, "not found")
        except Exception:  # a bug: answer it as AWS answers its own, keep serving
            self.write_log(traceback.format_exc())
            failure = ServiceError("InternalFailure", "the server met an internal error")
            return Response(failure.status, failure.body(), label="internal error")

    def _api(self, request: SignedRequest) -> Response:
        request_id = str(uuid.uuid4())
        headers: tuple[tuple[str, str], ...] = (("x-amzn-RequestId", request_id),)
        label = request.header("X-Amz-Target") or "?"
        try:
            region = self._region(request)
            call = parse_call(request.header("X-Amz-Target"), request.header("Content-Type"), request.body)
            params = validate(operation(call.operation).input_shape, call.params)
            answer = self.service.call(call.operation, params, Context(region, request_id))
        except ServiceError as error:
            headers += (("x-amzn-ErrorType", error.code),)
            return Response(error.status, error.body(), headers=headers, label=f"{label} {error.code}")
        return Response(200, encode(answer), headers=headers, label=label)

    def _region(self, request: SignedRequest) -> str:
        if self.credentials:
            return verify(request, self.credentials, datetime.now(UTC)).region
        try:
            auth = read_authorization(request)
        except ServiceError:  # unchecked: a malformed signature does not matter
            auth = None
        return auth.region if auth is not None else self.service.settings.region

    def _crl(self, request: SignedRequest) -> Response:
        wanted = request.path.split("?")[0].rsplit("/", 1)[-1].removesuffix(".crl")
        for row in self.service.store.authorities():
            if ca_id(row.arn) == wanted and row.has_certificate and crl_configuration(row) is not None:
                try:
                    der = self.service.buckets.crl(self.service.store, row, self.service.now())
                except BackendError as exc:
                    return _plain(503, exc.message)
                return Response(200, der, "application/pkix-crl", label=f"CRL {wanted}")
        return _plain(404, f"no CRL for {wanted}")

    def write_log(self, line: str) -> None:
        if self.log is None:
            return
        with self._log_lock:
            self.log.write(line if line.endswith("\n") else line + "\n")
            self.log.flush()


def _plain(status: int, text: str) -> Response:
    return Response(status, (text + "\n").encode("utf-8"), "text/plain; charset=utf-8", label=text)


class _Handler(socketserver.StreamRequestHandler):
    server: ApiServer
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_S

    def handle(self) -> None:
        try:
            while self._one():
                pass
        except _Refused as refused:
            self._send(_plain(refused.status, str(refused)), head=False, close=True)
        except (OSError, TimeoutError):  # the client went away, or stayed silent too long
            return

    def _one(self) -> bool:
        """Serve one request; False when the connection is to be closed."""
        line = self.rfile.readline(_MAX_LINE + 1)
        while line in (b"\r\n", b"\n"):
            line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            return False
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Refused(400, "malformed request line")
        method, path, version = parts
        headers = self._headers()
        body = self._body(headers)
        request = SignedRequest(method, path, headers, body)
        started = time.perf_counter()
        response = self.server.app.respond(request)
        connection = (request.header("Connection") or "").lower()
        close = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        if self.server.app.log is not None:  # before the answer: whoever has the answer finds the line
            elapsed = time.perf_counter() - started
            self.server.app.write_log(
                f'{self.client_address[0]} [{datetime.now(UTC).isoformat(timespec="milliseconds")}] '
                f'"{method} {path}" {response.status} {len(response.body)} {elapsed * 1000:.1f}ms {response.label}'
            )
        self._send(response, head=method == "HEAD", close=close)
        return not close

    def _headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        while True:
            raw = self.rfile.readline(_MAX_LINE + 1)
            if len(raw) > _MAX_LINE:
                raise _Refused(400, "header line too long")
            if raw in (b"\r\n", b"\n", b""):
                return headers
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep or len(headers) >= _MAX_HEADERS:
                raise _Refused(400, "malformed headers")
            headers.append((name.strip(), value.strip()))

    def _body(self, headers: list[tuple[str, str]]) -> bytes:
        lowered = {k.lower(): v for k, v in headers}
        if "transfer-encoding" in lowered:
            raise _Refused(411, "a Content-Length is required (no chunked bodies)")
        try:
            length = int(lowered.get("content-length", "0"))
        except ValueError:
            raise _Refused(400, "malformed Content-Length") from None
        if length < 0:
            raise _Refused(400, "malformed Content-Length")
        if length > MAX_BODY_BYTES:
            raise _Refused(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise ConnectionResetError("the body ended early")
        return body

    def _send(self, response: Response, *, head: bool, close: bool) -> None:
        lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}",
                 f"Content-Type: {response.content_type}", f"Content-Length: {len(response.body)}"]  # fmt: skip
        lines += [f"{k}: {v}" for k, v in response.headers]
        if close:
            lines.append("Connection: close")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head_bytes if head else head_bytes + response.body)
        self.wfile.flush()


class ApiServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Bound at once (its URL is known before the service that needs it is made); it serves
    once :attr:`app` is set."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    app: Application

    def __init__(self, address: tuple[str, int]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        text = host.decode("ascii") if isinstance(host, bytes) else str(host)
        shown = f"[{text}]" if ":" in text else text
        return f"http://{shown}:{port}"
