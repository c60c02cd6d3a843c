"""X.509 pieces of the local CA: keys, signing algorithms, CSRs, serials, signing."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes, PrivateKeyTypes

from pca_batch.backends.base import KEY_ALGORITHMS
from pca_batch.errors import BackendError
from pca_batch.pki.csr import was_verified

_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "EC_prime256v1": ec.SECP256R1,
    "EC_secp384r1": ec.SECP384R1,
    "EC_secp521r1": ec.SECP521R1,
}
_CURVE_NAMES = {"secp256r1": "EC_prime256v1", "secp384r1": "EC_secp384r1", "secp521r1": "EC_secp521r1"}
_RSA_SIZES = {2048: "RSA_2048", 3072: "RSA_3072", 4096: "RSA_4096"}
CaKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey  # the key families the local CA creates
SERIAL_BITS = 127  # 32 hex digits with the top bit clear: a positive 16-byte INTEGER


@dataclass(frozen=True)
class SigningAlgorithm:
    name: str
    family: str  # RSA | EC
    hash: hashes.HashAlgorithm
    pss: bool = False

    def padding(self) -> padding.AsymmetricPadding | None:
        if self.family != "RSA":
            return None
        if self.pss:
            return padding.PSS(mgf=padding.MGF1(self.hash), salt_length=padding.PSS.DIGEST_LENGTH)
        return padding.PKCS1v15()


def _algorithms() -> dict[str, SigningAlgorithm]:
    out: dict[str, SigningAlgorithm] = {}
    for bits, h in ((256, hashes.SHA256()), (384, hashes.SHA384()), (512, hashes.SHA512())):
        for name, family, pss in (
            (f"SHA{bits}WITHECDSA", "EC", False),
            (f"SHA{bits}WITHRSA", "RSA", False),
            (f"SHA{bits}WITHRSA_PSS", "RSA", True),
        ):
            out[name] = SigningAlgorithm(name, family, h, pss)
    return out


SIGNING_ALGORITHMS = _algorithms()
# Algorithms AWS knows for CA key families the local CA does not create.
OTHER_SIGNING_ALGORITHMS = {
    "SM3WITHSM2": "SM2",
    "ML_DSA_44": "ML-DSA",
    "ML_DSA_65": "ML-DSA",
    "ML_DSA_87": "ML-DSA",
}


def key_family(key: PrivateKeyTypes | CertificatePublicKeyTypes) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "EC"
    return type(key).__name__


def key_algorithm_of(key: PrivateKeyTypes | CertificatePublicKeyTypes) -> str | None:
    """The AWS KeyAlgorithm name of a key, or None when AWS has none for it."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return _RSA_SIZES.get(key.key_size)
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return _CURVE_NAMES.get(key.curve.name)
    return None


def generate_key(key_algorithm: str) -> CaKey:
    if key_algorithm in _CURVES:
        return ec.generate_private_key(_CURVES[key_algorithm]())
    if key_algorithm.startswith("RSA_") and key_algorithm in KEY_ALGORITHMS:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_algorithm[4:]))
    raise BackendError(
        "InvalidArgsException", f"KeyAlgorithm {key_algorithm!r} is not one of {', '.join(KEY_ALGORITHMS)}"
    )


def default_signing_algorithm(key_algorithm: str) -> str:
    """The algorithm AWS pairs with a CA key when creating a CA."""
    return {
        "EC_prime256v1": "SHA256WITHECDSA",
        "EC_secp384r1": "SHA384WITHECDSA",
        "EC_secp521r1": "SHA512WITHECDSA",
    }.get(key_algorithm, "SHA256WITHRSA")


def signing_algorithm(name: object, family: str) -> SigningAlgorithm:
    """The SigningAlgorithm of a request, checked against the CA key's family (RSA or EC)."""
    algorithm = SIGNING_ALGORITHMS.get(name) if isinstance(name, str) else None
    if algorithm is None:
        if isinstance(name, str) and name in OTHER_SIGNING_ALGORITHMS:
            raise BackendError(
                "InvalidArgsException",
                f"SigningAlgorithm {name} needs an {OTHER_SIGNING_ALGORITHMS[name]} CA; "
                f"this CA's key is {family}",
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
        valid = was_verified(bytes(data)) or csr.is_signature_valid
        public_key = csr.public_key()
        extensions = csr.extensions
    except (ValueError, UnsupportedAlgorithm, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise BackendError("MalformedCSRException", "the CSR cannot be parsed") from None
    if not valid:
        raise BackendError("MalformedCSRException", "the CSR's signature does not verify")
    if isinstance(public_key, rsa.RSAPublicKey):
        acceptable = public_key.key_size >= 2048
    else:
        acceptable = key_algorithm_of(public_key) is not None
    if not acceptable:
        raise BackendError(
            "MalformedCSRException",
            f"the CSR's {key_family(public_key)} key is not one AWS Private CA accepts "
            "(RSA of 2048 bits or more, EC P-256, P-384 or P-521)",
        )
    del extensions  # parsed above only so that a malformed extension is refused here
    return csr, public_key


def new_serial() -> int:
    serial = 0
    while serial == 0:
        serial = secrets.randbits(SERIAL_BITS)
    return serial


def serial_hex(serial: int) -> str:
    return format(serial, "032x")


def sign_certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    extensions: list[x509.Extension[x509.ExtensionType]],
    signing_key: CaKey,
    algorithm: SigningAlgorithm,
) -> x509.Certificate:
    builder = x509.CertificateBuilder(
        issuer_name=issuer,
        subject_name=subject,
        public_key=public_key,
        serial_number=serial,
        not_valid_before=not_before,
        not_valid_after=not_after,
        extensions=extensions,
    )
    rsa_padding = algorithm.padding()
    if rsa_padding is not None:
        return builder.sign(signing_key, algorithm.hash, rsa_padding=rsa_padding)  # type: ignore[arg-type]
    return builder.sign(signing_key, algorithm.hash)  # type: ignore[arg-type]
