"""CA private keys of the local store: one PKCS#8 PEM file each, mode 0600.

With PCA_BATCH_STORE_PASSPHRASE set, new keys are encrypted with it (PKCS#8
PBES2, AES-256); keys written before it was set stay readable. Messages name
the CA, never the key or the passphrase.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from pca_batch.errors import BackendError
from pca_batch.files import atomic_write

KEYS_DIR = "keys"
PASSPHRASE_ENV = "PCA_BATCH_STORE_PASSPHRASE"


def _passphrase() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV, "")
    return value.encode("utf-8") if value else None


def write_key(store: Path, key: PrivateKeyTypes) -> str:
    """Save a CA key as a new 0600 file; returns its name under keys/."""
    passphrase = _passphrase()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    name = f"{secrets.token_hex(16)}.pem"
    folder = store / KEYS_DIR
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write(folder / name, data, mode=0o600)
    return name


def remove_key(store: Path, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (store / KEYS_DIR / name).unlink()


def load_key(store: Path, name: str, owner: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """Read and, when needed, decrypt the key of CA ``owner``."""
    key = _load(store, name, owner)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise BackendError("InvalidStateException", f"the private key of {owner} is neither RSA nor EC")
    return key


def _load(store: Path, name: str, owner: str) -> PrivateKeyTypes:
    try:
        data = (store / KEYS_DIR / name).read_bytes()
    except FileNotFoundError:
        raise BackendError("InvalidStateException", f"the private key of {owner} is missing") from None
    passphrase = _passphrase()
    try:
        return serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        if passphrase:  # a key saved before a passphrase was set: still usable
            return serialization.load_pem_private_key(data, password=None)
        raise BackendError(
            "AccessDeniedException", f"the private key of {owner} is encrypted: set {PASSPHRASE_ENV}"
        ) from None
    except ValueError:
        raise BackendError(
            "AccessDeniedException", f"cannot decrypt the private key of {owner}: wrong {PASSPHRASE_ENV}?"
        ) from None
