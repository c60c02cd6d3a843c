"""The JSON report (schemas/report.schema.json): one object, a summary and a result per entry."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pca_batch import schema
from pca_batch.model import OUTPUT_KINDS, STATUSES, Result
from pca_batch.outputs import atomic_write


def result_json(result: Result) -> dict[str, Any]:
    error = None
    if result.error_code is not None or result.error_message is not None:
        error = {"code": result.error_code or "Error", "message": result.error_message or ""}
    return {
        "name": result.name,
        "status": result.status,
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
    }


def summary(results: Sequence[Result]) -> dict[str, int]:
    counts = {"total": len(results), **{status: 0 for status in STATUSES}}
    for r in results:
        counts[r.status] += 1
    return counts


def build_report(results: Sequence[Result]) -> dict[str, Any]:
    return {"summary": summary(results), "results": [result_json(r) for r in results]}


def write_report(path: Path, results: Sequence[Result]) -> None:
    """Write the report atomically; it is checked against its own schema first."""
    report = build_report(results)
    errors = sorted(schema.validator(schema.REPORT).iter_errors(report), key=lambda e: list(e.path))
    if errors:  # a bug in pca-batch, not a user error
        raise AssertionError(f"report does not match its schema: {errors[0].message}")
    atomic_write(path, json.dumps(report, indent=2) + "\n")


def summary_line(results: Sequence[Result]) -> str:
    counts = summary(results)
    parts = [f"{counts['total']} entries"]
    parts += [f"{counts[s]} {s}" for s in STATUSES if counts[s]]
    return ", ".join(parts)
