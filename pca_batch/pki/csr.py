"""Reading and checking certificate signing requests, and bounded file reads.

Nothing here ever puts a file's content into a message: a manifest from an
untrusted branch must not be able to print a secret file by naming it as a CSR.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pca_batch.acmpca import CSR_MAX_BYTES
from pca_batch.model import CsrInfo
from pca_batch.pki.algorithms import AwsKeyAlgorithm, key_algorithm_of

JSON_MAX_BYTES = 1_048_576

_PEM_MARKERS = (b"-----BEGIN CERTIFICATE REQUEST-----", b"-----BEGIN NEW CERTIFICATE REQUEST-----")


class VerifiedCsrs:
    """CSR texts whose signature this process has verified already.

    The loader notes each CSR it checked; the embedded CA (``backends/local/x509.py``)
    then skips verifying the same text again. The entries hold these strings anyway:
    the set costs its table only.
    """

    def __init__(self) -> None:
        self._pems: set[str] = set()

    def note(self, pem: str) -> None:
        self._pems.add(pem)

    def holds(self, pem: bytes | str) -> bool:
        return (pem if isinstance(pem, str) else pem.decode("ascii", "replace")) in self._pems


# The one instance of this process: filled by the manifest loader, read by the local CA.
VERIFIED = VerifiedCsrs()


class InputError(ValueError):
    """A file or value that cannot be used; the message is safe to show."""


def read_limited(path: str | Path, limit: int, what: str) -> bytes:
    """Read a regular file of at most ``limit`` bytes without ever blocking.

    FIFOs, devices (``/dev/zero``), sockets and folders are refused before any
    byte is read; the read itself stops one byte past the limit.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a folder, not a file") from None
    except PermissionError:
        raise InputError(f"{what} {path} cannot be read (permission denied)") from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{what} {path} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{what} {path} is not a regular file (a FIFO, device or socket)")
        if st.st_size > limit:
            raise InputError(f"{what} {path} is {st.st_size} bytes; at most {limit} are allowed")
        # one read for the usual case; more only if the file grew since fstat
        want = min(st.st_size, limit) + 1
        chunks = [os.read(fd, want)]
        remaining = limit + 1 - len(chunks[0])
        while len(chunks[-1]) == want and remaining > 0:
            want = min(remaining, 65536)
            chunks.append(os.read(fd, want))
            remaining -= len(chunks[-1])
        data = b"".join(chunks)
        if len(data) > limit:
            raise InputError(f"{what} {path} is larger than {limit} bytes")
        return data
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read: {exc.strerror}") from None
    finally:
        os.close(fd)


def resolve(raw: str, base: str | Path) -> str:
    """A path from a manifest: ``~`` expanded, relative to the manifest's folder, normalised."""
    if raw.startswith("~"):
        raw = os.path.expanduser(raw)
    return os.path.normpath(os.path.join(base, raw))


Source = str | bytes  # a CSR's absolute path, or its bytes


def csr_source(value: str, base: str | Path) -> Source:
    """What a ``Csr`` value names: the path of ``file://PATH`` or ``fileb://PATH``, or inline PEM's bytes."""
    for prefix in ("fileb://", "file://"):
        if value.startswith(prefix):
            raw = value[len(prefix) :]
            if not raw:
                raise InputError(f"{prefix} needs a path")
            return resolve(raw, base)
    data = value.encode("utf-8")
    if not data.lstrip().startswith(b"-----BEGIN"):
        raise InputError("Csr must be PEM text, file://PATH or fileb://PATH")
    if len(data) > CSR_MAX_BYTES:
        raise InputError(f"the inline CSR is {len(data)} bytes; at most {CSR_MAX_BYTES} are allowed")
    return data


def parse_csr(data: bytes) -> x509.CertificateSigningRequest:
    """PEM or DER; InputError (never quoting the bytes) when it does not parse."""
    pem = any(marker in data for marker in _PEM_MARKERS)
    if not pem and data.lstrip().startswith(b"-----BEGIN"):
        raise InputError("the PEM block is not a CERTIFICATE REQUEST")
    try:
        return x509.load_pem_x509_csr(data) if pem else x509.load_der_x509_csr(data)
    except (ValueError, UnsupportedAlgorithm):
        raise InputError("the CSR does not parse as a PKCS#10 certificate signing request (PEM or DER)") from None


