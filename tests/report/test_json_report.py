from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from pca_batch import schema
from pca_batch.model import Result, Status
from pca_batch.report.json_report import ReportError, build_report, merge_reports, read_report, write_report
from tests.support.common import Cli


def _r(name: str, status: str = "issued", **kw: object) -> Result:
    return Result(name=name, status=Status(status), **kw)  # type: ignore[arg-type]


def test_report_has_every_key_even_when_null(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_report(path, [_r("a", serial="0a1b", attempts=2, error_code=None)])
    data = json.loads(path.read_text())
    Draft202012Validator(schema.load(schema.REPORT)).validate(data)
    result = data["results"][0]
    assert set(result) == {
        "name",
        "status",
        "certificate_authority_arn",
        "certificate_arn",
        "serial",
        "not_before",
        "not_after",
        "idempotency_token",
        "attempts",
        "duration_s",
        "outputs",
        "error",
        "revocation_reason",
        "revoked_replaced",
        "action",
        "reason",
    }
    assert result["error"] is None and result["outputs"] == {
        "certificate": None,
        "chain": None,
        "full_chain": None,
        "private_key": None,
    }
    assert data["summary"]["issued"] == 1 and data["summary"]["total"] == 1


def test_round_trip(tmp_path: Path) -> None:
    rows = [
        _r("a", certificate_arn="arn:x", not_after="2027-01-01T00:00:00Z", outputs={"certificate": "out/a.pem"}),
        _r("b", "failed", error_code="InvalidArgsException", error_message="no"),
    ]
    write_report(tmp_path / "r.json", rows)
    back = read_report(tmp_path / "r.json")
    assert build_report(back) == build_report(rows)


def test_merge_shards_and_refuse_overlap(tmp_path: Path, cli: Cli) -> None:
    from pca_batch.run.ratelimit import LearnedRate

    first = LearnedRate("IssueCertificate", "us-east-1", "111122223333", calls=520, throttles=7, settled=12.5,
                        ceiling=200.0)
    second = LearnedRate("IssueCertificate", "us-east-1", "111122223333", calls=480, throttles=9, settled=11.0,
                         ceiling=200.0)
    write_report(tmp_path / "1.json", [_r("a"), _r("b", "unchanged")], [first])
    write_report(tmp_path / "2.json", [_r("c", "failed", error_code="X", error_message="boom")], [second])
    result = cli("report", "merge", tmp_path / "1.json", tmp_path / "2.json", "-o", tmp_path / "all.json")
    assert result.code == 1  # an entry failed, as apply would say
    data = json.loads((tmp_path / "all.json").read_text())
    assert [r["name"] for r in data["results"]] == ["a", "b", "c"]
    assert data["summary"]["total"] == 3 and data["summary"]["failed"] == 1
    # what each shard's process learned of the quota is kept, as each recorded it
    assert data["summary"]["rates"] == [first.as_json(), second.as_json()]
    assert "3 entries, 1 issued, 1 unchanged, 1 failed" in result.out
    with pytest.raises(ReportError, match="in both"):
        merge_reports([tmp_path / "1.json", tmp_path / "1.json"])


def test_merge_refuses_what_is_not_a_report(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "bad.json").write_text('{"summary": {}}')
    (tmp_path / "worse.json").write_text("not json")
    for name in ("bad.json", "worse.json", "missing.json"):
        result = cli("report", "merge", tmp_path / name, "-o", tmp_path / "all.json")
        assert result.code == 2 and "Traceback" not in result.err and name in result.err
    assert not (tmp_path / "all.json").exists()


def test_fast_report_check_agrees_with_jsonschema() -> None:
    from pca_batch.report.json_report import _report_ok

    good = build_report([_r("a", error_code="X", error_message="m"), _r("b")])
    assert _report_ok()(good) and schema.validator(schema.REPORT).is_valid(good)
    bad = json.loads(json.dumps(good))
    bad["results"][0]["error"] = {"code": "X"}  # message missing
    assert not _report_ok()(bad) and not schema.validator(schema.REPORT).is_valid(bad)
    bad = json.loads(json.dumps(good))
    bad["results"][1]["status"] = "done"
    assert not _report_ok()(bad) and not schema.validator(schema.REPORT).is_valid(bad)


def test_every_status_round_trips_as_its_plain_string(tmp_path: Path) -> None:
    assert [s.value for s in Status] == [
        "planned", "issued", "recovered", "unchanged", "failed", "invalid", "skipped", "revoked"
    ]
    write_report(tmp_path / "r.json", [_r(s.value, s.value) for s in Status])
    data = json.loads((tmp_path / "r.json").read_text())
    assert [r["status"] for r in data["results"]] == [s.value for s in Status]
    assert data["summary"] == {"total": len(Status), **{s.value: 1 for s in Status}, "rates": []}
    back = read_report(tmp_path / "r.json")
    assert [r.status for r in back] == list(Status) and all(type(r.status) is Status for r in back)


def test_the_summary_says_what_the_rate_limiters_learned(tmp_path: Path) -> None:
    from pca_batch.report.json_report import _report_ok
    from pca_batch.run.ratelimit import LearnedRate

    rates = [
        LearnedRate("IssueCertificate", "us-east-1", "111122223333", calls=1000, throttles=3, settled=24.6123,
                    ceiling=200.0),
        LearnedRate("GetCertificate", "us-east-1", "111122223333", calls=1000, throttles=0, settled=31.0,
                    ceiling=None),
    ]
    write_report(tmp_path / "r.json", [_r("a")], rates)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["rates"] == [
        {"operation": "IssueCertificate", "region": "us-east-1", "account": "111122223333", "calls": 1000,
         "throttles": 3, "settled_per_s": 24.61, "ceiling_per_s": 200.0},
        {"operation": "GetCertificate", "region": "us-east-1", "account": "111122223333", "calls": 1000,
         "throttles": 0, "settled_per_s": 31.0, "ceiling_per_s": None},
    ]
    assert [r.name for r in read_report(tmp_path / "r.json")] == ["a"]
    for broken in ({"throttles": -1}, {"operation": "ListCertificates"}, {"settled_per_s": "fast"}, {"extra": 1}):
        bad = json.loads(json.dumps(data))
        bad["summary"]["rates"][0].update(broken)
        assert not _report_ok()(bad) and not schema.validator(schema.REPORT).is_valid(bad), broken
    older = json.loads(json.dumps(data))
    del older["summary"]["rates"]  # reports written before the rates were: still reports
    assert _report_ok()(older) and schema.validator(schema.REPORT).is_valid(older)
