"""X.509 pieces of the local CA: keys, signing algorithms, CSRs, serials, signing."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from pca_batch.errors import BackendError
from pca_batch.pki import algorithms
from pca_batch.pki.algorithms import EC, KEY_ALGORITHMS, RSA, KeyFamily, family_of, key_algorithm_of, signing_family
from pca_batch.pki.csr import VERIFIED

CaKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey  # the key families the local CA creates
SERIAL_BITS = 127  # 32 hex digits with the top bit clear: a positive 16-byte INTEGER


@dataclass(frozen=True)
class SigningAlgorithm:
    name: str
    family: KeyFamily  # RSA | EC
    hash: hashes.HashAlgorithm
    pss: bool = False

    def padding(self) -> padding.AsymmetricPadding | None:
        if self.family != RSA:
            return None
        if self.pss:
            return padding.PSS(mgf=padding.MGF1(self.hash), salt_length=padding.PSS.DIGEST_LENGTH)
        return padding.PKCS1v15()


_HASHES = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}


def _algorithms() -> dict[str, SigningAlgorithm]:
    """The signing algorithms of the key families the local CA creates (RSA, EC)."""
    out: dict[str, SigningAlgorithm] = {}
    for name in algorithms.SIGNING_ALGORITHMS:
        family = signing_family(name)
        if family in (RSA, EC):
            assert family is not None
            out[name] = SigningAlgorithm(name, family, _HASHES[name[:6]], pss=name.endswith("_PSS"))
    return out


SIGNING_ALGORITHMS = _algorithms()


def generate_key(key_algorithm: str) -> CaKey:
    try:
        return algorithms.generate(key_algorithm)
    except ValueError:
        raise BackendError(
            "InvalidArgsException", f"KeyAlgorithm {key_algorithm!r} is not one of {', '.join(KEY_ALGORITHMS)}"
        ) from None


def signing_algorithm(name: object, family: str) -> SigningAlgorithm:
    """The SigningAlgorithm of a request, checked against the CA key's family (RSA or EC)."""
    algorithm = SIGNING_ALGORITHMS.get(name) if isinstance(name, str) else None
    if algorithm is None:
        other = signing_family(name) if isinstance(name, str) else None
        if other is not None:  # a name AWS knows, for a key family the local CA does not create
            raise BackendError(
                "InvalidArgsException",
                f"SigningAlgorithm {name} needs an {other} CA; this CA's key is {family}",
            )
        raise BackendError(
            "InvalidArgsException", f"SigningAlgorithm {name!r} is not a known signing algorithm"
        )
    if algorithm.family != family:
        raise BackendError(
            "InvalidArgsException",
            f"SigningAlgorithm {algorithm.name} does not match the CA's {family} key",
        )
    return algorithm


def parse_csr(data: object) -> tuple[x509.CertificateSigningRequest, CertificatePublicKeyTypes]:
    """Load a PEM CSR and check its signature and key; MalformedCSRException otherwise.

    Returns the CSR and its public key (read once: it costs a point check).
    """
    if isinstance(data, str):
        data = data.encode("ascii", "replace")
    if not isinstance(data, bytes | bytearray) or not data:
        raise BackendError("MalformedCSRException", "Csr must be a PEM certificate signing request")
    try:
        csr = x509.load_pem_x509_csr(bytes(data))
        # verified already while the manifest was validated, in this very process?
        valid = VERIFIED.holds(bytes(data)) or csr.is_signature_valid
        public_key = csr.public_key()
        extensions = csr.extensions
    except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise BackendError("MalformedCSRException", "the CSR cannot be parsed") from None
    if not valid:
        raise BackendError("MalformedCSRException", "the CSR's signature does not verify")
    if isinstance(public_key, rsa.RSAPublicKey):
        acceptable = public_key.key_size >= 2048
    else:
        acceptable = isinstance(public_key, ec.EllipticCurvePublicKey) and key_algorithm_of(public_key) is not None
    if not acceptable:
        raise BackendError(
            "MalformedCSRException",
            f"the CSR's {family_of(public_key)} key is not one AWS Private CA accepts "
            "(RSA of 2048 bits or more, EC P-256, P-384 or P-521)",
        )
    del extensions  # parsed above only so that a malformed extension is refused here
    return csr, public_key


def new_serial() -> int:
    serial = 0
    while serial == 0:
        serial = secrets.randbits(SERIAL_BITS)
    return serial


@dataclass(frozen=True)
class ToBeSigned:
    """A certificate but its serial (RFC 5280's TBSCertificate), and how it is signed.

    The serial is left out because the store decides it: :meth:`sign` is called again
    with a new serial when one is already taken."""

    subject: x509.Name
    issuer: x509.Name
    public_key: CertificatePublicKeyTypes
    not_before: datetime
    not_after: datetime
    extensions: list[x509.Extension[x509.ExtensionType]]
    signing_key: CaKey
    algorithm: SigningAlgorithm

    def sign(self, serial: int) -> x509.Certificate:
        builder = x509.CertificateBuilder(
            issuer_name=self.issuer,
            subject_name=self.subject,
            public_key=self.public_key,
            serial_number=serial,
            not_valid_before=self.not_before,
            not_valid_after=self.not_after,
            extensions=self.extensions,
        )
        rsa_padding = self.algorithm.padding()
        if rsa_padding is not None:
            return builder.sign(self.signing_key, self.algorithm.hash, rsa_padding=rsa_padding)  # type: ignore[arg-type]
        return builder.sign(self.signing_key, self.algorithm.hash)  # type: ignore[arg-type]
