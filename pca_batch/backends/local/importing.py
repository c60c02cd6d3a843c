"""ImportCertificateAuthorityCertificate's checks of a CA certificate and its chain, as AWS
Private CA documents them (API reference, ImportCertificateAuthorityCertificate):

- the certificate and the chain are PEM; a certificate at most 32 KB, a chain at most 2 MB;
- the certificate's public key is the CA's own (CertificateMismatchException otherwise);
- only a self-signed certificate can be imported for a root CA, and a self-signed one never
  for a subordinate CA;
- a subordinate's chain must not hold the certificate imported; it runs from the certificate's
  issuer up to the root, which comes last, each certificate signed by the next;
- basic constraints must be present, say CA and be critical; of the other extensions only
  those on AWS's list may be critical (AIA, CRL distribution points, freshest CRL and policy
  constraints never).

Malformed PEM is MalformedCertificateException; a chain that breaks a rule, InvalidRequestException.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtensionOID

from pca_batch.errors import BackendError

CERTIFICATE_MAX_BYTES = 32 * 1024
CHAIN_MAX_BYTES = 2 * 1024 * 1024

# Extensions AWS accepts marked critical in an imported CA certificate or chain.
CRITICAL_ALLOWED = frozenset(
    {
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.INHIBIT_ANY_POLICY,
        ExtensionOID.ISSUER_ALTERNATIVE_NAME,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.NAME_CONSTRAINTS,
        ExtensionOID.POLICY_MAPPINGS,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_DIRECTORY_ATTRIBUTES,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_INFORMATION_ACCESS,
    }
)


@dataclass(frozen=True)
class Imported:
    """A CA certificate that passed the checks, and its chain (issuer first, root last)."""

    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(Encoding.PEM).decode("ascii")

    @property
    def chain_pem(self) -> str:
        return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in self.chain)


def _refused(message: str) -> BackendError:
    return BackendError("InvalidRequestException", message)


def _load(data: bytes, what: str, limit: int) -> list[x509.Certificate]:
    if len(data) > limit:
        raise BackendError("MalformedCertificateException", f"the {what} is larger than {limit} bytes")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except (ValueError, UnsupportedAlgorithm):
        raise BackendError("MalformedCertificateException", f"the {what} is not PEM-encoded X.509") from None
    return certificates


def _public_der(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined, no-any-return]


def signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer`` names and signs ``certificate``."""
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _check_extensions(certificate: x509.Certificate, what: str) -> int | None:
    """The certificate's path length constraint, once its extensions pass AWS's rules."""
    try:
        extensions = certificate.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise BackendError("MalformedCertificateException", f"the {what} has a malformed extension") from None
    for extension in extensions:
        if extension.critical and extension.oid not in CRITICAL_ALLOWED:
            raise _refused(f"the {what} marks extension {extension.oid.dotted_string} critical, which AWS refuses")
    try:
        bc = extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        raise _refused(f"the {what} has no basic constraints extension: it is not a CA certificate") from None
    if not bc.critical or not bc.value.ca:
        raise _refused(f"the {what}'s basic constraints must be critical and say CA:TRUE")
    return bc.value.path_length


def _check_chain(certificate: x509.Certificate, chain: Sequence[x509.Certificate]) -> None:
    if not chain:
        raise _refused("a subordinate CA's certificate is imported with its chain (CertificateChain)")
    if any(c == certificate for c in chain):
        raise _refused("the certificate chain must not include the CA certificate being imported")
    below = certificate
    for depth, issuer in enumerate(chain):
        path_length = _check_extensions(issuer, f"chain's certificate {depth + 1}")
        if not signed_by(below, issuer):
            raise _refused(
                f"the chain's certificate {depth + 1} ({issuer.subject.rfc4514_string()}) did not sign "
                f"{below.subject.rfc4514_string()}: the chain runs from the issuer to the root, root last"
            )
        if path_length is not None and depth + 1 > path_length:  # the CAs below it: the imported one and depth more
            raise _refused(
                f"the chain's certificate {depth + 1} allows {path_length} CA certificates below it; it has {depth + 1}"
            )
        below = issuer
    if not signed_by(chain[-1], chain[-1]):
        raise _refused("the last certificate of the chain must be the self-signed root")


def check_import(
    ca_type: str, public_key: object, certificate: bytes, chain: bytes | None, now: datetime
) -> Imported:
    """The checked certificate and chain for a CA of ``ca_type`` (ROOT or SUBORDINATE) whose key
    has ``public_key``; raises the BackendError AWS answers when they do not pass."""
    found = _load(certificate, "certificate", CERTIFICATE_MAX_BYTES)
    if len(found) != 1:
        raise BackendError("MalformedCertificateException", f"Certificate must hold one certificate, not {len(found)}")
    cert = found[0]
    links = _load(chain, "certificate chain", CHAIN_MAX_BYTES) if chain else []
    if _public_der(cert.public_key()) != _public_der(public_key):
        raise BackendError(
            "CertificateMismatchException", "the certificate's public key is not the key of this CA (its CSR's)"
        )
    _check_extensions(cert, "certificate")
    if cert.not_valid_after_utc <= now:
        raise _refused(f"the certificate expired on {cert.not_valid_after_utc.isoformat()}")
    self_signed = signed_by(cert, cert)
    if ca_type == "ROOT":
        if not self_signed:
            raise _refused("only a self-signed certificate can be imported for a root CA")
        if links:
            raise _refused("a root CA's self-signed certificate is imported without a chain")
    else:
        if self_signed:
            raise _refused("a self-signed certificate cannot be imported for a subordinate CA")
        _check_chain(cert, links)
    return Imported(cert, tuple(links))
