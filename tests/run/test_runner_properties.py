"""Property: whatever faults the backend throws, the runner never loses or doubles a certificate.

For any fault script (throttling, 5xx, dropped connections, time-outs after issuing,
RequestInProgress polls, non-retryable errors, a crash between IssueCertificate and
the journal write), run the manifest until a run completes (a crash ends a run, as
SIGKILL would), then:

- every entry ends issued (or recovered or unchanged, after a crashed run) or failed;
- no idempotency token has two certificates at the CA;
- every ARN an entry ended with is in the report and in the journal, and its files
  hold exactly that certificate.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pca_batch import schema
from pca_batch.model import FAILED, ISSUED, RECOVERED, UNCHANGED, Result
from pca_batch.report.json_report import build_report
from pca_batch.run.journal import Journal, read_journal
from pca_batch.run.runner import RunConfig, Runner, Timing
from tests.support.fault_backend import FakeClock, FaultBackend, Script, SimulatedCrash, make_csr, make_entry

CSR = make_csr("property.example.com")
ISSUE_STEPS = ["ok", "throttle", "5xx", "connection", "timeout", "crash", "error:InvalidArgsException"]
GET_STEPS = ["ok", "throttle", "5xx", "connection", "in_progress", "in_progress"]

scripts = st.lists(
    st.tuples(
        st.lists(st.sampled_from(ISSUE_STEPS), max_size=6),
        st.lists(st.sampled_from(GET_STEPS), max_size=8),
    ),
    min_size=1,
    max_size=6,
)


def run_once(root: Path, backend: FaultBackend, entries: list, config: RunConfig) -> list[Result]:  # type: ignore[type-arg]
    clock = FakeClock()
    with Journal(root / ".pca-batch" / "journal.jsonl") as journal:
        runner = Runner(backend, journal, base_dir=root, config=config, timing=Timing(clock=clock, sleep=clock.sleep))
        return runner.run(entries)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=scripts,
    concurrency=st.integers(min_value=1, max_value=4),
    max_attempts=st.integers(min_value=1, max_value=6),
    max_polls=st.integers(min_value=2, max_value=6),
)
def test_no_fault_loses_or_doubles_a_certificate(
    script: list[tuple[list[str], list[str]]], concurrency: int, max_attempts: int, max_polls: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        entries = [make_entry(root, f"p{i}", index=i, csr=CSR) for i in range(len(script))]
        backend = FaultBackend(script={
            f"tok-p{i}": Script(issue=list(issue), get=list(get)) for i, (issue, get) in enumerate(script)
        })
        config = RunConfig(concurrency=concurrency, max_attempts=max_attempts, max_polls=max_polls)
        crashes = sum(issue.count("crash") for issue, _ in script)
        results: list[Result] | None = None
        for _ in range(crashes + 1):
            try:
                results = run_once(root, backend, entries, config)
                break
            except SimulatedCrash:
                continue
        assert results is not None, "a run completed once every crash step was used up"

        records, damaged = read_journal(root / ".pca-batch" / "journal.jsonl")
        journal = {r.token: r.certificate_arn for r in records}
        assert damaged == 0
        report = build_report(results)
        schema.validator(schema.REPORT).validate(report)
        reported = {r["certificate_arn"] for r in report["results"] if r["certificate_arn"]}

        for token, count in backend.tokens_issued().items():
            assert count == 1, f"token {token} has {count} certificates"
        for entry, result in zip(entries, results, strict=True):
            assert result.status in (ISSUED, RECOVERED, UNCHANGED, FAILED), result
            if result.status == FAILED:
                continue
            arn = result.certificate_arn
            assert arn is not None and arn in reported
            assert entry.token is not None
            assert journal[entry.token] == arn
            assert backend.certificates_for(entry.token) == [arn]
            assert (root / "out" / f"{entry.name}.pem").read_text() == backend.issued[arn].pem
        # Every ARN the runner was told about is in the journal; every journaled ARN is real.
        assert set(journal.values()) <= set(backend.issued)
        assert reported <= set(journal.values())
