"""The local store: SQLite in WAL mode, CA keys as 0600 files (encrypted on request),
declared authorities, and many threads and processes on one store at once."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pca_batch.backends.local import backend as local_module
from pca_batch.backends.local.admin import (
    audit_report,
    certificate_revocation_list,
    create_authority,
    list_authorities,
)
from pca_batch.backends.local.backend import LocalBackend, ensure_authorities
from pca_batch.backends.local.keys import KEYS_DIR, PASSPHRASE_ENV
from pca_batch.backends.local.records import SCHEMA_VERSION
from pca_batch.backends.local.store import DB_NAME, Store
from pca_batch.errors import BackendError, UsageError
from pca_batch.model import AuthoritySpec, NewAuthority
from tests.support.common import REPO
from tests.support.local_ca import load, make_csr, request, split_pems

ARN = "arn:aws:acm-pca:eu-west-1:210987654321:certificate-authority/"
ROOT_ARN, SUB_ARN = ARN + "00000000-0000-4000-8000-00000000000a", ARN + "00000000-0000-4000-8000-00000000000b"
SPECS = (
    AuthoritySpec(arn=SUB_ARN, common_name="Declared Sub", parent=ROOT_ARN),  # before its parent on purpose
    AuthoritySpec(arn=ROOT_ARN, common_name="Declared Root"),
)


def run_processes(code: str, *args: str, count: int) -> list[object]:
    """Start ``count`` Python processes on ``code`` at once; each prints one JSON value."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start_at = str(time.time() + 1.0)  # a common start line, after every interpreter has imported
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, start_at, str(i), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(count)
    ]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        out.append(json.loads(stdout))
    return out


_WAIT = "import sys, time\ntime.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"


