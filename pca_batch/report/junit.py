"""JUnit XML for CI test views: one test case per entry, failures as failures.

The shape is the common subset that Jenkins, GitLab, GitHub test reporters
and Azure read: ``<testsuites><testsuite><testcase classname name time>`` with
``<failure type message>`` or ``<skipped message>`` inside. ``classname`` is
the manifest's name, so several manifests in one CI job stay apart. Issued,
recovered and unchanged entries pass; their ``system-out`` says which (and,
for a recovered one, that no IssueCertificate call was made).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from pca_batch.errors import Problem
from pca_batch.files import atomic_write
from pca_batch.model import FAILED, INVALID, RECOVERED, RECOVERED_NOTE, SKIPPED, Manifest, Result

# Characters XML 1.0 cannot hold at all, not even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str | None) -> str:
    return _NOT_XML.sub("\ufffd", text or "")


def _details(result: Result) -> str:
    status = f"{result.status} ({RECOVERED_NOTE})" if result.status == RECOVERED else result.status
    lines = [f"status: {status}", f"attempts: {result.attempts}"]
    if result.certificate_authority_arn:
        lines.append(f"certificate authority: {result.certificate_authority_arn}")
    if result.certificate_arn:
        lines.append(f"certificate ARN: {result.certificate_arn}")
    if result.serial:
        lines.append(f"serial: {result.serial}")
    if result.revocation_reason:
        lines.append(f"revocation reason: {result.revocation_reason}")
    lines += [f"revoked the certificate it replaced: serial {r.serial} ({r.reason})" for r in result.revoked_replaced]
    if result.not_after:
        lines.append(f"not after: {result.not_after}")
    if result.idempotency_token:
        lines.append(f"idempotency token: {result.idempotency_token}")
    if result.error_code or result.error_message:
        lines.append(f"error: {result.error_code}: {result.error_message}")
    return "\n".join(lines)


def junit_tree(results: Sequence[Result], *, suite: str, elapsed_s: float | None = None) -> ET.Element:
    failures = sum(1 for r in results if r.status in (FAILED, INVALID))
    skipped = sum(1 for r in results if r.status == SKIPPED)
    total_time = elapsed_s if elapsed_s is not None else sum(r.duration_s for r in results)
    counts = {
        "tests": str(len(results)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": f"{total_time:.3f}",
    }
    root = ET.Element("testsuites", {"name": "pca-batch", **counts})
    suite_el = ET.SubElement(root, "testsuite", {"name": _clean(suite), **counts})
    for result in results:
        case = ET.SubElement(
            suite_el,
            "testcase",
            {"classname": _clean(suite), "name": _clean(result.name), "time": f"{result.duration_s:.3f}"},
        )
        if result.status in (FAILED, INVALID):
            failure = ET.SubElement(
                case,
                "failure",
                {"type": _clean(result.error_code or result.status), "message": _clean(result.error_message)},
            )
            failure.text = _clean(_details(result))
        elif result.status == SKIPPED:
            reason = result.error_message or "not run"
            ET.SubElement(case, "skipped", {"message": _clean(reason)})
            ET.SubElement(case, "system-out").text = _clean(_details(result))
        else:
            ET.SubElement(case, "system-out").text = _clean(_details(result))
    return root


def junit_xml(results: Sequence[Result], *, suite: str, elapsed_s: float | None = None) -> bytes:
    tree = junit_tree(results, suite=suite, elapsed_s=elapsed_s)
    ET.indent(tree)
    body: bytes = ET.tostring(tree, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def write_junit(path: Path, results: Sequence[Result], *, suite: str, elapsed_s: float | None = None) -> None:
    """Write the JUnit XML atomically (a reader never sees half a file)."""
    atomic_write(path, junit_xml(results, suite=suite, elapsed_s=elapsed_s))


# -- validate --junit: one test case per entry, so a CI's test view shows which entry is wrong --

MANIFEST_CASE = "(manifest)"  # problems outside the entries: version, backend, settings, defaults


def _problem_case(parent: ET.Element, suite: str, name: str, problems: Sequence[Problem]) -> None:
    case = ET.SubElement(parent, "testcase", {"classname": _clean(suite), "name": _clean(name), "time": "0.000"})
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        failure = ET.SubElement(
            case, "failure", {"type": "InvalidManifest", "message": _clean(f"{first.path}: {first.message}{more}")}
        )
        failure.text = _clean("\n".join(str(p) for p in problems))


def validation_junit(manifests: Sequence[tuple[str, Manifest | None, Sequence[Problem]]]) -> bytes:
    """A suite per manifest (display, manifest or None when it could not be read, its own problems):
    a case per entry, failing with every problem of that entry; one more, ``(manifest)``, when the
    manifest has problems outside its entries."""
    root = ET.Element("testsuites", {"name": "pca-batch validate"})
    total = failed = 0
    for display, manifest, problems in manifests:
        suite = ET.SubElement(root, "testsuite", {"name": _clean(display)})
        if problems:
            _problem_case(suite, display, MANIFEST_CASE, problems)
        for entry in manifest.entries if manifest is not None else ():
            _problem_case(suite, display, entry.name, entry.problems)
        cases = suite.findall("testcase")
        failures = sum(1 for c in cases if c.find("failure") is not None)
        suite.attrib.update({"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": "0"})
        total, failed = total + len(cases), failed + failures
    root.attrib.update({"tests": str(total), "failures": str(failed), "errors": "0", "skipped": "0"})
    ET.indent(root)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body + b"\n"
