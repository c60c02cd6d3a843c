"""AWS Private CA's names for key and signing algorithms, and cryptography's for the same.

The one home of these tables: the key algorithms (``KeyAlgorithm`` in the API),
the curves and RSA sizes behind them, the signing algorithms and the key family
each belongs to. The JSON Schemas list the same names (``schemas/``); a test
holds the two in step.

cryptography is imported only by the functions that take or make keys: the
command line's start-up reads these names without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

RsaAlgorithm = Literal["RSA_2048", "RSA_3072", "RSA_4096"]
EcAlgorithm = Literal["EC_prime256v1", "EC_secp384r1", "EC_secp521r1"]
# What pca-batch makes keys of (an entry's key, a local CA's key): RSA and EC.
KeyAlgorithm = Literal[RsaAlgorithm, EcAlgorithm]
# Every KeyAlgorithm AWS Private CA names (a CSR's or a CA's key may be of any).
AwsKeyAlgorithm = Literal[KeyAlgorithm, "ML_DSA_44", "ML_DSA_65", "ML_DSA_87", "SM2"]
KEY_ALGORITHMS: tuple[KeyAlgorithm, ...] = get_args(KeyAlgorithm)
AWS_KEY_ALGORITHMS: tuple[AwsKeyAlgorithm, ...] = get_args(AwsKeyAlgorithm)
DEFAULT_KEY_ALGORITHM: KeyAlgorithm = "EC_prime256v1"

RSA_SIZES: dict[int, RsaAlgorithm] = {2048: "RSA_2048", 3072: "RSA_3072", 4096: "RSA_4096"}
# cryptography's curve name (``ec.SECP256R1.name``) -> AWS's, and back
CURVE_NAMES: dict[str, EcAlgorithm] = {
    "secp256r1": "EC_prime256v1",
    "secp384r1": "EC_secp384r1",
    "secp521r1": "EC_secp521r1",
}
CURVES: dict[str, str] = {aws: name for name, aws in CURVE_NAMES.items()}
# a part of cryptography's ML-DSA key class names -> AWS's name
_ML_DSA: dict[str, AwsKeyAlgorithm] = {"MLDSA44": "ML_DSA_44", "MLDSA65": "ML_DSA_65", "MLDSA87": "ML_DSA_87"}

SigningAlgorithmName = Literal[
    "SHA256WITHECDSA",
    "SHA384WITHECDSA",
    "SHA512WITHECDSA",
    "SHA256WITHRSA",
    "SHA384WITHRSA",
    "SHA512WITHRSA",
    "SHA256WITHRSA_PSS",
    "SHA384WITHRSA_PSS",
    "SHA512WITHRSA_PSS",
    "SM3WITHSM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
]
SIGNING_ALGORITHMS: tuple[SigningAlgorithmName, ...] = get_args(SigningAlgorithmName)
# The algorithm AWS pairs with a CA's key when it creates the CA (RSA keys: SHA256WITHRSA).
_DEFAULT_SIGNING: dict[str, SigningAlgorithmName] = {
    "EC_prime256v1": "SHA256WITHECDSA",
    "EC_secp384r1": "SHA384WITHECDSA",
    "EC_secp521r1": "SHA512WITHECDSA",
}

# A key family: the keys a signing algorithm works with. An ML-DSA key signs with its
# own parameter set only, so each is a family of its own.
KeyFamily = Literal["RSA", "EC", "SM2", "ML-DSA-44", "ML-DSA-65", "ML-DSA-87"]
RSA: KeyFamily = "RSA"
EC: KeyFamily = "EC"


def key_family(key_algorithm: str) -> KeyFamily | None:
    """The family of an AWS key algorithm (``RSA_2048`` -> ``RSA``); None when unknown."""
    if key_algorithm.startswith("RSA_"):
        return "RSA"
    if key_algorithm.startswith("EC_"):
        return "EC"
    if key_algorithm == "SM2":
        return "SM2"
    return _ml_dsa(key_algorithm)


def signing_family(signing_algorithm: str) -> KeyFamily | None:
    """The key family a SigningAlgorithm needs (``SHA256WITHRSA_PSS`` -> ``RSA``); None when unknown."""
    if "WITHRSA" in signing_algorithm:
        return "RSA"
    if signing_algorithm.endswith("WITHECDSA"):
        return "EC"
    if signing_algorithm == "SM3WITHSM2":
        return "SM2"
    return _ml_dsa(signing_algorithm)


def _ml_dsa(name: str) -> KeyFamily | None:
    if name == "ML_DSA_44":
        return "ML-DSA-44"
    if name == "ML_DSA_65":
        return "ML-DSA-65"
    if name == "ML_DSA_87":
        return "ML-DSA-87"
    return None


def default_signing_algorithm(key_algorithm: str) -> SigningAlgorithmName:
    """The algorithm AWS pairs with a CA key when creating a CA."""
    return _DEFAULT_SIGNING.get(key_algorithm, "SHA256WITHRSA")


def key_algorithm_of(key: Any) -> AwsKeyAlgorithm | None:
    """The AWS KeyAlgorithm name of a public or private key, or None when AWS has none for it."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return RSA_SIZES.get(key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return CURVE_NAMES.get(key.curve.name)
    kind = type(key).__name__  # cryptography's ML-DSA keys, where it has them
    return next((name for part, name in _ML_DSA.items() if part in kind), None)


def family_of(key: Any) -> str:
    """The family of a public or private key (``RSA``, ``EC``), or its type's name when neither."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return RSA
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return EC
    return type(key).__name__


def generate(algorithm: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """A new private key of one of KEY_ALGORITHMS; ValueError for any other name."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    curve = CURVES.get(algorithm)
    if curve is not None:
        return ec.generate_private_key(getattr(ec, curve.upper())())  # secp256r1 -> ec.SECP256R1
    if algorithm in KEY_ALGORITHMS:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[4:]))
    raise ValueError(f"unknown key algorithm {algorithm}")
