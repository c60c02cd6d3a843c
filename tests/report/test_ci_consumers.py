"""The reports as their real consumers read them: JUnit through junitparser (the library behind
many CI test-report actions), the JSON report through check-jsonschema with the schema that
`pca-batch schema report` prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from junitparser import Failure, JUnitXml

from tests.run.test_runner_acceptance import MISSING_CA, write_manifest
from tests.support.common import Cli


def _cases(path: Path) -> dict[str, list[object]]:
    """Test case name -> its results (failures, skips), as junitparser reads the file."""
    xml = JUnitXml.fromfile(str(path))
    return {case.name: list(case.result) for suite in xml for case in suite}


def test_apply_junit_has_a_case_per_entry_and_failures_typed_by_the_aws_error_code(tmp_path: Path, cli: Cli) -> None:
    manifest = write_manifest(tmp_path, ["web", "lost", "api"], ca_for={"lost": MISSING_CA})
    result = cli("apply", manifest, "--junit", tmp_path / "j.xml", "--report", tmp_path / "r.json")
    assert result.code == 1
    cases = _cases(tmp_path / "j.xml")
    assert sorted(cases) == ["api", "lost", "web"]
    assert cases["web"] == [] and cases["api"] == []
    (failure,) = cases["lost"]
    assert isinstance(failure, Failure)
    assert failure.type == "ResourceNotFoundException"
    report = json.loads((tmp_path / "r.json").read_text())
    assert [r["error"]["code"] for r in report["results"] if r["error"]] == [failure.type]


def test_the_json_report_meets_the_published_report_schema(tmp_path: Path, cli: Cli) -> None:
    manifest = write_manifest(tmp_path, ["web", "lost"], ca_for={"lost": MISSING_CA})
    cli("apply", manifest, "--report", tmp_path / "r.json")
    cli("apply", manifest, "--plan", "--report", tmp_path / "plan.json")
    schema_file = tmp_path / "report.schema.json"
    schema_file.write_text(cli("schema", "report").out)
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema_file),
         str(tmp_path / "r.json"), str(tmp_path / "plan.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # and the check has teeth: a report with a status no reader knows is refused
    bad = json.loads((tmp_path / "r.json").read_text())
    bad["results"][0]["status"] = "done"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    done = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--schemafile", str(schema_file), str(tmp_path / "bad.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1 and "'done' is not one of" in done.stdout


def test_validate_junit_has_a_case_per_entry_failing_with_its_problems(tmp_path: Path, cli: Cli) -> None:
    manifest = write_manifest(tmp_path, ["web", "api", "db"])
    text = manifest.read_text().replace("  - name: api\n", "  - name: api\n    SigningAlgorithm: SHA256WITHRSAA\n")
    manifest.write_text(text.replace("  - name: db\n", "  - name: db\n    Validty: {Value: 1, Type: DAYS}\n"))
    result = cli("validate", manifest, "--junit", tmp_path / "v.xml")
    assert result.code == 2
    cases = _cases(tmp_path / "v.xml")
    assert sorted(cases) == ["api", "db", "web"]
    assert cases["web"] == []
    (api,) = cases["api"]
    assert isinstance(api, Failure) and api.type == "InvalidManifest"
    assert api.message is not None and api.message.startswith("$.SigningAlgorithm: 'SHA256WITHRSAA' is not one of")
    line = text.splitlines().index("    SigningAlgorithm: SHA256WITHRSAA") + 1
    assert f"m.yaml:{line}: api: $.SigningAlgorithm" in (api.text or "")
    (db,) = cases["db"]
    assert isinstance(db, Failure) and "unknown key 'Validty'" in (db.message or "")


def test_validate_junit_names_problems_outside_the_entries_and_unreadable_manifests(tmp_path: Path, cli: Cli) -> None:
    good = write_manifest(tmp_path, ["web"])
    good.write_text(good.read_text().replace("settings:", "").replace("version: 1\n", "version: 1\nsetings: {}\n"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\ncertificates: [\n")
    result = cli("validate", good, broken, "--junit", tmp_path / "v.xml")
    assert result.code == 2
    xml = JUnitXml.fromfile(str(tmp_path / "v.xml"))
    suites = {suite.name: {case.name: list(case.result) for case in suite} for suite in xml}
    assert sorted(suites) == sorted([str(good), str(broken)])
    assert suites[str(good)]["web"] == []
    (top,) = suites[str(good)]["(manifest)"]
    assert isinstance(top, Failure) and "setings" in (top.message or "")
    (unreadable,) = suites[str(broken)]["(manifest)"]
    assert isinstance(unreadable, Failure)
    assert xml.tests == 3 and xml.failures == 2
