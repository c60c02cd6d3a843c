"""The records of the local CA store: its SQLite schema and the rows it reads and writes."""

from __future__ import annotations

from dataclasses import dataclass

from pca_batch.acmpca import certificate_arn

SCHEMA_VERSION = 3

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
        crl_at INTEGER
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
}


@dataclass(frozen=True)
class AuthorityRow:
    arn: str
    parent_arn: str | None
    common_name: str
    key_algorithm: str
    usage_mode: str
    status: str  # ACTIVE | DISABLED
    key_file: str  # file name under keys/
    certificate_pem: str
    not_before: int  # Unix seconds
    not_after: int
    created_at: int
    crl_url: str | None = None  # CRLs enabled: the distribution point's folder URL
    crl_days: int | None = None  # a CRL's nextUpdate, in days after its thisUpdate
    crl_number: int = 0  # the number of the last CRL made (0: none yet)
    crl_at: int | None = None  # the thisUpdate of the last CRL made (Unix seconds)


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
