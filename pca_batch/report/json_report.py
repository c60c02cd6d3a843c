"""The JSON report (schemas/report.schema.json): one object, a summary and a result per entry."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pca_batch import schema
from pca_batch.errors import PcaBatchError
from pca_batch.files import atomic_write
from pca_batch.model import OUTPUT_KINDS, STATUSES, Result, Retired, Status
from pca_batch.pki.csr import InputError, read_limited
from pca_batch.schema import fastcheck

if TYPE_CHECKING:
    from pca_batch.run.ratelimit import LearnedRate


def result_json(result: Result) -> dict[str, Any]:
    error = None
    if result.error_code is not None or result.error_message is not None:
        error = {"code": result.error_code or "Error", "message": result.error_message or ""}
    return {
        "name": result.name,
        "status": result.status.value,
        "certificate_authority_arn": result.certificate_authority_arn,
        "certificate_arn": result.certificate_arn,
        "serial": result.serial,
        "not_before": result.not_before,
        "not_after": result.not_after,
        "idempotency_token": result.idempotency_token,
        "attempts": result.attempts,
        "duration_s": round(result.duration_s, 3),
        "outputs": {kind: result.outputs.get(kind) for kind in OUTPUT_KINDS},
        "error": error,
        "revocation_reason": result.revocation_reason,
        "revoked_replaced": [
            {"certificate_arn": r.certificate_arn, "serial": r.serial, "revocation_reason": r.reason}
            for r in result.revoked_replaced
        ],
        "action": result.action,
        "reason": result.reason,
    }


def summary(results: Sequence[Result]) -> dict[str, int]:
    """How many entries in all and of each status (every status named, 0 too)."""
    counts: dict[str, int] = {"total": len(results), **{status.value: 0 for status in STATUSES}}
    for r in results:
        counts[r.status] += 1
    return counts


class RecordedRate:
    """A learned rate as a report recorded it (summary.rates[]), for a report made of others."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def as_json(self) -> dict[str, Any]:
        return dict(self._data)


def build_report(results: Sequence[Result], rates: Sequence[LearnedRate | RecordedRate] = ()) -> dict[str, Any]:
    """The report; ``rates``: what the aws backend's rate limiters learned (summary.rates)."""
    head: dict[str, Any] = {**summary(results), "rates": [r.as_json() for r in rates]}
    return {"summary": head, "results": [result_json(r) for r in results]}


@cache
def _report_ok() -> Callable[[Any], bool]:
    return fastcheck.compile_schema(schema.load(schema.REPORT))


def write_report(path: Path, results: Sequence[Result], rates: Sequence[LearnedRate | RecordedRate] = ()) -> None:
    """Write the report atomically; it is checked against its own schema first."""
    report = build_report(results, rates)
    if not _report_ok()(report):  # a bug in pca-batch, not a user error: say what is wrong
        errors = sorted(schema.validator(schema.REPORT).iter_errors(report), key=lambda e: list(e.path))
        raise AssertionError(f"report does not match its schema: {errors[0].message if errors else '?'}")
    atomic_write(path, json.dumps(report, indent=2) + "\n")


def summary_line(results: Sequence[Result]) -> str:
    counts = summary(results)
    parts = [f"{counts['total']} entries"]
    parts += [f"{counts[s]} {s}" for s in STATUSES if counts[s]]
    return ", ".join(parts)


class ReportError(PcaBatchError):
    """A report file that cannot be merged."""


def result_from_json(data: Mapping[str, Any]) -> Result:
    error = data.get("error") or {}
    return Result(
        name=data["name"],
        status=Status(data["status"]),
        certificate_authority_arn=data.get("certificate_authority_arn"),
        certificate_arn=data.get("certificate_arn"),
        serial=data.get("serial"),
        not_before=data.get("not_before"),
        not_after=data.get("not_after"),
        idempotency_token=data.get("idempotency_token"),
        attempts=int(data.get("attempts") or 0),
        duration_s=float(data.get("duration_s") or 0.0),
        outputs=dict(data.get("outputs") or {}),
        error_code=error.get("code"),
        error_message=error.get("message"),
        revocation_reason=data.get("revocation_reason"),
        revoked_replaced=tuple(
            Retired(r["certificate_arn"], r["serial"], r["revocation_reason"])
            for r in data.get("revoked_replaced") or ()
        ),
        action=data.get("action"),
        reason=data.get("reason"),
    )


def read_report(path: Path) -> list[Result]:
    """A JSON report as written by ``apply``; ReportError when it is not one."""
    return [result_from_json(r) for r in _read(path)["results"]]


def _read(path: Path) -> dict[str, Any]:
    """A report's JSON, checked against the report schema; ReportError when it is not one."""
    try:
        text = read_limited(path, 512 * 1024 * 1024, "the report").decode("utf-8")
        data = json.loads(text)
    except InputError as exc:
        raise ReportError(str(exc)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path} is not a JSON report: {exc}") from None
    errors = list(schema.validator(schema.REPORT).iter_errors(data))
    if errors:
        first = min(errors, key=lambda e: len(list(e.absolute_path)))
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.absolute_path)
        raise ReportError(f"{path} is not a pca-batch report ({where}: {first.validator} check failed)")
    return data  # type: ignore[no-any-return]


def merge_reports(paths: Sequence[Path]) -> tuple[list[Result], list[RecordedRate]]:
    """The results of several shard reports as one, and every rate each shard's process learned
    (one process's limiters per report: a shard's rates are kept as it recorded them, not
    added up, since the shards may or may not have shared the quota at the same time); an
    entry named twice is an error."""
    merged: list[Result] = []
    rates: list[RecordedRate] = []
    seen: dict[str, Path] = {}
    for path in paths:
        data = _read(path)
        for result in (result_from_json(r) for r in data["results"]):
            if result.name in seen:
                raise ReportError(
                    f"the entry {result.name} is in both {seen[result.name]} and {path}: "
                    "were the shards run with the same K/N?"
                )
            seen[result.name] = path
            merged.append(result)
        rates += [RecordedRate(r) for r in data["summary"].get("rates", ())]
    return merged, rates
