"""Private keys and CSRs made from a manifest's ``key:`` block.

A key is written as PKCS#8 PEM with mode 0600 from the first byte (encrypted
when the entry names an environment variable holding a passphrase). Keys are
never printed, logged, reported or journaled: nothing here returns key bytes
to a caller that reports.

Crash safety: a new key is first kept as ``<private_key>.pending`` beside its
final place, written before IssueCertificate is called, and moved into place
only once its certificate is on disk. A run killed in between finds the pending
key again, builds the same request (same public key, so the same idempotency
token) and fetches the certificate already issued instead of issuing another.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from pca_batch.errors import PcaBatchError
from pca_batch.files import atomic_write
from pca_batch.pki import algorithms
from pca_batch.pki.algorithms import DEFAULT_KEY_ALGORITHM, KEY_ALGORITHMS, KeyAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

# On renewal: a new key (always) or the one the entry has (never).
Rotate = Literal["always", "never"]
ROTATE_POLICIES: tuple[Rotate, ...] = get_args(Rotate)
# ASN1Subject member -> OID, in the order a distinguished name is usually written
SUBJECT_OIDS = {
    "Country": NameOID.COUNTRY_NAME,
    "State": NameOID.STATE_OR_PROVINCE_NAME,
    "Locality": NameOID.LOCALITY_NAME,
    "Organization": NameOID.ORGANIZATION_NAME,
    "OrganizationalUnit": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "DistinguishedNameQualifier": NameOID.DN_QUALIFIER,
    "SerialNumber": NameOID.SERIAL_NUMBER,
    "Title": NameOID.TITLE,
    "Surname": NameOID.SURNAME,
    "GivenName": NameOID.GIVEN_NAME,
    "Initials": NameOID.INITIALS,
    "Pseudonym": NameOID.PSEUDONYM,
    "GenerationQualifier": NameOID.GENERATION_QUALIFIER,
    "CommonName": NameOID.COMMON_NAME,
}


class KeyError_(PcaBatchError):
    """A key that cannot be read, decrypted or written (the message never holds key bytes)."""


@dataclass(frozen=True)
class KeySpec:
    """The ``key:`` block of an entry."""

    algorithm: KeyAlgorithm = DEFAULT_KEY_ALGORITHM
    subject: tuple[tuple[str, str], ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    passphrase_env: str | None = None
    rotate: Rotate = "always"

    @classmethod
    def from_manifest(cls, raw: Mapping[str, Any]) -> KeySpec:
        """The spec of a ``key:`` block that the manifest schema accepted (the loader builds
        none for a refused block); it still reads defensively: a value of the wrong type is
        left out, never raised on."""
        subject = raw.get("subject")
        subject = subject if isinstance(subject, Mapping) else {}
        passphrase_env = raw.get("passphrase_env")
        algorithm = next((a for a in KEY_ALGORITHMS if a == raw.get("algorithm")), DEFAULT_KEY_ALGORITHM)
        return cls(
            algorithm=algorithm,
            # an empty value is no attribute at all (a distinguished name cannot hold one)
            subject=tuple((k, str(subject[k])) for k in SUBJECT_OIDS if subject.get(k) not in (None, "")),
            dns_names=_strings(raw.get("dns_names")),
            ip_addresses=_strings(raw.get("ip_addresses")),
            uris=_strings(raw.get("uris")),
            emails=_strings(raw.get("emails")),
            passphrase_env=passphrase_env if isinstance(passphrase_env, str) and passphrase_env else None,
            rotate=next((r for r in ROTATE_POLICIES if r == raw.get("rotate")), "always"),
        )

    def canonical(self) -> dict[str, Any]:
        """What of the spec goes into the idempotency token (never the passphrase)."""
        return {
            "algorithm": self.algorithm,
            "subject": [list(p) for p in self.subject],
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "uris": list(self.uris),
            "emails": list(self.emails),
        }

    def name(self, *, strict: bool = False) -> x509.Name:
        """The subject as a Name. Not strict (for showing an entry, which may be invalid):
        an attribute x509 refuses (a 3-letter Country) is left out; strict: it raises."""
        attributes = []
        for k, v in self.subject:
            try:
                attributes.append(x509.NameAttribute(SUBJECT_OIDS[k], v))
            except ValueError as exc:
                if strict:
                    raise KeyError_(f"the key's subject {k} cannot be used: {exc}") from None
        return x509.Name(attributes)

    def general_names(self) -> list[x509.GeneralName]:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in self.dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in self.ip_addresses]
        names += [x509.UniformResourceIdentifier(u) for u in self.uris]
        names += [x509.RFC822Name(e) for e in self.emails]
        return names

    def sans_text(self) -> tuple[str, ...]:
        """SANs in the same text form as csr.sans() gives for a CSR."""
        out = [f"DNS:{d}" for d in self.dns_names]
        out += [f"IP:{_ip_text(i)}" for i in self.ip_addresses]
        out += [f"URI:{u}" for u in self.uris]
        out += [f"email:{e}" for e in self.emails]
        return tuple(out)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


def _ip_text(address: str) -> str:
    """An address as x509 writes it; as given when it is none (an invalid entry being shown)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def generate(algorithm: str) -> PrivateKey:
    try:
        return algorithms.generate(algorithm)
    except ValueError as exc:
        raise KeyError_(str(exc)) from None


