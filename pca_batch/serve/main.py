"""Start, run and stop `pca-batch serve`: bind, open the store, announce the URL, serve until
SIGINT or SIGTERM, then close everything."""

from __future__ import annotations

import ipaddress
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pca_batch.errors import UsageError
from pca_batch.serve.server import ApiServer, Application
from pca_batch.serve.service import Service, Settings
from pca_batch.serve.sigv4 import Credentials

DEFAULT_HOST = "127.0.0.1"
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"


@dataclass(frozen=True)
class ServeOptions:
    store: Path
    s3_dir: Path | None = None  # default: <store>/s3
    host: str = DEFAULT_HOST
    port: int = 0
    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT
    credentials: Credentials | None = None
    log: Path | None = None

    @property
    def buckets(self) -> Path:
        return self.s3_dir if self.s3_dir is not None else self.store / "s3"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@contextmanager
def running(options: ServeOptions, log: IO[str] | None = None) -> Iterator[ApiServer]:
    """The server, bound and serving from a background thread; shut down and closed on exit.
    UsageError when the address cannot be bound or the store cannot be opened."""
    try:
        server = ApiServer((options.host, options.port))
    except OSError as exc:
        where = f"{options.host}:{options.port}"
        raise UsageError(f"pca-batch serve: cannot listen on {where}: {exc.strerror or exc}") from None
    try:
        settings = Settings(options.store, options.buckets, options.region, options.account, server.url)
        try:
            service = Service(settings)
        except OSError as exc:
            raise UsageError(f"pca-batch serve: cannot open the store {options.store}: {exc.strerror or exc}") from None
        try:
            known = {options.credentials.access_key_id: options.credentials} if options.credentials else {}
            server.app = Application(service, known, log)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            try:
                yield server
            finally:
                server.shutdown()
                thread.join()
        finally:
            service.close()
    finally:
        server.server_close()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def serve(options: ServeOptions, announce: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM (main thread only)."""
    stop = threading.Event()
    log = options.log.open("a", encoding="utf-8") if options.log is not None else None
    try:
        with _stop_on_signals(stop), running(options, log) as server:
            announce(server.url)
            while not stop.wait(0.5):
                pass
    finally:
        if log is not None:
            log.close()
