"""Frozen records passed between the stages: manifest -> plan -> runner -> reports."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from pca_batch.acmpca import GENERAL_PURPOSE, RevocationReason, UsageMode
from pca_batch.errors import Problem
from pca_batch.pki.algorithms import DEFAULT_KEY_ALGORITHM, KeyAlgorithm

OUTPUT_KINDS = ("certificate", "chain", "full_chain", "private_key")


class Status(StrEnum):
    """What happened to an entry; the values are the JSON report's strings."""

    PLANNED = "planned"  # a plan's row: apply would issue or renew it
    ISSUED = "issued"  # IssueCertificate was called (an idempotent answer too) and the certificate delivered
    RECOVERED = "recovered"  # no IssueCertificate call: the journal had its ARN; fetched, its files written again
    UNCHANGED = "unchanged"  # its files already held its certificate: nothing written
    FAILED = "failed"
    INVALID = "invalid"
    SKIPPED = "skipped"  # nothing done: not started, or stopped before any certificate was issued
    REVOKED = "revoked"  # `pca-batch revoke`: its current certificate is revoked (now, or by an earlier run)


PLANNED = Status.PLANNED
ISSUED = Status.ISSUED
RECOVERED = Status.RECOVERED
UNCHANGED = Status.UNCHANGED
FAILED = Status.FAILED
INVALID = Status.INVALID
SKIPPED = Status.SKIPPED
REVOKED = Status.REVOKED
STATUSES = tuple(Status)  # the report's order
RECOVERED_NOTE = "issued by an earlier run (per the journal): fetched again, no IssueCertificate call"

# What the plan does with an entry (decided by pca_batch.plan: issue, renew or leave it
# unchanged; invalid: the manifest says what is wrong; refused: preflight found AWS would refuse it).
Decided = Literal["issue", "renew", "unchanged"]
# revoke: apply --prune revokes it (no longer in the manifest), or a certificate a renewal replaced;
# orphaned: no longer in the manifest, left alone (no --prune);
# adopt: apply --adopt records the certificate file on disk instead of renewing it (it checked out)
PlanAction = Literal[Decided, "invalid", "refused", "revoke", "orphaned", "adopt", "fetch"]
BackendType = Literal["local", "aws"]
DEFAULT_STORE = ".pca-batch"  # beside the manifest: the local CA's store, and the journal


@dataclass(frozen=True)
class CsrInfo:
    """What a CSR holds (never its bytes in a message), filled in by whoever reads the CSR.

    - subject: RFC 4514 string, "" when empty
    - sans: ("DNS:a.example", "IP:10.0.0.1", "URI:...", "email:...")
    - key_algorithm: RSA_2048 ... EC_secp521r1, ML_DSA_*
    - public_key_sha256: hex SHA-256 of the SubjectPublicKeyInfo DER ("" while the key is not made yet)
    """

    subject: str
    sans: tuple[str, ...]
    key_algorithm: str
    public_key_sha256: str


class CsrFacts(Protocol):
    """What an entry tells of its CSR: a :class:`CsrInfo`, or a checked CSR that
    reads the same facts from its PEM on first use (``pca_batch.pki.csr.CheckedCsr``)."""

    @property
    def subject(self) -> str: ...

    @property
    def sans(self) -> tuple[str, ...]: ...

    @property
    def key_algorithm(self) -> str: ...

    @property
    def public_key_sha256(self) -> str: ...


@dataclass(frozen=True)
class Outputs:
    """Where an entry's files go: absolute paths, or None when not wanted."""

    certificate: Path | None = None
    chain: Path | None = None
    full_chain: Path | None = None
    private_key: Path | None = None

    def items(self) -> list[tuple[str, Path]]:
        return [(k, p) for k in OUTPUT_KINDS if (p := getattr(self, k)) is not None]

    def relative_to(self, base_dir: Path) -> dict[str, str | None]:
        """Every kind's path as the report shows it: relative to ``base_dir``, with ``/``."""
        base = str(base_dir).rstrip(os.sep) + os.sep
        out: dict[str, str | None] = {}
        for kind in OUTPUT_KINDS:
            path = getattr(self, kind)
            if path is None:
                out[kind] = None
                continue
            text = str(path)
            if text.startswith(base):  # the usual case, a file below the folder: no relpath
                out[kind] = text[len(base) :].replace(os.sep, "/")
            else:
                out[kind] = Path(os.path.relpath(path, base_dir)).as_posix()
        return out