def algorithm_of(key: PrivateKey) -> str | None:
    """The AWS name of a key's algorithm; None for a key of none (an RSA key of 1024 bits)."""
    return algorithms.key_algorithm_of(key)


def spki_sha256(key: PrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def csr_spki_sha256(csr_pem: str) -> str:
    """The SHA-256 of the public key a CSR (PEM) carries, as :func:`spki_sha256` gives it."""
    public = x509.load_pem_x509_csr(csr_pem.encode("ascii")).public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def passphrase(spec: KeySpec, env: Mapping[str, str] | None = None) -> bytes | None:
    if not spec.passphrase_env:
        return None
    value = (os.environ if env is None else env).get(spec.passphrase_env)
    if not value:
        raise KeyError_(f"the passphrase variable {spec.passphrase_env} is not set")
    return value.encode("utf-8")


def save(path: Path, key: PrivateKey, secret: bytes | None) -> None:
    """PKCS#8 PEM, mode 0600 from the first byte, encrypted when ``secret`` is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    atomic_write(path, data, mode=0o600)


def load(path: Path, secret: bytes | None) -> PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyError_(f"the private key {path} cannot be read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=secret)
    except TypeError:
        raise KeyError_(
            f"the private key {path} is encrypted and no passphrase was given"
            if secret is None
            else f"the private key {path} is not encrypted, but a passphrase was given"
        ) from None
    except ValueError:
        raise KeyError_(f"the private key {path} cannot be read (wrong passphrase, or not a PEM key)") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise KeyError_(f"the private key {path} is of a type pca-batch does not use")
    return key


def build_csr(spec: KeySpec, key: PrivateKey) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(spec.name(strict=True))
    names = spec.general_names()
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    algorithm = hashes.SHA256() if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.key_size < 384 else (
        hashes.SHA384() if key.curve.key_size == 384 else hashes.SHA512()
    )
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode("ascii")


def pending_path(private_key: Path) -> Path:
    return private_key.with_name(private_key.name + ".pending")


def key_for_issue(spec: KeySpec, private_key: Path, env: Mapping[str, str] | None = None) -> tuple[PrivateKey, bool]:
    """The key a new certificate is for, and whether it is a new (pending) one.

    A pending key left by an interrupted run is reused; ``rotate: never`` keeps
    the existing key; otherwise a new key is generated and saved as pending
    before anything is sent. A key of another algorithm than the entry now asks
    for is neither reused nor kept: the entry gets a key of the algorithm asked for.
    """
    secret = passphrase(spec, env)
    pending = pending_path(private_key)
    if pending.exists():
        key = load(pending, secret)
        if algorithm_of(key) == spec.algorithm:
            return key, True
        pending.unlink()  # never to be moved in over a key a certificate was issued for
    if spec.rotate == "never" and private_key.exists():
        key = load(private_key, secret)
        if algorithm_of(key) == spec.algorithm:
            return key, False
    key = generate(spec.algorithm)
    save(pending, key, secret)
    return key, True


def install_pending(private_key: Path) -> None:
    """Move a pending key into place once its certificate is written."""
    pending = pending_path(private_key)
    if pending.exists():
        os.replace(pending, private_key)
