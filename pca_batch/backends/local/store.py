"""The local CA's store: one SQLite database and the CA keys as files.

Layout of the store folder (mode 0700)::

    pca-batch.db        authorities, certificates, idempotency tokens (WAL)
    keys/<hex>.pem      one private key per CA, mode 0600, PKCS#8, encrypted
                        with PCA_BATCH_STORE_PASSPHRASE when that is set

Many threads and several processes may use one store at once. Each thread has
its own connection; every write is one short ``BEGIN IMMEDIATE`` transaction,
so a check and the insert that depends on it are atomic across processes.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pca_batch.acmpca import certificate_arn
from pca_batch.backends.local.keys import KEYS_DIR
from pca_batch.backends.local.records import MIGRATIONS, SCHEMA, SCHEMA_VERSION, AuthorityRow, CertificateRow
from pca_batch.errors import BackendError

DB_NAME = "pca-batch.db"
BUSY_TIMEOUT_S = 60.0


@dataclass
class _Pending:
    """A certificate waiting for the next group commit."""

    row: CertificateRow
    since: float
    also: str  # a status besides ACTIVE the CA may have (ACTIVE: none)
    finished: threading.Event  # set once its commit ended (shared by the rows queued together)
    arn: str | None = None
    error: BaseException | None = None


_CERT_COLUMNS = tuple(f.name for f in fields(CertificateRow))
_AUTH_COLUMNS = tuple(f.name for f in fields(AuthorityRow))
__all__ = ["DB_NAME", "AuthorityRow", "CertificateRow", "SerialTaken", "Store"]


class SerialTaken(Exception):
    """The random serial is already used (vanishingly rare): draw another and sign again."""


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


_TOKEN_HOLDER = (
    "SELECT serial FROM certificates WHERE ca_arn = ? AND token = ? AND token_at >= ? "
    "ORDER BY token_at DESC LIMIT 1"
)
# Insert the certificate only when its CA is ACTIVE (or, for a root's own certificate, still
# PENDING_CERTIFICATE) and its token (if any) holds no certificate of the last five minutes:
# the check and the write are one statement.
_INSERT_IF = (
    f"INSERT INTO certificates ({', '.join(_CERT_COLUMNS)}) SELECT {_marks(_CERT_COLUMNS)} "
    "WHERE (SELECT status FROM authorities WHERE arn = ?) IN ('ACTIVE', ?) AND (? IS NULL OR NOT EXISTS ("
    "SELECT 1 FROM certificates WHERE ca_arn = ? AND token = ? AND token_at >= ?))"
)


class Store:
    """A store folder; safe to share between threads (one connection per thread).

    ``read_only``: for those that must change nothing (the plan): the database is
    opened with SQLite's ``mode=ro``, nothing is created and nothing migrated; a
    store that is missing or of another schema version is a BackendError.
    """

    def __init__(self, folder: Path, *, create: bool = True, read_only: bool = False) -> None:
        self.folder = Path(folder)
        self.db_path = self.folder / DB_NAME
        self.read_only = read_only
        if create and not read_only:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.folder / KEYS_DIR).mkdir(mode=0o700, exist_ok=True)
        elif not self.db_path.exists():
            raise BackendError("ResourceNotFoundException", f"there is no local CA store at {self.folder}")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._leading = False
        self._queue: list[_Pending] = []
        self._connections: list[sqlite3.Connection] = []
        try:
            self._initialise()
        except BaseException:
            self.close()
            raise

    # -- connections ---------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            target = str(self.db_path)
            if self.read_only:
                target = f"{self.db_path.absolute().as_uri()}?{self._read_only_mode()}"
            conn = sqlite3.connect(
                target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False, uri=self.read_only
            )
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _read_only_mode(self) -> str:
        """mode=ro: SQLite refuses every write and creates no database. But a read-only
        reader of a WAL database still creates the -wal and -shm files when they are not
        there, and cannot remove them. Missing, they say that no connection is open and
        every change is in the database file: it is read as it is (immutable), creating nothing."""
        wal = self.db_path.with_name(self.db_path.name + "-wal")
        return "mode=ro" if wal.exists() else "mode=ro&immutable=1"

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction that holds the write lock from its start."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
        for conn in connections:
            conn.close()

    def _initialise(self) -> None:
        # Several processes may open a brand-new store at once; switching to WAL can
        # answer "locked" without calling the busy handler, so retry for a while.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                conn = self.connection()
                if self.read_only:
                    self._check_version(conn)
                    return
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    with self.write() as tx:
                        version = tx.execute("PRAGMA user_version").fetchone()[0]
                        self._refuse_newer(version)
                        steps = (
                            [SCHEMA]
                            if version == 0
                            else [MIGRATIONS[v] for v in range(version + 1, SCHEMA_VERSION + 1)]
                        )
                        for statement in (s for step in steps for s in step):
                            tx.execute(statement)
                        tx.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                return
            except sqlite3.OperationalError as exc:
                transient = "locked" in str(exc) or "busy" in str(exc)
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.005 + secrets.randbelow(20) / 1000)

    def _refuse_newer(self, version: int) -> None:
        """A store a newer pca-batch wrote: never migrated down, nor marked as this version."""
        if version > SCHEMA_VERSION:
            raise BackendError(
                "InvalidStateException",
                f"the local CA store at {self.folder} was written by a newer pca-batch (store schema "
                f"{version}; this one reads up to {SCHEMA_VERSION}): use that version or newer",
            )

    def _check_version(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        self._refuse_newer(version)
        if version != SCHEMA_VERSION:  # a read-only opening does not migrate: apply will
            raise BackendError(
                "InvalidStateException",
                f"the local CA store at {self.folder} has schema version {version}, not {SCHEMA_VERSION}",
            )

    # -- authorities ---------------------------------------------------------------

    def _query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        return self.connection().execute(sql, params).fetchall()

    def authority(self, arn: str) -> AuthorityRow | None:
        rows = self._query(f"SELECT {', '.join(_AUTH_COLUMNS)} FROM authorities WHERE arn = ?", arn)
        return AuthorityRow(*rows[0]) if rows else None

    def authorities(self) -> list[AuthorityRow]:
        rows = self._query(f"SELECT {', '.join(_AUTH_COLUMNS)} FROM authorities ORDER BY created_at, rowid")
        return [AuthorityRow(*r) for r in rows]

    def add_authority(self, row: AuthorityRow, certificate: CertificateRow) -> bool:
        """Insert a CA and its certificate (recorded as issued by its parent, or itself).

        False, with nothing written, when that ARN exists already. Raises SerialTaken.
        """
        with self.write() as tx:
            if tx.execute("SELECT 1 FROM authorities WHERE arn = ?", (row.arn,)).fetchone():
                return False
            tx.execute(
                f"INSERT INTO authorities ({', '.join(_AUTH_COLUMNS)}) VALUES ({_marks(_AUTH_COLUMNS)})",
                tuple(getattr(row, c) for c in _AUTH_COLUMNS),
            )
            self._insert_certificate(tx, certificate)
        return True

    def _insert_certificate(self, tx: sqlite3.Connection, row: CertificateRow) -> None:
        try:
            tx.execute(
                f"INSERT INTO certificates ({', '.join(_CERT_COLUMNS)}) VALUES ({_marks(_CERT_COLUMNS)})",
                tuple(getattr(row, c) for c in _CERT_COLUMNS),
            )
        except sqlite3.IntegrityError:
            raise SerialTaken(row.serial) from None

    def set_authority_status(self, arn: str, status: str) -> bool:
        with self.write() as tx:
            cursor = tx.execute("UPDATE authorities SET status = ? WHERE arn = ?", (status, arn))
        return cursor.rowcount == 1

    # -- certificates and idempotency tokens ------------------------------------------

    def add_certificate(self, row: CertificateRow, *, since: float = 0.0, pending: bool = False) -> str:
        """Record an issued certificate atomically; returns the ARN that holds.

        ``pending``: the CA may also be PENDING_CERTIFICATE (a root CA signing its own certificate).

        When another thread or process recorded a certificate under the same CA and
        ``row.token`` at or after ``since``, nothing is written and that certificate's
        ARN is returned. Raises InvalidStateException when the CA is not ACTIVE
        (checked in the same statement, so a disabled CA never gains a record) and
        SerialTaken when the serial is in use.
        """
        found = self.add_certificates([row], since=since, pending=pending)[0]
        if isinstance(found, BaseException):
            raise found
        return found

    def add_certificates(
        self, rows: Sequence[CertificateRow], *, since: float | Sequence[float] = 0.0, pending: bool = False
    ) -> list[str | BackendError | SerialTaken]:
        """Record several certificates, each as :meth:`add_certificate` would, usually in one
        transaction; returns, for each row, the ARN that holds or the error it met.
        ``since``: one for every row, or each row's.

        Group commit: threads queue their rows; the first to find no commit under way
        writes every queued row in one transaction, one statement a row, while the
        others wait for their rows' events: many threads pay for one commit.
        """
        also = "PENDING_CERTIFICATE" if pending else "ACTIVE"
        times = [since] * len(rows) if isinstance(since, int | float) else list(since)
        # one event for the call's rows: they are queued together, so one commit takes them all
        finished = threading.Event()
        items = [_Pending(row, at, also, finished) for row, at in zip(rows, times, strict=True)]
        with self._lock:
            self._queue.extend(items)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        out: list[str | BackendError | SerialTaken] = []
        for item in items:
            item.finished.wait()
            if isinstance(item.error, BackendError | SerialTaken):
                out.append(item.error)
            elif item.error is not None:
                raise item.error
            else:
                assert item.arn is not None
                out.append(item.arn)
        return out

    def _lead(self) -> None:
        # Commit batch after batch until the queue is empty. Whoever queues while
        # a leader is at work is sure to be taken: the leader steps down only
        # under the lock, with the queue empty.
        try:
            while True:
                with self._lock:
                    batch, self._queue = self._queue, []
                    if not batch:
                        self._leading = False
                        break
                self._commit(batch)
        except BaseException:  # interrupted: nobody may wait for a leader that is gone
            with self._lock:
                rest, self._queue, self._leading = self._queue, [], False
            for other in rest:
                other.error = BackendError("InternalFailure", "the local store's commit was interrupted")
                other.finished.set()
            raise

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            with self.write() as tx:
                for item in batch:
                    self._record(tx, item)
        except BaseException as exc:
            failure = BackendError(
                "InternalFailure", f"the local store could not record a certificate: {exc}"
            )
            for item in batch:
                item.arn, item.error = None, failure
            if not isinstance(exc, sqlite3.Error):
                raise
        finally:
            for item in batch:
                item.finished.set()

    def _record(self, tx: sqlite3.Connection, item: _Pending) -> None:
        """One conditional INSERT: it writes only for an ACTIVE CA and a token not yet used."""
        row = item.row
        try:
            cursor = tx.execute(
                _INSERT_IF,
                [
                    *(getattr(row, c) for c in _CERT_COLUMNS),
                    row.ca_arn,
                    item.also,
                    row.token,
                    row.ca_arn,
                    row.token,
                    item.since,
                ],
            )
        except sqlite3.IntegrityError:
            item.error = SerialTaken(
                row.serial
            )  # only this row: a failed INSERT leaves the transaction going
            return
        if cursor.rowcount == 1:
            item.arn = row.arn
            return
        if row.token is not None:
            found = tx.execute(_TOKEN_HOLDER, (row.ca_arn, row.token, item.since)).fetchone()
            if found is not None:
                item.arn = certificate_arn(row.ca_arn, found[0])
                return
        status = tx.execute("SELECT status FROM authorities WHERE arn = ?", (row.ca_arn,)).fetchone()
        code = "InvalidStateException" if status else "ResourceNotFoundException"
        item.error = BackendError(
            code, f"certificate authority {row.ca_arn} is {status[0] if status else 'unknown'}"
        )

    def certificate(self, serial: str) -> CertificateRow | None:
        rows = self._query(f"SELECT {', '.join(_CERT_COLUMNS)} FROM certificates WHERE serial = ?", serial)
        return CertificateRow(*rows[0]) if rows else None

    def certificates(self, ca_arn: str) -> list[CertificateRow]:
        columns = ", ".join(_CERT_COLUMNS)
        rows = self._query(
            f"SELECT {columns} FROM certificates WHERE ca_arn = ? ORDER BY issued_at, rowid", ca_arn
        )
        return [CertificateRow(*r) for r in rows]

    # -- revocation -----------------------------------------------------------------

    def revoke(self, ca_arn: str, serial: str, *, at: int, reason: str) -> None:
        """Record a revocation, atomically: only a certificate the CA issued, not yet revoked,
        while the CA is ACTIVE. Raises RevokeCertificate's error otherwise (the CA's own
        self-signed certificate is the caller's to refuse)."""
        with self.write() as tx:
            cursor = tx.execute(
                "UPDATE certificates SET revoked_at = ?, revocation_reason = ? "
                "WHERE serial = ? AND ca_arn = ? AND revoked_at IS NULL "
                "AND (SELECT status FROM authorities WHERE arn = ?) = 'ACTIVE'",
                (at, reason, serial, ca_arn, ca_arn),
            )
            if cursor.rowcount == 1:
                return
            status = tx.execute("SELECT status FROM authorities WHERE arn = ?", (ca_arn,)).fetchone()
            found = tx.execute(
                "SELECT revoked_at FROM certificates WHERE serial = ? AND ca_arn = ?", (serial, ca_arn)
            ).fetchone()
        if status is None:
            raise BackendError("ResourceNotFoundException", f"certificate authority {ca_arn} was not found")
        if status[0] != "ACTIVE":
            raise BackendError("InvalidStateException", f"certificate authority {ca_arn} is {status[0]}, not ACTIVE")
        if found is None:
            raise BackendError("ResourceNotFoundException", f"{ca_arn} issued no certificate of serial {serial}")
        raise BackendError("RequestAlreadyProcessedException", f"the certificate of serial {serial} is revoked already")

    def next_crl(self, ca_arn: str, *, at: int) -> tuple[int, list[CertificateRow]]:
        """Draw the CA's next CRL number (recording ``at`` as its thisUpdate) and return it with
        the certificates the CRL lists: those revoked that have not expired, and those that
        expired since the last CRL (a revoked certificate is in one CRL more after it expires)."""
        with self.write() as tx:
            found = tx.execute("SELECT crl_number, crl_at FROM authorities WHERE arn = ?", (ca_arn,)).fetchone()
            if found is None:
                raise BackendError("ResourceNotFoundException", f"certificate authority {ca_arn} was not found")
            number, last = found[0] + 1, found[1]
            tx.execute("UPDATE authorities SET crl_number = ?, crl_at = ? WHERE arn = ?", (number, at, ca_arn))
            rows = tx.execute(
                f"SELECT {', '.join(_CERT_COLUMNS)} FROM certificates "
                "WHERE ca_arn = ? AND revoked_at IS NOT NULL AND not_after >= ? ORDER BY revoked_at, rowid",
                (ca_arn, min(at, last) if last is not None else at),
            ).fetchall()
        return number, [CertificateRow(*r) for r in rows]