def test_store_uses_wal_a_busy_timeout_and_private_folders(tmp_path: Path) -> None:
    create_authority(tmp_path / "s", NewAuthority(common_name="Files"))
    store = Store(tmp_path / "s")
    try:
        conn = store.connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 10_000
    finally:
        store.close()
    keys = list((tmp_path / "s" / KEYS_DIR).iterdir())
    assert len(keys) == 1
    assert stat.S_IMODE(keys[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "s" / KEYS_DIR).stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700
    assert keys[0].read_text().startswith("-----BEGIN PRIVATE KEY-----")


def test_read_only_commands_create_no_store(tmp_path: Path) -> None:
    assert list_authorities(tmp_path / "none") == []
    with pytest.raises(BackendError) as info:
        audit_report(tmp_path / "none", ROOT_ARN)
    assert info.value.code == "ResourceNotFoundException"
    assert not (tmp_path / "none").exists()


def test_passphrase_encrypts_ca_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "correct horse battery staple"
    monkeypatch.setenv(PASSPHRASE_ENV, secret)
    ca = create_authority(tmp_path / "s", NewAuthority(common_name="Encrypted"))
    (key_file,) = (tmp_path / "s" / KEYS_DIR).iterdir()
    assert key_file.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    backend = LocalBackend(tmp_path / "s")
    try:
        backend.issue_certificate(request(ca))
    finally:
        backend.close()
    for env in (None, "wrong passphrase"):
        if env is None:
            monkeypatch.delenv(PASSPHRASE_ENV)
        else:
            monkeypatch.setenv(PASSPHRASE_ENV, env)
        backend = LocalBackend(tmp_path / "s")
        try:
            with pytest.raises(BackendError) as info:
                backend.issue_certificate(request(ca))
        finally:
            backend.close()
        assert info.value.code == "AccessDeniedException"
        assert PASSPHRASE_ENV in info.value.message and secret not in str(info.value)


def test_a_key_saved_without_passphrase_stays_usable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = create_authority(tmp_path / "s", NewAuthority(common_name="Plain"))
    monkeypatch.setenv(PASSPHRASE_ENV, "set later")
    backend = LocalBackend(tmp_path / "s")
    try:
        assert backend.issue_certificate(request(ca)).startswith(ca)
    finally:
        backend.close()


def test_ensure_authorities_creates_parents_first_with_the_exact_arns(tmp_path: Path) -> None:
    ensure_authorities(tmp_path / "s", SPECS)
    listed = {ca["Arn"]: ca for ca in list_authorities(tmp_path / "s")}
    assert set(listed) == {ROOT_ARN, SUB_ARN}
    assert listed[SUB_ARN]["ParentArn"] == ROOT_ARN and listed[SUB_ARN]["Type"] == "SUBORDINATE"
    assert listed[ROOT_ARN]["OwnerAccount"] == "210987654321"
    backend = LocalBackend(tmp_path / "s")
    try:
        chain = backend.get_certificate(SUB_ARN, backend.issue_certificate(request(SUB_ARN))).chain
    finally:
        backend.close()
    subjects = [load(p).subject.rfc4514_string() for p in split_pems(chain)]
    assert subjects == ["CN=Declared Sub", "CN=Declared Root"]
    before = sorted(p.name for p in (tmp_path / "s" / KEYS_DIR).iterdir())
    ensure_authorities(tmp_path / "s", SPECS)  # nothing missing: nothing made
    assert sorted(p.name for p in (tmp_path / "s" / KEYS_DIR).iterdir()) == before


@pytest.mark.parametrize(
    "specs",
    [
        (AuthoritySpec(arn=SUB_ARN, common_name="Orphan", parent=ROOT_ARN),),
        (
            AuthoritySpec(arn=SUB_ARN, common_name="A", parent=ROOT_ARN),
            AuthoritySpec(arn=ROOT_ARN, common_name="B", parent=SUB_ARN),
        ),
        (AuthoritySpec(arn="arn:aws:s3:::not-a-ca", common_name="Bad"),),
    ],
    ids=["unknown-parent", "cycle", "bad-arn"],
)
def test_ensure_authorities_refuses_bad_declarations(
    tmp_path: Path, specs: tuple[AuthoritySpec, ...]
) -> None:
    with pytest.raises(UsageError):
        ensure_authorities(tmp_path / "s", specs)
    assert list_authorities(tmp_path / "s") == []


def test_processes_declaring_the_same_authorities_make_each_once(tmp_path: Path) -> None:
    code = _WAIT + (
        "import json\n"
        "from pathlib import Path\n"
        "from pca_batch.backends.local.backend import ensure_authorities\n"
        "from pca_batch.model import AuthoritySpec\n"
        "ensure_authorities(Path(sys.argv[3]), [AuthoritySpec(**s) for s in json.loads(sys.argv[4])])\n"
        "print(json.dumps('ok'))\n"
    )
    specs = json.dumps([{"arn": s.arn, "common_name": s.common_name, "parent": s.parent} for s in SPECS])
    assert run_processes(code, str(tmp_path / "s"), specs, count=4) == ["ok"] * 4
    assert sorted(ca["Arn"] for ca in list_authorities(tmp_path / "s")) == [ROOT_ARN, SUB_ARN]
    assert len(list((tmp_path / "s" / KEYS_DIR).iterdir())) == 2  # the losers' keys are gone
    assert len(audit_report(tmp_path / "s", ROOT_ARN)) == 2  # the root's own and the sub's certificates


def test_concurrent_processes_lose_nothing_and_never_reuse_a_serial(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ca = create_authority(store, NewAuthority(common_name="Busy"))
    code = _WAIT + (
        "import json\n"
        "from pathlib import Path\n"
        "from tests.support.local_ca import make_csr, request\n"
        "from pca_batch.backends.local.backend import LocalBackend\n"
        "backend = LocalBackend(Path(sys.argv[3]))\n"
        "ca, me = sys.argv[4], sys.argv[2]\n"
        "issue = lambda **kw: backend.issue_certificate(request(ca, **kw))\n"
        "shared = [issue(IdempotencyToken=f'shared-{k}') for k in range(10)]\n"
        "own = [issue(csr=make_csr(f'p{me}-{k}.example')) for k in range(60)]\n"
        "own += [issue(IdempotencyToken=f'own-{me}-{k}') for k in range(20)]\n"
        "backend.close()\n"
        "print(json.dumps({'shared': shared, 'own': own}))\n"
    )
    results = run_processes(code, str(store), ca, count=4)
    shared = [r["shared"] for r in results]  # type: ignore[index]
    assert all(s == shared[0] for s in shared), "every process got the same ARN for each shared token"
    own = [arn for r in results for arn in r["own"]]  # type: ignore[index]
    assert len(set(own)) == len(own) == 4 * 80
    report = audit_report(store, ca)
    recorded = {entry["certificateArn"] for entry in report}
    assert recorded >= set(own) | set(shared[0])
    assert len(report) == 1 + len(own) + len(shared[0])  # the CA's own certificate, then ours: no extras
    serials = [entry["serial"] for entry in report]
    assert len(set(serials)) == len(serials)


def test_many_threads_on_one_backend(tmp_path: Path) -> None:
    store = tmp_path / "s"
    ca = create_authority(store, NewAuthority(common_name="Threads"))
    backend = LocalBackend(store)
    csrs = [make_csr(f"t{i}.example", (f"t{i}.example",)) for i in range(8)]
    try:
        with ThreadPoolExecutor(8) as pool:
            arns = list(
                pool.map(
                    lambda i: backend.issue_certificate(request(ca, csrs[i % 8], IdempotencyToken=f"t-{i}")),
                    range(200),
                )
            )
            again = list(
                pool.map(
                    lambda i: backend.issue_certificate(request(ca, csrs[i % 8], IdempotencyToken=f"t-{i}")),
                    range(200),
                )
            )
    finally:
        backend.close()
    assert len(set(arns)) == 200 and again == arns
    fresh = LocalBackend(store)
    try:
        for i in (0, 99, 199):
            cert = load(fresh.get_certificate(ca, arns[i]).certificate)
            assert cert.subject.rfc4514_string() == f"CN=t{i % 8}.example"
    finally:
        fresh.close()
    assert len(audit_report(store, ca)) == 201


def test_a_serial_collision_draws_another_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "s"
    ca = create_authority(store, NewAuthority(common_name="Collide"))
    serials = iter([0x1234, 0x1234, 0x5678])
    monkeypatch.setattr(local_module, "new_serial", lambda: next(serials))
    backend = LocalBackend(store)
    try:
        first = backend.issue_certificate(request(ca))
        second = backend.issue_certificate(request(ca))
    finally:
        backend.close()
    assert first.endswith("/certificate/" + format(0x1234, "032x"))
    assert second.endswith("/certificate/" + format(0x5678, "032x"))
    assert {e["certificateArn"] for e in audit_report(store, ca)} >= {first, second}


def test_database_file_is_where_the_store_says(tmp_path: Path) -> None:
    create_authority(tmp_path / "s", NewAuthority(common_name="Where"))
    assert (tmp_path / "s" / DB_NAME).is_file()


V4_COLUMNS = (
    "ca_type", "signing_algorithm", "configuration", "revocation", "csr_pem", "chain_pem", "changed_at",
    "deleted_from", "restorable_until", "key_storage", "create_token", "create_token_at",
)  # fmt: skip
V4_TABLES = ("tags", "permissions", "policies", "audit_reports")


def _rewind_to_version_3(conn: sqlite3.Connection) -> None:
    """Undo version 4 (serve's CA lifecycle) on a store's database."""
    for table in V4_TABLES:
        conn.execute(f"DROP TABLE {table}")
    for column in V4_COLUMNS:
        conn.execute(f"ALTER TABLE authorities DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 3")


def _rewind_to_version_2(conn: sqlite3.Connection) -> None:
    """Undo versions 4 and 3 (CRLs) on a store's database."""
    _rewind_to_version_3(conn)
    conn.execute("DROP INDEX certificates_revoked")
    for column in ("crl_url", "crl_days", "crl_number", "crl_at"):
        conn.execute(f"ALTER TABLE authorities DROP COLUMN {column}")
    conn.execute("PRAGMA user_version = 2")


def test_a_version_2_store_is_migrated_to_one_with_crls(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    ca = create_authority(folder, NewAuthority(common_name="Before CRLs"))
    with sqlite3.connect(folder / DB_NAME) as conn:
        _rewind_to_version_2(conn)
    conn.close()
    backend = LocalBackend(folder)
    try:
        serial = backend.issue_certificate(request(ca)).rsplit("/", 1)[1]
        backend.revoke_certificate(ca, serial, "SUPERSEDED")
    finally:
        backend.close()
    crl = certificate_revocation_list(folder, ca)
    assert [r.serial_number for r in crl] == [int(serial, 16)]
    store = Store(folder)
    try:
        row = store.authority(ca)
        assert row is not None and row.crl_url is None and row.crl_number == 1
    finally:
        store.close()
    with sqlite3.connect(folder / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    conn.close()


def test_a_version_3_store_is_migrated_to_one_with_the_ca_lifecycle(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    ca = create_authority(folder, NewAuthority(common_name="Before serve"))
    backend = LocalBackend(folder)
    try:
        issued = backend.issue_certificate(request(ca, IdempotencyToken="kept"))
    finally:
        backend.close()
    with sqlite3.connect(folder / DB_NAME) as conn:
        _rewind_to_version_3(conn)
    conn.close()
    backend = LocalBackend(folder)
    try:  # the CA, its certificates and their tokens are all there, and it still issues
        assert backend.issue_certificate(request(ca, IdempotencyToken="kept")) == issued
        assert backend.get_certificate(ca, issued).certificate.startswith("-----BEGIN CERTIFICATE-----")
        backend.issue_certificate(request(ca))
    finally:
        backend.close()
    store = Store(folder)
    try:
        row = store.authority(ca)
        assert row is not None and row.status == "ACTIVE" and row.has_certificate
        assert (row.ca_type, row.configuration, row.chain_pem, row.restorable_until) == (None, None, None, None)
    finally:
        store.close()
    with sqlite3.connect(folder / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert set(V4_TABLES) <= tables


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    """Stores made before tokens moved into the certificates table keep their tokens."""
    folder = tmp_path / "s"
    ca = create_authority(folder, NewAuthority(common_name="Old"))
    backend = LocalBackend(folder)
    try:
        arn = backend.issue_certificate(request(ca, IdempotencyToken="old-token"))
    finally:
        backend.close()
    serial = arn.rsplit("/", 1)[1]
    with sqlite3.connect(folder / DB_NAME) as conn:  # rewind the file to the version 1 layout
        _rewind_to_version_2(conn)
        token_at = conn.execute("SELECT token_at FROM certificates WHERE serial = ?", (serial,)).fetchone()[0]
        conn.execute("DROP INDEX certificates_by_token")
        conn.execute("ALTER TABLE certificates DROP COLUMN token")
        conn.execute("ALTER TABLE certificates DROP COLUMN token_at")
        conn.execute(
            "CREATE TABLE idempotency_tokens (ca_arn TEXT NOT NULL, token TEXT NOT NULL, "
            "certificate_arn TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (ca_arn, token)) "
            "WITHOUT ROWID"
        )
        conn.execute("INSERT INTO idempotency_tokens VALUES (?, ?, ?, ?)", (ca, "old-token", arn, token_at))
        conn.execute("PRAGMA user_version = 1")
    conn.close()
    backend = LocalBackend(folder)
    try:
        assert backend.issue_certificate(request(ca, IdempotencyToken="old-token")) == arn
        assert backend.issue_certificate(request(ca, IdempotencyToken="new-token")) != arn
    finally:
        backend.close()
    with sqlite3.connect(folder / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert "idempotency_tokens" not in tables


def test_a_read_only_store_creates_and_changes_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackendError) as info:
        Store(empty, read_only=True)
    assert info.value.code == "ResourceNotFoundException"
    assert list(empty.iterdir()) == []

    folder = tmp_path / "store"
    arn = create_authority(folder, NewAuthority(common_name="Read Only"))
    files = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    backend = LocalBackend(folder, read_only=True)
    try:
        assert backend.describe_certificate_authority(arn).status == "ACTIVE"
        with pytest.raises(BackendError, match="readonly"):
            backend.issue_certificate(request(arn))
    finally:
        backend.close()
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == files


def test_a_store_from_a_newer_pca_batch_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    """An older pca-batch must not mark a newer store as its own version without its changes."""
    folder = tmp_path / "s"
    create_authority(folder, NewAuthority(common_name="Newer"))
    with sqlite3.connect(folder / DB_NAME) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    for read_only in (False, True):
        with pytest.raises(BackendError) as caught:
            LocalBackend(folder, read_only=read_only)
        assert caught.value.code == "InvalidStateException"
        assert "newer pca-batch" in str(caught.value)
    with sqlite3.connect(folder / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    conn.close()
