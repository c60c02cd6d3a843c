"""A fault-injecting HTTP proxy on loopback, between botocore and a moto server.

It speaks what botocore speaks to AWS Private CA (JSON 1.1 POSTs with
``X-Amz-Target: ACMPrivateCA.<Operation>``) and, per :class:`Faults`, answers
some calls itself the way AWS would on a bad day:

- ThrottlingException in the JSON 1.1 wire format (HTTP 400), and 500s
  (InternalFailure): answered without reaching moto;
- RequestInProgressException for the first N GetCertificate polls of each
  certificate ARN;
- slow answers: forwarded to moto, answered only after ``slow_seconds``
  (past the client's read time-out, so the client has given up);
- dropped connections: forwarded to moto, then the connection is closed with
  no answer at all (the client cannot know whether the call happened);
- a fixed extra ``latency`` before every call (for the bench);
- a quota, as AWS enforces one per account and region: ``quota`` maps an operation
  to the calls a second it allows (a token bucket holding one second's worth, full
  at the start); a call that finds its bucket empty is answered ThrottlingException
  without reaching moto, and counted in ``over_quota``. Unlike the random faults,
  the quota throttles whoever calls too fast, however many processes share it.

moto ignores IdempotencyToken; AWS does not. So the proxy deduplicates
IssueCertificate as AWS does: the same (CA, token) within five minutes gets the
first certificate ARN back without reaching moto. It counts, per token, the
calls that reached it and the calls it forwarded, so a test can assert that no
token ever reached moto twice.

moto also accepts any number of RevokeCertificate calls for one certificate;
AWS answers the second with RequestAlreadyProcessedException. So once moto has
revoked a (CA, serial), the proxy answers every later RevokeCertificate of it
that way itself (HTTP 400, JSON 1.1 error shape) without reaching moto. It
counts, per (CA, serial), the calls that reached it, those it forwarded and
those it answered as already processed, and keeps the last RevokeCertificate
received and the last forwarded (X-Amz-Target, Content-Type and JSON body), so a
test sees the serial's format and the reason exactly as moto got them. The key
is the ARN AWS gives that certificate, ``<CA ARN>/certificate/<serial as 32 or
more lowercase hex digits>`` (:func:`revoke_key`), whatever format the serial
was sent in.

Faults are drawn per call from a generator seeded by (seed, operation, token,
certificate ARN or revoked certificate, call number): the same key meets the
same faults whatever the thread timing (:func:`planned_faults` tells them in
advance). ``max_faults_per_key`` bounds them, so a runner with enough attempts
always gets through.

Run as a script (``python -m tests.support.fault_proxy --upstream URL --latency 0.1``)
it prints ``PORT`` on its first line and serves until terminated; GET
``/__proxy__/stats`` answers its counters as JSON, POST ``/__proxy__/reset``
sets them to zero.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

IDEMPOTENCY_WINDOW = 300.0  # seconds: AWS honours a token for five minutes
STATS_PATH = "/__proxy__/stats"
RESET_PATH = "/__proxy__/reset"  # POST: the counters start again
ALREADY_PROCESSED = "RequestAlreadyProcessedException"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "content-length", "server", "date"}
)


@dataclass(frozen=True)
class Faults:
    """What the proxy does to calls. Shares are fractions of the calls of ``operations``."""

    throttle: float = 0.0  # answered ThrottlingException (400) without reaching moto
    server_error: float = 0.0  # answered InternalFailure (500) without reaching moto
    slow: float = 0.0  # forwarded, answered after slow_seconds
    drop: float = 0.0  # forwarded, connection closed without an answer
    in_progress_polls: int = 0  # RequestInProgressException for the first N GetCertificate calls per ARN
    slow_seconds: float = 1.0
    latency: float = 0.0  # added before every call
    max_faults_per_key: int | None = 3  # random faults per token, certificate ARN or revoked certificate, at most
    operations: frozenset[str] = frozenset({"IssueCertificate", "GetCertificate"})  # also: "RevokeCertificate"
    seed: int = 0
    quota: tuple[tuple[str, float], ...] = ()  # (operation, calls a second): token buckets, see above


@dataclass
class Stats:
    """Counters, read by tests. ``issue_forwarded`` is per idempotency token."""

    calls: Counter[str] = field(default_factory=Counter)  # per operation, every call that reached the proxy
    forwarded: Counter[str] = field(default_factory=Counter)  # per operation, calls that reached moto
    injected: Counter[str] = field(default_factory=Counter)  # per fault kind
    injected_by_operation: Counter[str] = field(default_factory=Counter)  # per "Operation:kind"
    issue_calls: Counter[str] = field(default_factory=Counter)  # per token: IssueCertificate calls received
    issue_forwarded: Counter[str] = field(
        default_factory=Counter
    )  # per token: IssueCertificate calls sent to moto
    deduplicated: int = 0  # IssueCertificate calls answered from the token record
    over_quota: Counter[str] = field(default_factory=Counter)  # per operation: throttled by the quota
    # per revoke_key(CA, serial): RevokeCertificate calls received, sent to moto, answered
    # RequestAlreadyProcessedException by the proxy; the last received and forwarded (see _request_seen)
    revoke_calls: Counter[str] = field(default_factory=Counter)
    revoke_forwarded: Counter[str] = field(default_factory=Counter)
    revoke_already_processed: Counter[str] = field(default_factory=Counter)
    revoke_last_received: dict[str, dict[str, Any]] = field(default_factory=dict)
    revoke_last_forwarded: dict[str, dict[str, Any]] = field(default_factory=dict)
    connections: int = 0  # TCP connections accepted
    upstream_connections: int = 0  # TCP connections opened to moto
    first_call: float | None = None  # time.time() of the first POST received
    last_answer: float | None = None  # time.time() of the last POST answered (or dropped)
    forward_seconds: float = 0.0  # time spent waiting for moto, over all forwarded calls
    handled_seconds: float = 0.0  # time from a POST's arrival to its answer, over all POSTs

    def as_json(self) -> dict[str, Any]:
        return {
            "calls": dict(self.calls),
            "forwarded": dict(self.forwarded),
            "injected": dict(self.injected),
            "injected_by_operation": dict(self.injected_by_operation),
            "issue_calls": dict(self.issue_calls),
            "issue_forwarded": dict(self.issue_forwarded),
            "deduplicated": self.deduplicated,
            "over_quota": dict(self.over_quota),
            "revoke_calls": dict(self.revoke_calls),
            "revoke_forwarded": dict(self.revoke_forwarded),
            "revoke_already_processed": dict(self.revoke_already_processed),
            "revoke_last_received": {k: dict(v) for k, v in self.revoke_last_received.items()},
            "revoke_last_forwarded": {k: dict(v) for k, v in self.revoke_last_forwarded.items()},
            "connections": self.connections,
            "upstream_connections": self.upstream_connections,
            "first_call": self.first_call,
            "last_answer": self.last_answer,
            "forward_seconds": self.forward_seconds,
            "handled_seconds": self.handled_seconds,
        }


@dataclass
class _Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def revoke_key(ca_arn: str, serial: object) -> str:
    """The proxy's key for a RevokeCertificate of ``serial`` (hex, colons allowed) by ``ca_arn``:
    the ARN AWS gives that certificate, the serial as 32 or more lowercase hex digits. A
    serial that is not hex stays as it was sent."""
    text = str(serial)
    digits = text.replace(":", "")
    try:
        number = int(digits, 16) if digits and digits.isascii() and digits.isalnum() else None
    except ValueError:
        number = None
    return f"{ca_arn}/certificate/{text if number is None else format(number, '032x')}"


def _request_seen(target: str, content_type: str, request: dict[str, Any]) -> dict[str, Any]:
    """What the proxy keeps of a RevokeCertificate call: its target, content type and JSON body."""
    return {"target": target, "content_type": content_type, "body": request}


def _roll(faults: Faults, fault_key: str, n: int) -> str | None:
    """The fault the ``n``-th call (from 0) of ``fault_key`` draws, before max_faults_per_key."""
    roll = random.Random(f"{faults.seed}:{fault_key}:{n}").random()
    for kind, share in (
        ("throttle", faults.throttle),
        ("server_error", faults.server_error),
        ("slow", faults.slow),
        ("drop", faults.drop),
    ):
        if roll < share:
            return kind
        roll -= share
    return None


def planned_faults(faults: Faults, operation: str, key: str, *, calls: int = 64) -> list[str]:
    """The faults the calls of ``key`` meet, in order, up to the first call that meets none,
    when every fault is answered by another call (as a runner with enough attempts does).
    ``key`` as the proxy draws it: the token, certificate ARN or :func:`revoke_key`."""
    if operation not in faults.operations:
        return []
    met: list[str] = []
    for n in range(calls):
        if faults.max_faults_per_key is not None and len(met) >= faults.max_faults_per_key:
            break
        fault = _roll(faults, f"{operation}:{key}", n)
        if fault is None:
            break
        met.append(fault)
    return met


def _aws_error(status: int, code: str, message: str) -> _Answer:
    body = json.dumps({"__type": code, "message": message}).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("x-amzn-RequestId", str(uuid.uuid4())),
    ]
    return _Answer(status, headers, body)


class FaultProxy:
    """The proxy; use as a context manager or start()/stop(). ``endpoint`` is its URL."""

    def __init__(self, upstream: str, faults: Faults | None = None, *, port: int = 0) -> None:
        parts = urlsplit(upstream)
        if parts.hostname != "127.0.0.1":
            raise ValueError(f"the fault proxy only forwards to 127.0.0.1, not {upstream}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.faults = faults or Faults()
        self.stats = Stats()
        self._lock = threading.Lock()
        self._token_locks: dict[tuple[str, str], threading.Lock] = {}
        self._issued: dict[tuple[str, str], tuple[_Answer, float]] = {}
        self._revoked: set[str] = set()  # revoke_key()s moto has revoked (AWS's state, not a counter)
        self._fault_count: Counter[str] = Counter()
        self._call_number: Counter[str] = Counter()
        self._polls: Counter[str] = Counter()
        self._idle: list[socket.socket] = []  # connections to moto it left open, for the next call
        self._buckets: dict[str, tuple[float, float]] = {}  # per operation: (tokens, when counted)
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.proxy = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.stats.as_json()

    # -- decisions ------------------------------------------------------------

    def _count(self, counter: str, key: str, n: int = 1) -> None:
        with self._lock:
            getattr(self.stats, counter)[key] += n

    def _draw_fault(self, operation: str, key: str) -> str | None:
        """The random fault for this call of ``key``, or None."""
        f = self.faults
        if operation not in f.operations:
            return None
        with self._lock:
            fault_key = f"{operation}:{key}"
            n = self._call_number[fault_key]
            self._call_number[fault_key] += 1
            if f.max_faults_per_key is not None and self._fault_count[fault_key] >= f.max_faults_per_key:
                return None
            fault = _roll(f, fault_key, n)
            if fault is not None:
                self._fault_count[fault_key] += 1
                self.stats.injected[fault] += 1
                self.stats.injected_by_operation[f"{operation}:{fault}"] += 1
            return fault

    def _within_quota(self, operation: str) -> bool:
        """Take a token from the operation's bucket; False when it is empty (throttle the call)."""
        rate = dict(self.faults.quota).get(operation)
        if rate is None:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, then = self._buckets.get(operation, (max(1.0, rate), now))
            tokens = min(max(1.0, rate), tokens + (now - then) * rate)
            allowed = tokens >= 1.0
            self._buckets[operation] = (tokens - 1.0 if allowed else tokens, now)
            if not allowed:
                self.stats.over_quota[operation] += 1
            return allowed

    def reset_stats(self) -> None:
        """Counters from zero; the token and revocation records (AWS's state, not counters) are kept."""
        with self._lock:
            self.stats = Stats()

    def _mark(self, *, answered: bool) -> None:
        now = time.time()
        with self._lock:
            if answered:
                self.stats.last_answer = now
            elif self.stats.first_call is None:
                self.stats.first_call = now

    def _in_progress(self, certificate_arn: str) -> bool:
        with self._lock:
            n = self._polls[certificate_arn]
            self._polls[certificate_arn] += 1
            if n < self.faults.in_progress_polls:
                self.stats.injected["in_progress"] += 1
                self.stats.injected_by_operation["GetCertificate:in_progress"] += 1
                return True
            return False

    # -- forwarding -----------------------------------------------------------

    def forward(self, path: str, headers: list[tuple[str, str]], body: bytes, operation: str) -> _Answer:
        """Send the call to moto and read its answer.

        The answer is read to its Content-Length (or to the end of the stream) and
        split by hand: http.client's header parsing (the email package) was the
        proxy's largest cost. A connection moto leaves open is used again for a
        later call (moto's own server closes every one; the bench's keeps them).
        """
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.upstream[0]}:{self.upstream[1]}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() != "host"]
        lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        began = time.monotonic()
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = socket.create_connection(self.upstream, timeout=60)
            with self._lock:
                self.stats.upstream_connections += 1
        keep = False
        try:
            connection.sendall(request)
            raw = b""
            while chunk := connection.recv(65536):
                raw += chunk
                if _complete(raw):
                    keep = not _says_close(raw)
                    break
        finally:
            if keep:
                with self._lock:
                    self._idle.append(connection)
            else:
                connection.close()
        status, kept, data = _parse_answer(raw)
        self._count("forwarded", operation)
        with self._lock:
            self.stats.forward_seconds += time.monotonic() - began
        return _Answer(status, kept, data)

    def issue(
        self, path: str, headers: list[tuple[str, str]], body: bytes, request: dict[str, Any]
    ) -> _Answer:
        """IssueCertificate with AWS's idempotency: one issuance per (CA, token) in the window."""
        token = request.get("IdempotencyToken")
        if not isinstance(token, str):
            self._count("issue_forwarded", "")
            return self.forward(path, headers, body, "IssueCertificate")
        key = (str(request.get("CertificateAuthorityArn", "")), token)
        with self._lock:
            token_lock = self._token_locks.setdefault(key, threading.Lock())
        with token_lock:  # a retry racing its first attempt waits for it, as on AWS
            now = time.monotonic()
            record = self._issued.get(key)
            if record is not None and now - record[1] < IDEMPOTENCY_WINDOW:
                with self._lock:
                    self.stats.deduplicated += 1
                answer = record[0]
                return _Answer(answer.status, list(answer.headers), answer.body)
            self._count("issue_forwarded", token)
            answer = self.forward(path, headers, body, "IssueCertificate")
            if answer.status == 200:
                self._issued[key] = (answer, now)
            return answer

    def revoke(
        self, path: str, headers: list[tuple[str, str]], body: bytes, request: dict[str, Any]
    ) -> _Answer:
        """RevokeCertificate as AWS answers it: once revoked, RequestAlreadyProcessedException."""
        key = revoke_key(str(request.get("CertificateAuthorityArn", "")), request.get("CertificateSerial"))
        with self._lock:
            key_lock = self._token_locks.setdefault(("RevokeCertificate", key), threading.Lock())
        with key_lock:  # a retry racing its first attempt waits for it
            if key in self._revoked:
                self._count("revoke_already_processed", key)
                return _aws_error(400, ALREADY_PROCESSED, "The request has already been completed.")
            seen = _request_seen(_header(headers, "X-Amz-Target"), _header(headers, "Content-Type"), request)
            with self._lock:
                self.stats.revoke_forwarded[key] += 1
                self.stats.revoke_last_forwarded[key] = seen
            answer = self.forward(path, headers, body, "RevokeCertificate")
            if answer.status == 200:
                self._revoked.add(key)
            return answer

    def answer(
        self, operation: str, path: str, headers: list[tuple[str, str]], body: bytes, request: dict[str, Any]
    ) -> _Answer:
        """The answer to a call no fault kept from moto (a fault may still lose it afterwards)."""
        if operation == "IssueCertificate":
            return self.issue(path, headers, body, request)
        if operation == "RevokeCertificate":
            return self.revoke(path, headers, body, request)
        return self.forward(path, headers, body, operation)