@dataclass(frozen=True)
class Entry:
    """One manifest entry after loading: either valid (``request`` set) or invalid."""

    name: str
    index: int  # position in `certificates`, from 0
    line: int  # line of the entry in the manifest
    request: Mapping[str, Any] | None  # merged IssueCertificate request, Csr as PEM text
    token: str | None  # the IdempotencyToken sent with every attempt
    csr: CsrFacts | None
    outputs: Outputs
    problems: tuple[Problem, ...] = ()
    key: Any = None  # pca_batch.pki.keys.KeySpec when pca-batch makes the key and CSR
    renew_before: str | None = None  # "30d", "12h", "33%"; None: a third of the lifetime
    explicit_token: bool = False  # the manifest gave IdempotencyToken itself
    revoke_replaced: RevocationReason | None = None  # revoke the certificate a renewal replaces, for this reason

    @property
    def valid(self) -> bool:
        return not self.problems and self.request is not None

    @property
    def ca_arn(self) -> str | None:
        if self.request is None:
            return None
        arn = self.request.get("CertificateAuthorityArn")
        return arn if isinstance(arn, str) else None

    def checked(self, csr: CsrFacts, token: str | None) -> Entry:
        """This entry once its CSR has been read and checked (``dataclasses.replace``, without its cost)."""
        return Entry(
            name=self.name,
            index=self.index,
            line=self.line,
            request=self.request,
            token=token,
            csr=csr,
            outputs=self.outputs,
            problems=self.problems,
            key=self.key,
            renew_before=self.renew_before,
            explicit_token=self.explicit_token,
            revoke_replaced=self.revoke_replaced,
        )

    def api_request(self) -> dict[str, Any]:
        """The IssueCertificate input as the API takes it: Csr as bytes, the token set."""
        if self.request is None or self.token is None:
            raise ValueError(f"entry {self.name} is not valid")
        request = dict(self.request)
        request["Csr"] = str(request["Csr"]).encode("ascii")
        request["IdempotencyToken"] = self.token
        return request


DEFAULT_CRL_URL = "http://localhost/crl"  # where a local CA's CRLs are said to be when no URL is given
DEFAULT_CRL_DAYS = 7  # AWS's ExpirationInDays default


@dataclass(frozen=True)
class CrlConfig:
    """A local CA's CRL configuration (AWS's CrlConfiguration): every certificate it issues
    names ``<url>/<CA id>.crl`` as its CRL distribution point; a CRL's nextUpdate is
    ``days`` after its thisUpdate."""

    url: str = DEFAULT_CRL_URL
    days: int = DEFAULT_CRL_DAYS


@dataclass(frozen=True)
class NewAuthority:
    """A local CA to create (``pca-batch ca create``): its ARN is made from the region and
    account given, else the parent's, else the defaults."""

    common_name: str
    key_algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM
    validity_days: int = 3650
    parent_arn: str | None = None
    usage_mode: UsageMode = GENERAL_PURPOSE
    region: str | None = None
    account: str | None = None
    crl: CrlConfig | None = None  # None: no CRLs


@dataclass(frozen=True)
class AuthoritySpec:
    """A local CA that a manifest declares under ``backend.authorities``."""

    arn: str
    common_name: str
    key_algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM
    parent: str | None = None
    validity_days: int = 3650
    usage_mode: UsageMode = GENERAL_PURPOSE
    line: int = 0
    crl: CrlConfig | None = None  # None: no CRLs


@dataclass(frozen=True)
class BackendConfig:
    type: BackendType = "local"
    store: Path | None = None  # local: the store folder (absolute)
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    authorities: tuple[AuthoritySpec, ...] = ()


