"""The records of the local CA store: its SQLite schema and the rows it reads and writes."""

from __future__ import annotations

from dataclasses import dataclass

from pca_batch.acmpca import certificate_arn

SCHEMA_VERSION = 4

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS authorities (
        arn TEXT PRIMARY KEY,
        parent_arn TEXT,
        common_name TEXT NOT NULL,
        key_algorithm TEXT NOT NULL,
        usage_mode TEXT NOT NULL,
        status TEXT NOT NULL,
        key_file TEXT NOT NULL,
        certificate_pem TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        crl_url TEXT,
        crl_days INTEGER,
        crl_number INTEGER NOT NULL DEFAULT 0,
        crl_at INTEGER,
        ca_type TEXT,
        signing_algorithm TEXT,
        configuration TEXT,
        revocation TEXT,
        csr_pem TEXT,
        chain_pem TEXT,
        changed_at INTEGER,
        deleted_from TEXT,
        restorable_until INTEGER,
        key_storage TEXT,
        create_token TEXT,
        create_token_at REAL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS certificates (
        serial TEXT PRIMARY KEY,
        ca_arn TEXT NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        issued_at INTEGER NOT NULL,
        template_arn TEXT NOT NULL,
        revoked_at INTEGER,
        revocation_reason TEXT,
        certificate_pem TEXT NOT NULL,
        token TEXT,
        token_at REAL
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS certificates_by_ca ON certificates (ca_arn, issued_at)
    """,
    """
    CREATE INDEX IF NOT EXISTS certificates_by_token ON certificates (ca_arn, token, token_at)
    WHERE token IS NOT NULL
    """,
    """
    CREATE INDEX IF NOT EXISTS certificates_revoked ON certificates (ca_arn, not_after)
    WHERE revoked_at IS NOT NULL
    """,
    """
    CREATE TABLE IF NOT EXISTS tags (
        ca_arn TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT,
        position INTEGER NOT NULL,
        PRIMARY KEY (ca_arn, key)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS permissions (
        ca_arn TEXT NOT NULL,
        principal TEXT NOT NULL,
        source_account TEXT NOT NULL DEFAULT '',
        actions TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (ca_arn, principal, source_account)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS policies (
        ca_arn TEXT PRIMARY KEY,
        policy TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS audit_reports (
        id TEXT PRIMARY KEY,
        ca_arn TEXT NOT NULL,
        bucket TEXT NOT NULL,
        s3_key TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )
    """,
)
_V4_COLUMNS = (
    "ca_type TEXT",
    "signing_algorithm TEXT",
    "configuration TEXT",
    "revocation TEXT",
    "csr_pem TEXT",
    "chain_pem TEXT",
    "changed_at INTEGER",
    "deleted_from TEXT",
    "restorable_until INTEGER",
    "key_storage TEXT",
    "create_token TEXT",
    "create_token_at REAL",
)
# What brings a store of an older version up to SCHEMA_VERSION (keyed by the version reached).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: (
        "ALTER TABLE certificates ADD COLUMN token TEXT",
        "ALTER TABLE certificates ADD COLUMN token_at REAL",
        SCHEMA[3],
        "UPDATE certificates SET (token, token_at) = (SELECT t.token, t.created_at "
        "FROM idempotency_tokens AS t "
        "WHERE t.certificate_arn = certificates.ca_arn || '/certificate/' || certificates.serial)",
        "DROP TABLE idempotency_tokens",
    ),
    3: (  # CRLs: each CA's configuration, the last CRL's number and time; revoked certificates found fast
        "ALTER TABLE authorities ADD COLUMN crl_url TEXT",
        "ALTER TABLE authorities ADD COLUMN crl_days INTEGER",
        "ALTER TABLE authorities ADD COLUMN crl_number INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE authorities ADD COLUMN crl_at INTEGER",
        SCHEMA[4],
    ),
    4: (  # the CA lifecycle of `pca-batch serve`: pending CAs, imports, deletion, tags, permissions, ...
        *(f"ALTER TABLE authorities ADD COLUMN {column}" for column in _V4_COLUMNS),
        *SCHEMA[5:9],
    ),
}


@dataclass(frozen=True)
class AuthorityRow:
    arn: str
    parent_arn: str | None
    common_name: str
    key_algorithm: str
    usage_mode: str
    status: str  # ACTIVE | DISABLED, and with `serve`: PENDING_CERTIFICATE | DELETED
    key_file: str  # file name under keys/
    certificate_pem: str  # "" while PENDING_CERTIFICATE (no certificate imported yet)
    not_before: int  # Unix seconds (0 while PENDING_CERTIFICATE)
    not_after: int
    created_at: int
    crl_url: str | None = None  # CRLs enabled: the distribution point's folder URL
    crl_days: int | None = None  # a CRL's nextUpdate, in days after its thisUpdate
    crl_number: int = 0  # the number of the last CRL made (0: none yet)
    crl_at: int | None = None  # the thisUpdate of the last CRL made (Unix seconds)
    # Schema 4, written by `pca-batch serve` (None for CAs that `ca create` or a manifest made):
    ca_type: str | None = None  # ROOT | SUBORDINATE (None: SUBORDINATE when it has a parent)
    signing_algorithm: str | None = None  # the CA's own (None: the key's default)
    configuration: str | None = None  # JSON: CreateCertificateAuthority's CertificateAuthorityConfiguration
    revocation: str | None = None  # JSON: its RevocationConfiguration
    csr_pem: str | None = None  # the CA's CSR (GetCertificateAuthorityCsr)
    chain_pem: str | None = None  # the chain imported with the CA's certificate (a subordinate's)
    changed_at: int | None = None  # LastStateChangeAt (None: created_at)
    deleted_from: str | None = None  # the status it had when deleted (DELETED: RestoreCertificateAuthority's)
    restorable_until: int | None = None  # DELETED: restorable until then (Unix seconds), gone after
    key_storage: str | None = None  # KeyStorageSecurityStandard as asked
    create_token: str | None = None  # CreateCertificateAuthority's IdempotencyToken
    create_token_at: float | None = None

    @property
    def has_certificate(self) -> bool:
        """False while the CA waits for its certificate (PENDING_CERTIFICATE)."""
        return bool(self.certificate_pem)


@dataclass(frozen=True)
class CertificateRow:
    serial: str  # 32 lowercase hex digits, unique in the store
    ca_arn: str
    not_before: int  # Unix seconds
    not_after: int
    issued_at: int
    template_arn: str
    certificate_pem: str
    revoked_at: int | None = None
    revocation_reason: str | None = None
    token: str | None = None  # the IdempotencyToken it was issued under
    token_at: float | None = None  # when that token was recorded (Unix seconds)

    @property
    def arn(self) -> str:
        return certificate_arn(self.ca_arn, self.serial)