def public_key(csr: x509.CertificateSigningRequest) -> Any:
    try:
        return csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise InputError("the CSR's public key type is not supported") from None


def key_algorithm(key: Any) -> AwsKeyAlgorithm:
    """The PCA name of a CSR key's type; InputError for a key PCA does not accept."""
    name = key_algorithm_of(key)
    if name is not None:
        return name
    if isinstance(key, rsa.RSAPublicKey):
        raise InputError(f"the CSR has an RSA {key.key_size}-bit key; AWS Private CA takes 2048, 3072 or 4096")
    if isinstance(key, ec.EllipticCurvePublicKey):
        raise InputError(f"the CSR has an EC key on {key.curve.name}; AWS Private CA takes P-256, P-384 or P-521")
    raise InputError(f"the CSR's key type ({type(key).__name__}) is not one AWS Private CA accepts")


def _general_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"dirName:{name.value.rfc4514_string()}"
    if isinstance(name, x509.RegisteredID):
        return f"RID:{name.value.dotted_string}"
    return f"otherName:{getattr(name, 'type_id', '')}"


def sans(csr: x509.CertificateSigningRequest) -> tuple[str, ...]:
    try:
        ext = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    except ValueError:
        raise InputError("the CSR's extensions do not parse") from None
    return tuple(_general_name(n) for n in ext.value)


def plain_pem(data: bytes) -> str | None:
    """The text to send when ``data`` is one PEM CSR block and nothing else, as the AWS CLI sends a file."""
    text = data.strip()
    if text.isascii() and text.count(b"-----BEGIN") == 1 and any(text.startswith(m) for m in _PEM_MARKERS):
        return text.decode("ascii") + "\n"
    return None


class CheckedCsr:
    """A CSR that passed :func:`inspect_csr`: its PEM text and key algorithm.

    The rest of what it holds (subject, SANs, key digest) is read from the PEM on
    first use, by the plan and the renewal checks: validation needs none of it, and
    reading it costs some 15 us a CSR that a 10,000-entry manifest would pay for nothing.
    Equal, and hashed, by what the CSR holds.
    """

    __slots__ = ("pem", "key_algorithm", "_info")

    def __init__(self, pem: str, key_algorithm: str) -> None:
        self.pem = pem
        self.key_algorithm = key_algorithm
        self._info: CsrInfo | None = None

    @property
    def info(self) -> CsrInfo:
        if self._info is None:
            self._info = describe_csr(self.pem.encode("ascii"))
        return self._info

    @property
    def subject(self) -> str:
        return self.info.subject

    @property
    def sans(self) -> tuple[str, ...]:
        return self.info.sans

    @property
    def public_key_sha256(self) -> str:
        return self.info.public_key_sha256

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CheckedCsr):
            return NotImplemented
        return self.info == other.info

    def __hash__(self) -> int:
        return hash(self.info)

    def __repr__(self) -> str:
        return f"CheckedCsr(key_algorithm={self.key_algorithm!r})"


def inspect_csr(data: bytes) -> CheckedCsr:
    """Check a CSR as AWS Private CA would; its PEM text and key algorithm (the rest is read on first use).

    Only what validation needs is read here: the signature, the key, that there is
    a subject or a SAN.
    """
    csr = parse_csr(data)
    if not csr.is_signature_valid:
        raise InputError("the CSR's signature does not verify (was it altered after signing?)")
    algorithm = key_algorithm(public_key(csr))
    try:
        has_subject = len(csr.subject) > 0
        extensions = csr.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise InputError("the CSR's subject or extensions do not parse") from None
    if not has_subject and not any(isinstance(e.value, x509.SubjectAlternativeName) for e in extensions):
        raise InputError("the CSR has neither a subject nor a subject alternative name")
    pem = plain_pem(data) or csr.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return CheckedCsr(pem, algorithm)


def describe_csr(pem: bytes) -> CsrInfo:
    """What a CSR already checked holds: subject (RFC 4514), SANs, key algorithm, SHA-256 of the public key."""
    csr = x509.load_pem_x509_csr(pem)
    key = csr.public_key()
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return CsrInfo(csr.subject.rfc4514_string(), sans(csr), key_algorithm(key), hashlib.sha256(spki).hexdigest())