@dataclass(frozen=True)
class RunSettings:
    """Runner knobs a manifest may set (`settings:`); the command line wins."""

    concurrency: int | None = None
    max_rate: float | None = None
    max_attempts: int | None = None
    max_issue: int | None = None  # apply refuses when it would issue more certificates than this
    throttle_timeout: float | None = None  # seconds a call may go on being throttled before its entry fails


@dataclass(frozen=True)
class Shard:
    index: int  # K, from 1
    count: int  # N


@dataclass(frozen=True)
class StateConfig:
    """Where the state (the journal's records) is: ``file`` (``path``) or ``s3`` (``bucket``, ``key``, ...)."""

    type: Literal["file", "s3"] = "file"
    path: Path | None = None  # file: None for .pca-batch/journal.jsonl beside the manifest
    bucket: str | None = None
    key: str | None = None
    region: str | None = None
    endpoint_url: str | None = None  # s3: None follows AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile


@dataclass(frozen=True)
class Manifest:
    path: Path  # absolute path of the manifest file
    display: str  # the path as the user gave it, for messages
    root: Path  # the folder that output paths must stay in
    version: int
    backend: BackendConfig
    settings: RunSettings
    entries: tuple[Entry, ...]
    problems: tuple[Problem, ...] = ()  # manifest-level problems (not tied to one entry)
    shard: Shard | None = None  # set by select_shard: ``entries`` are that shard's
    others: tuple[Entry, ...] = ()  # with a shard: the other shards' entries (still the manifest's)
    unset_env: tuple[str, ...] = ()  # read without requiring the environment: the unset ${VAR}s (unchecked)
    state: StateConfig | None = StateConfig()  # the manifest's ``state:`` block (None: refused); --state overrides it

    def all_problems(self) -> list[Problem]:
        out = list(self.problems)
        for e in self.entries:
            out.extend(e.problems)
        return out


@dataclass(frozen=True)
class Retired:
    """A certificate a renewal replaced, revoked afterwards (``revoke_replaced``)."""

    certificate_arn: str
    serial: str  # lowercase hex
    reason: str  # the RevocationReason


@dataclass(frozen=True)
class Result:
    """What happened to one entry: the unit of every report."""

    name: str
    status: Status
    certificate_authority_arn: str | None = None
    certificate_arn: str | None = None
    serial: str | None = None  # lowercase hex, no colons
    not_before: str | None = None  # RFC 3339
    not_after: str | None = None  # RFC 3339
    idempotency_token: str | None = None
    attempts: int = 0
    duration_s: float = 0.0
    outputs: Mapping[str, str | None] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None
    line: int = 0  # line of the entry in the manifest (for annotations)
    action: PlanAction | None = None
    reason: str | None = None  # why that action (renewal reason)
    revocation_reason: str | None = None  # REVOKED: the RevocationReason
    revoked_replaced: tuple[Retired, ...] = ()  # revoke_replaced: the replaced certificates revoked


@dataclass(frozen=True)
class ApplyOptions:
    """Everything `pca-batch apply` was asked for, as plain values (never an argparse Namespace)."""

    plan: bool = False
    report: Path | None = None
    junit: Path | None = None
    journal: Path | None = None
    store: Path | None = None
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    concurrency: int | None = None  # None: the manifest's, else the default
    max_rate: float | None = None  # a ceiling; None: the manifest's, else 200 (aws) / unlimited (local); 0 = none
    max_attempts: int | None = None  # None: the manifest's, else 8
    throttle_timeout: float | None = None  # seconds a call may go on being throttled; None: 15 minutes
    fail_fast: bool = False
    allow_outside_paths: bool = False
    offline: bool = False
    force: bool = False
    shard: Shard | None = None
    detailed_exitcode: bool = False
    prune: bool = False  # revoke (and remove the files of) what the manifest no longer lists
    max_issue: int | None = None  # None: the manifest's settings.max_issue, else no limit
    adopt: bool = False  # check certificate files the state has no record of, instead of renewing them
    state: str | None = None  # --state URL (file://PATH or s3://BUCKET/KEY): over the manifest's state:
    lock_timeout: float | None = None  # --lock-timeout: seconds to wait for a held lock (None: fail at once)
