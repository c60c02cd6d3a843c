"""Delivering an issued certificate: the facts reports need, and the output files.

GetCertificate answers PEM text: the leaf and its chain (the issuing CA up to
the root). The files are ``certificate`` (the leaf), ``chain`` and
``full_chain`` (leaf then chain), each written atomically
(:func:`pca_batch.files.atomic_write`); a file that already holds exactly
those bytes is left alone, so a run that changes nothing touches nothing.
The private key, when an entry has one, is not the runner's to write.

The files' contents are durable before they are renamed; the renames are made
durable together once the run ends (:func:`make_durable`). Whenever either
fails, the entries whose files it concerned fail with ``OutputWriteError``.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

from cryptography import x509

from pca_batch.acmpca import serial_hex
from pca_batch.backends.base import CertificateBundle, CertificateFacts
from pca_batch.errors import BackendError
from pca_batch.files import DurabilityError, atomic_write_many, flush_renames
from pca_batch.model import FAILED, Entry, Outputs, Result
from pca_batch.times import rfc3339

OUTPUT_ERROR = "OutputWriteError"
MALFORMED = "MalformedCertificate"


def pem_text(pem: str) -> str:
    """PEM text ending in exactly one newline ("" stays "")."""
    text = pem.strip()
    return text + "\n" if text else ""


def certificate_facts(pem: str) -> CertificateFacts:
    """Serial and validity of a PEM certificate; BackendError when it is not one."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except ValueError as exc:
        raise BackendError(MALFORMED, "GetCertificate answered with no PEM certificate") from exc
    return CertificateFacts(
        serial=serial_hex(cert.serial_number),
        not_before=rfc3339(cert.not_valid_before_utc),
        not_after=rfc3339(cert.not_valid_after_utc),
    )


def _holds(path: Path, data: bytes) -> bool:
    """True when ``path`` is a file with exactly ``data`` (so rewriting it would change nothing)."""
    if not os.access(path, os.F_OK):  # the usual case, a new file: no OSError raised to say so
        return False
    try:
        found = os.stat(path)
        return stat.S_ISREG(found.st_mode) and found.st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _to_write(bundle: CertificateBundle, outputs: Outputs) -> tuple[CertificateFacts, list[tuple[str, Path, bytes]]]:
    """The facts of the answer and the files that differ from it: (kind, path, bytes)."""
    certificate, chain = pem_text(bundle.certificate), pem_text(bundle.chain)
    facts = bundle.facts if bundle.facts is not None else certificate_facts(certificate)
    contents = {"certificate": certificate, "chain": chain, "full_chain": certificate + chain}
    todo: list[tuple[str, Path, bytes]] = []
    for kind, path in outputs.items():
        data = contents.get(kind)
        if data is None:
            continue
        encoded = data.encode("utf-8")
        if not _holds(path, encoded):
            todo.append((kind, path, encoded))
    return facts, todo


def write_outputs(
    bundle: CertificateBundle, outputs: Outputs, shown: dict[str, str | None]
) -> tuple[CertificateFacts, bool]:
    """Check the answer, write the files that differ; returns the facts and whether a file changed.

    ``shown`` names each output as messages should (paths relative to the manifest).
    Nothing is written unless the answer holds a certificate.
    """
    facts, todo = _to_write(bundle, outputs)
    if not todo:
        return facts, False
    try:
        atomic_write_many([(path, encoded, 0o644) for _kind, path, encoded in todo])
    except OSError as exc:
        failed = next((k for k, p, _ in todo if exc.filename and str(p) in str(exc.filename)), todo[0][0])
        where = shown.get(failed) or failed
        reason = exc.strerror or str(exc)
        raise BackendError(OUTPUT_ERROR, f"cannot write {failed} to {where}: {reason}") from exc
    return facts, True


Delivery = tuple[CertificateBundle, Outputs, dict[str, str | None]]  # what write_outputs takes


def write_outputs_many(items: list[Delivery]) -> list[tuple[CertificateFacts, bool] | BackendError]:
    """:func:`write_outputs` for several entries, their files written as one batch (all written,
    each fsynced, then renamed). When the batch fails, each entry's files are written on their
    own, so that the error is the entry's whose file it was."""
    out: list[tuple[CertificateFacts, bool] | BackendError] = []
    files: list[tuple[Path, bytes, int]] = []
    for bundle, outputs, _shown in items:
        try:
            facts, todo = _to_write(bundle, outputs)
        except BackendError as exc:
            out.append(exc)
            continue
        out.append((facts, bool(todo)))
        files += [(path, encoded, 0o644) for _kind, path, encoded in todo]
    try:
        atomic_write_many(files)
    except OSError:  # nothing was renamed: each entry on its own now
        return [one if isinstance(one, BackendError) else _write_alone(item)
                for one, item in zip(out, items, strict=True)]
    return out


def _write_alone(item: Delivery) -> tuple[CertificateFacts, bool] | BackendError:
    try:
        return write_outputs(*item)
    except BackendError as exc:
        return exc


def make_durable(results: list[Result], entries: list[Entry]) -> list[Result]:
    """Flush the renames of this run's outputs; an entry whose files this fails for fails too.

    ``results`` and ``entries`` may be in any order; an entry that wrote no file (unchanged,
    skipped, failed already) keeps its result.
    """
    try:
        flush_renames()
    except DurabilityError as exc:
        lost = exc.paths
        files = {e.name: {path for _kind, path in e.outputs.items()} for e in entries}
        reason = exc.strerror or str(exc)
        return [
            replace(r, status=FAILED, error_code=OUTPUT_ERROR,
                    error_message=f"its files were written but could not be made durable: {reason}; "
                                  "run again to write them (its certificate ARN is in the journal)")
            if r.status != FAILED and files.get(r.name, set()) & lost else r
            for r in results
        ]
    return results
