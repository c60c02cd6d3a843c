"""AWS Private CA's (acm-pca's) own facts: its limits, its ARNs, its usage modes.

The one Python home of the values the service defines and more than one part of
pca-batch needs. The request schema (``schemas/issue-certificate.schema.json``)
encodes some of them too; a test holds the two in step. The names of key and
signing algorithms are in :mod:`pca_batch.pki.algorithms`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal, get_args

CSR_MAX_BYTES = 32_768  # IssueCertificate's bound on Csr
TOKEN_MAX = 36  # IssueCertificate's bound on IdempotencyToken
IDEMPOTENCY_WINDOW = timedelta(minutes=5)  # how long AWS answers a token with its first certificate

UsageMode = Literal["GENERAL_PURPOSE", "SHORT_LIVED_CERTIFICATE"]
USAGE_MODES: tuple[UsageMode, ...] = get_args(UsageMode)
GENERAL_PURPOSE: UsageMode = "GENERAL_PURPOSE"
SHORT_LIVED: UsageMode = "SHORT_LIVED_CERTIFICATE"
SHORT_LIVED_MAX = timedelta(days=7)  # the longest validity a SHORT_LIVED_CERTIFICATE CA issues

# arn:PARTITION:acm-pca:REGION:ACCOUNT:certificate-authority/ID (groups: region, account)
CA_ARN = re.compile(r"^arn:[\w+=/,.@-]+:acm-pca:([\w+=/,.@-]*):([0-9]*):certificate-authority/[\w+=,.@-]+$")
# a certificate's ARN: CA_ARN/certificate/SERIAL (lowercase hex) (groups: the CA ARN, the serial)
CERTIFICATE_ARN = re.compile(
    r"^(arn:[\w+=/,.@-]+:acm-pca:[\w+=/,.@-]*:[0-9]*:certificate-authority/[\w+=,.@-]+)/certificate/([0-9a-fA-F]+)$"
)
# the head of any acm-pca ARN: a CA's, or a certificate's (CA_ARN/certificate/HEX)
_ARN_HEAD = re.compile(r"^arn:[^:]+:acm-pca:(?P<region>[^:]*):(?P<account>[0-9]*):")


def region_of(arn: str | None) -> str | None:
    """The region an acm-pca ARN names, or None when it names none (or is no such ARN)."""
    m = _ARN_HEAD.match(arn or "")
    return (m.group("region") or None) if m else None


def account_of(arn: str) -> str:
    """The account of a CA ARN; "" when it is none."""
    m = CA_ARN.match(arn)
    return m.group(2) if m else ""


def serial_hex(serial: int) -> str:
    """A serial as a certificate ARN ends in it: lowercase hex, 32 digits at least."""
    return format(serial, "032x")


def certificate_arn(ca_arn: str, serial: str) -> str:
    """The ARN of the certificate of serial ``serial`` (as :func:`serial_hex` writes it) issued by a CA."""
    return f"{ca_arn}/certificate/{serial}"


def serial_of_arn(certificate_arn: str) -> int:
    """The serial a certificate ARN ends in; ValueError when it ends in no hex number."""
    return int(certificate_arn.rsplit("/certificate/", 1)[-1], 16)


# RevokeCertificate's RevocationReason, in the model's order.
RevocationReason = Literal[
    "UNSPECIFIED",
    "KEY_COMPROMISE",
    "CERTIFICATE_AUTHORITY_COMPROMISE",
    "AFFILIATION_CHANGED",
    "SUPERSEDED",
    "CESSATION_OF_OPERATION",
    "PRIVILEGE_WITHDRAWN",
    "A_A_COMPROMISE",
]
REVOCATION_REASONS: tuple[RevocationReason, ...] = get_args(RevocationReason)
UNSPECIFIED: RevocationReason = "UNSPECIFIED"
CESSATION_OF_OPERATION: RevocationReason = "CESSATION_OF_OPERATION"
SERIAL_MAX_CHARS = 128  # RevokeCertificate's bound on CertificateSerial
_SERIAL_TEXT = re.compile(r"^(?:[0-9A-Fa-f]+|[0-9A-Fa-f]{1,2}(?::[0-9A-Fa-f]{1,2})*)$")


def colon_serial(serial: str) -> str:
    """A serial as the AWS CLI sends it to RevokeCertificate and the audit report writes it:
    lowercase hex bytes joined by colons (``ab:cd:...``), from hex with or without colons."""
    digits = serial.replace(":", "").lower()
    if len(digits) % 2:
        digits = "0" + digits
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def parse_serial(text: object) -> int | None:
    """The number a CertificateSerial names (hex, colons allowed), or None when it names none."""
    if not isinstance(text, str) or len(text) > SERIAL_MAX_CHARS or not _SERIAL_TEXT.match(text):
        return None
    return int(text.replace(":", ""), 16)