def _header(headers: list[tuple[str, str]], name: str) -> str:
    return next((v for k, v in headers if k.lower() == name.lower()), "")


def _fault_key(operation: str, request: dict[str, Any]) -> str:
    """What a call's faults are drawn for: the token, the certificate ARN, the revoked
    certificate, or the CA."""
    if operation == "RevokeCertificate":
        return revoke_key(str(request.get("CertificateAuthorityArn", "")), request.get("CertificateSerial"))
    return str(
        request.get("IdempotencyToken") or request.get("CertificateArn") or request.get("CertificateAuthorityArn", "")
    )


def _complete(raw: bytes) -> bool:
    """True once ``raw`` holds a whole answer with a Content-Length."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(rest) >= int(value.strip() or b"0")
    return False


def _says_close(raw: bytes) -> bool:
    """True when a whole answer says its connection ends with it (``Connection: close``)."""
    head = raw.partition(b"\r\n\r\n")[0]
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"connection" and b"close" in value.lower():
            return True
    return False


def _parse_answer(raw: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, end-to-end headers and body of a whole HTTP/1.1 answer (read to its end)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise http.client.HTTPException("the upstream answer has no end of headers")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise http.client.HTTPException(f"bad upstream status line {status_line[:80]!r}")
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in header_lines)]
    length = next((v for k, v in headers if k.lower() == "content-length"), None)
    if any(k.lower() == "transfer-encoding" for k, _ in headers):
        raise http.client.HTTPException("chunked upstream answers are not supported")
    body = rest[: int(length)] if length is not None else rest
    return int(parts[1]), [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP], body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    proxy: FaultProxy

    def get_request(self) -> Any:
        conn = super().get_request()
        with self.proxy._lock:
            self.proxy.stats.connections += 1
        return conn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == STATS_PATH:
            stats = json.dumps(self.server.proxy.snapshot()).encode()
            self._send(_Answer(200, [("Content-Type", "application/json")], stats))
        else:
            self._send(_Answer(404, [("Content-Type", "text/plain")], b"not found\n"))

    def do_POST(self) -> None:
        proxy = self.server.proxy
        if self.path == RESET_PATH:  # the counters start again (a bench, after warming up)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            proxy.reset_stats()
            self._send(_Answer(200, [("Content-Type", "application/json")], b"{}"))
            return
        proxy._mark(answered=False)
        began = time.monotonic()
        try:
            self._post(proxy)
        finally:
            proxy._mark(answered=True)
            with proxy._lock:
                proxy.stats.handled_seconds += time.monotonic() - began

    def _post(self, proxy: FaultProxy) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        target = self.headers.get("X-Amz-Target", "")
        operation = target.rpartition(".")[2] or "Unknown"
        try:
            request = json.loads(body) if body else {}
        except ValueError:
            request = {}
        if not isinstance(request, dict):
            request = {}
        proxy._count("calls", operation)
        key = _fault_key(operation, request)
        if operation == "IssueCertificate":
            proxy._count("issue_calls", str(request.get("IdempotencyToken", "")))
        elif operation == "RevokeCertificate":
            proxy._count("revoke_calls", key)
            seen = _request_seen(target, self.headers.get("Content-Type", ""), request)
            with proxy._lock:
                proxy.stats.revoke_last_received[key] = seen
        if proxy.faults.latency:
            time.sleep(proxy.faults.latency)

        if operation == "GetCertificate" and proxy._in_progress(str(request.get("CertificateArn", ""))):
            self._send(_aws_error(400, "RequestInProgressException", "The request is still in progress."))
            return
        fault = proxy._draw_fault(operation, key) if proxy._within_quota(operation) else "throttle"
        if fault == "throttle":
            self._send(_aws_error(400, "ThrottlingException", "Rate exceeded"))
            return
        if fault == "server_error":
            self._send(
                _aws_error(500, "InternalFailure", "We encountered an internal error. Please try again.")
            )
            return

        headers = list(self.headers.items())
        try:
            answer = proxy.answer(operation, self.path, headers, body, request)
        except (OSError, http.client.HTTPException) as exc:
            answer = _aws_error(502, "BadGateway", f"fault proxy: upstream failed: {exc}")

        if fault == "drop":
            self.close_connection = True  # the call happened; its answer never arrives
            return
        if fault == "slow":
            time.sleep(proxy.faults.slow_seconds)
            self.close_connection = True
        self._send(answer)

    def _send(self, answer: _Answer) -> None:
        try:
            self.send_response(answer.status)
            for name, value in answer.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer.body)
            self.wfile.flush()
        except OSError:  # the client gave up (a slow answer past its read time-out)
            self.close_connection = True


@contextmanager
def running(upstream: str, faults: Faults | None = None) -> Iterator[FaultProxy]:
    with FaultProxy(upstream, faults) as proxy:
        yield proxy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--upstream", required=True, help="the moto server, http://127.0.0.1:PORT")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every call")
    parser.add_argument("--throttle", type=float, default=0.0)
    parser.add_argument("--server-error", type=float, default=0.0)
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--drop", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=1.0)
    parser.add_argument("--in-progress-polls", type=int, default=0)
    parser.add_argument(
        "--operations", default="IssueCertificate,GetCertificate", help="comma-separated: the operations faults hit"
    )
    args = parser.parse_args(argv)
    faults = Faults(
        throttle=args.throttle,
        server_error=args.server_error,
        slow=args.slow,
        drop=args.drop,
        slow_seconds=args.slow_seconds,
        in_progress_polls=args.in_progress_polls,
        latency=args.latency,
        operations=frozenset(op for op in args.operations.split(",") if op),
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FaultProxy(args.upstream, faults, port=args.port) as proxy:
        print(proxy.port, flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
