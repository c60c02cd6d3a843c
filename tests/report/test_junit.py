"""JUnit XML: one test case per entry, failures as failures, skipped as skipped, written atomically."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pca_batch.model import FAILED, ISSUED, RECOVERED, SKIPPED, UNCHANGED, Result
from pca_batch.report.junit import junit_xml, write_junit

ARN = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/ca/certificate/" + "ab" * 16
RESULTS = [
    Result(name="web", status=ISSUED, certificate_arn=ARN, serial="ab" * 16, attempts=1, duration_s=0.5),
    Result(name="api", status=UNCHANGED, certificate_arn=ARN, duration_s=0.25),
    Result(name="bad", status=FAILED, attempts=8, error_code="ThrottlingException",
           error_message='Rate exceeded <&> "quoted"\x00\x1b'),
    Result(name="later", status=SKIPPED, error_code="FailFast", error_message="not started"),
]


def parse(results: list[Result], suite: str = "manifests/prod.yaml") -> ET.Element:
    return ET.fromstring(junit_xml(results, suite=suite, elapsed_s=2.0))


def test_one_test_case_per_entry_with_the_manifest_as_classname() -> None:
    root = parse(RESULTS)
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.attrib["name"] == "manifests/prod.yaml"
    assert (suite.attrib["tests"], suite.attrib["failures"], suite.attrib["skipped"]) == ("4", "1", "1")
    assert suite.attrib["errors"] == "0" and suite.attrib["time"] == "2.000"
    cases = suite.findall("testcase")
    assert [c.attrib["name"] for c in cases] == ["web", "api", "bad", "later"]
    assert {c.attrib["classname"] for c in cases} == {"manifests/prod.yaml"}
    assert cases[0].attrib["time"] == "0.500"


def test_failures_and_skips_are_marked() -> None:
    cases = {c.attrib["name"]: c for c in parse(RESULTS).iter("testcase")}
    failure = cases["bad"].find("failure")
    assert failure is not None
    assert failure.attrib["type"] == "ThrottlingException"
    assert failure.attrib["message"].startswith('Rate exceeded <&> "quoted"')  # escaped, then read back
    assert "\x00" not in failure.attrib["message"]  # not representable in XML: replaced
    assert "attempts: 8" in (failure.text or "")
    skipped = cases["later"].find("skipped")
    assert skipped is not None and skipped.attrib["message"] == "not started"
    assert cases["web"].find("failure") is None and cases["web"].find("skipped") is None
    assert ARN in (cases["web"].findtext("system-out") or "")


def test_written_atomically_as_utf8_xml(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "junit.xml"
    path.parent.mkdir()
    path.write_text("old")
    write_junit(path, RESULTS, suite="m.yaml")
    data = path.read_bytes()
    assert data.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert ET.fromstring(data).find("testsuite") is not None
    assert sorted(p.name for p in path.parent.iterdir()) == ["junit.xml"]


def test_an_empty_run_is_an_empty_suite() -> None:
    suite = parse([]).find("testsuite")
    assert suite is not None and suite.attrib["tests"] == "0" and suite.findall("testcase") == []


def test_a_recovered_entry_passes_with_a_note() -> None:
    recovered = Result(name="db", status=RECOVERED, certificate_arn=ARN, attempts=0)
    suite = parse([recovered]).find("testsuite")
    assert suite is not None and (suite.attrib["failures"], suite.attrib["skipped"]) == ("0", "0")
    case = suite.find("testcase")
    assert case is not None and case.find("failure") is None and case.find("skipped") is None
    out = case.findtext("system-out") or ""
    assert out.startswith("status: recovered (") and "no IssueCertificate call" in out and ARN in out
