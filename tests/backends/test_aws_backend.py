"""The aws backend against a moto server over real HTTP, directly and through the fault proxy."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from botocore.exceptions import (
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    PartialCredentialsError,
    SSLError,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from pca_batch.acmpca import region_of
from pca_batch.backends.aws import NO_CREDENTIALS, AwsBackend, translate
from pca_batch.errors import EXIT_INVALID, BackendError, CredentialsError, UsageError
from tests.support.fault_proxy import FaultProxy, Faults
from tests.support.moto_server import (
    aws_test_env,
    free_port,
    issue_request,
    make_csr,
    patch_env,
)

CERT_ARN = re.compile(
    r"^(?P<ca>arn:aws:acm-pca:[^:]+:\d+:certificate-authority/[^/]+)/certificate/[0-9a-f]{32}$"
)


@pytest.fixture
def backend(moto: str) -> Iterator[AwsBackend]:
    b = AwsBackend(endpoint_url=moto)
    yield b
    b.close()


def common_name(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def spki(key: object) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


def test_issue_and_get_give_a_certificate_for_the_csr_signed_by_the_ca(
    backend: AwsBackend, ca_east: str
) -> None:
    csr, key = make_csr("payments.example", ("payments.example", "api.payments.example"))

    arn = backend.issue_certificate(issue_request(ca_east, csr, token="tok-issue-1"))
    bundle = backend.get_certificate(ca_east, arn)

    m = CERT_ARN.match(arn)
    assert m and m.group("ca") == ca_east
    cert = x509.load_pem_x509_certificate(bundle.certificate.encode())
    root = x509.load_pem_x509_certificate(bundle.chain.encode())
    assert spki(cert.public_key()) == spki(key.public_key())
    assert common_name(cert.subject) == "payments.example"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["payments.example", "api.payments.example"]
    cert.verify_directly_issued_by(root)
    assert common_name(root.subject) == "pca-batch test root east"


def test_csr_given_as_pem_text_is_sent_as_the_same_pem(backend: AwsBackend, ca_east: str) -> None:
    csr, key = make_csr("text.example")
    request = issue_request(ca_east, csr)
    request["Csr"] = csr.decode("ascii")

    arn = backend.issue_certificate(request)

    cert = x509.load_pem_x509_certificate(backend.get_certificate(ca_east, arn).certificate.encode())
    assert spki(cert.public_key()) == spki(key.public_key())


def test_describe_reports_status_key_algorithm_usage_mode_and_not_after(
    backend: AwsBackend, ca_east: str
) -> None:
    csr, _ = make_csr("probe.example")
    chain = backend.get_certificate(ca_east, backend.issue_certificate(issue_request(ca_east, csr))).chain
    root = x509.load_pem_x509_certificate(chain.encode())

    ca = backend.describe_certificate_authority(ca_east)

    assert ca.arn == ca_east
    assert ca.status == "ACTIVE"
    assert ca.key_algorithm == "RSA_2048"
    assert ca.usage_mode == "SHORT_LIVED_CERTIFICATE"  # moto reports this for every CA
    assert ca.not_after is not None and ca.not_after.tzinfo is not None
    assert abs((ca.not_after - root.not_valid_after_utc).total_seconds()) < 1
    assert ca.not_after > datetime.now(UTC)


def test_unknown_ca_is_resource_not_found_and_not_retryable(backend: AwsBackend, ca_east: str) -> None:
    unknown = ca_east.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"

    with pytest.raises(BackendError) as info:
        backend.describe_certificate_authority(unknown)

    assert info.value.code == "ResourceNotFoundException"
    assert info.value.status == 400
    assert unknown in info.value.message
    assert not info.value.retryable


def test_region_comes_from_each_requests_ca_arn(backend: AwsBackend, ca_east: str, ca_west: str) -> None:
    # moto keeps each region's CAs apart: a call sent to the wrong region finds no CA.
    issuers = {}
    for ca in (ca_east, ca_west):
        csr, _ = make_csr(f"svc-{region_of(ca)}.example")
        bundle = backend.get_certificate(ca, backend.issue_certificate(issue_request(ca, csr)))
        issuers[region_of(ca)] = common_name(
            x509.load_pem_x509_certificate(bundle.certificate.encode()).issuer
        )

    assert issuers == {"us-east-1": "pca-batch test root east", "us-west-2": "pca-batch test root west"}
    assert backend.describe_certificate_authority(ca_west).status == "ACTIVE"


def test_region_option_overrides_the_arns_region(moto: str, ca_east: str) -> None:
    west_only = AwsBackend(region="us-west-2", endpoint_url=moto)
    try:
        with pytest.raises(BackendError) as info:
            west_only.describe_certificate_authority(ca_east)
    finally:
        west_only.close()
    assert info.value.code == "ResourceNotFoundException"


def test_an_arn_without_a_region_and_no_region_given_is_a_usage_error(backend: AwsBackend) -> None:
    with pytest.raises(UsageError, match="no AWS region"):
        backend.describe_certificate_authority("arn:aws:acm-pca::123456789012:certificate-authority/x")


@pytest.mark.parametrize(
    ("faults", "code", "status", "reached_moto"),
    [
        (Faults(throttle=1.0), "ThrottlingException", 400, 0),
        (Faults(server_error=1.0), "InternalFailure", 500, 0),
        (Faults(slow=1.0, slow_seconds=0.8), "ReadTimeout", None, 1),
        (Faults(drop=1.0), "ConnectionError", None, 1),
    ],
    ids=["throttled", "500", "read-timeout", "dropped"],
)
def test_faults_become_retryable_backend_errors_after_exactly_one_attempt(
    moto: str, ca_east: str, faults: Faults, code: str, status: int | None, reached_moto: int
) -> None:
    csr, _ = make_csr("faulty.example")
    with FaultProxy(moto, faults) as proxy:
        backend = AwsBackend(endpoint_url=proxy.endpoint, read_timeout=0.3, connect_timeout=0.5)
        try:
            with pytest.raises(BackendError) as info:
                backend.issue_certificate(issue_request(ca_east, csr, token=f"tok-{code}"))
        finally:
            backend.close()
        stats = proxy.snapshot()

    assert info.value.code == code
    assert info.value.status == status
    assert info.value.retryable
    # botocore's own retries are off: the one attempt is all that reached the wire.
    assert stats["calls"] == {"IssueCertificate": 1}
    assert stats["issue_forwarded"].get(f"tok-{code}", 0) == reached_moto


def test_throttling_message_is_the_one_aws_sent(moto: str, ca_east: str) -> None:
    with FaultProxy(moto, Faults(throttle=1.0, operations=frozenset({"GetCertificate"}))) as proxy:
        backend = AwsBackend(endpoint_url=proxy.endpoint)
        try:
            csr, _ = make_csr("throttled-get.example")
            arn = backend.issue_certificate(issue_request(ca_east, csr))
            with pytest.raises(BackendError) as info:
                backend.get_certificate(ca_east, arn)
        finally:
            backend.close()
    assert (info.value.code, info.value.message) == ("ThrottlingException", "Rate exceeded")


def test_a_timed_out_issue_repeated_with_its_token_gives_the_first_certificate(
    moto: str, ca_east: str
) -> None:
    csr, key = make_csr("retried.example")
    request = issue_request(ca_east, csr, token="tok-retried-once")
    faults = Faults(
        slow=1.0, slow_seconds=0.8, max_faults_per_key=1, operations=frozenset({"IssueCertificate"})
    )
    with FaultProxy(moto, faults) as proxy:
        backend = AwsBackend(endpoint_url=proxy.endpoint, read_timeout=0.3)
        try:
            with pytest.raises(BackendError, match="ReadTimeout"):
                backend.issue_certificate(request)
            arn = backend.issue_certificate(request)  # what the runner does: same request, same token
            again = backend.issue_certificate(request)
            bundle = backend.get_certificate(ca_east, arn)
        finally:
            backend.close()
        stats = proxy.snapshot()

    assert again == arn
    assert stats["issue_calls"]["tok-retried-once"] == 3
    assert stats["issue_forwarded"]["tok-retried-once"] == 1
    assert stats["deduplicated"] == 2
    cert = x509.load_pem_x509_certificate(bundle.certificate.encode())
    assert spki(cert.public_key()) == spki(key.public_key())


def test_request_in_progress_is_passed_on_until_the_certificate_is_there(moto: str, ca_east: str) -> None:
    with FaultProxy(moto, Faults(in_progress_polls=2)) as proxy:
        backend = AwsBackend(endpoint_url=proxy.endpoint)
        try:
            csr, _ = make_csr("in-progress.example")
            arn = backend.issue_certificate(issue_request(ca_east, csr))
            codes = []
            for _ in range(2):
                with pytest.raises(BackendError) as info:
                    backend.get_certificate(ca_east, arn)
                codes.append((info.value.code, info.value.retryable))
            bundle = backend.get_certificate(ca_east, arn)
        finally:
            backend.close()
    assert codes == [("RequestInProgressException", False)] * 2
    assert "BEGIN CERTIFICATE" in bundle.certificate


def test_nothing_listening_is_a_retryable_connection_error(ca_east: str) -> None:
    backend = AwsBackend(endpoint_url=f"http://127.0.0.1:{free_port()}", connect_timeout=0.5)
    try:
        with pytest.raises(BackendError) as info:
            backend.describe_certificate_authority(ca_east)
    finally:
        backend.close()
    assert info.value.code == "ConnectionError"
    assert info.value.retryable


def test_a_request_botocore_refuses_is_not_sent_and_not_retryable(moto: str, ca_east: str) -> None:
    with FaultProxy(moto) as proxy:
        backend = AwsBackend(endpoint_url=proxy.endpoint)
        try:
            with pytest.raises(BackendError) as info:
                backend.issue_certificate(
                    {"CertificateAuthorityArn": ca_east, "SigningAlgorithm": "SHA256WITHRSA"}
                )
        finally:
            backend.close()
        stats = proxy.snapshot()
    assert info.value.code == "ValidationException"
    assert "Csr" in info.value.message
    assert not info.value.retryable
    assert stats["calls"] == {}


def test_no_credentials_is_one_clear_credentials_error(
    moto: str, ca_east: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_env(monkeypatch, aws_test_env(tmp_path, credentials=False))
    backend = AwsBackend(endpoint_url=moto)
    try:
        with pytest.raises(CredentialsError) as checked:
            backend.check_credentials()
        with pytest.raises(CredentialsError) as called:
            backend.describe_certificate_authority(ca_east)
    finally:
        backend.close()
    assert str(checked.value) == str(called.value) == NO_CREDENTIALS
    assert checked.value.exit_code == EXIT_INVALID


def test_a_named_profile_supplies_the_credentials(
    moto: str, ca_east: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_env(monkeypatch, aws_test_env(tmp_path, credentials=False))
    (tmp_path / "aws-credentials").write_text(
        "[ci]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n"
    )
    backend = AwsBackend(profile="ci", endpoint_url=moto)
    try:
        backend.check_credentials()
        assert backend.describe_certificate_authority(ca_east).status == "ACTIVE"
    finally:
        backend.close()
    with pytest.raises(CredentialsError, match="'nope'"):
        AwsBackend(profile="nope", endpoint_url=moto)


def test_threads_share_one_backend_and_reuse_its_pooled_connections(
    moto: str, ca_east: str, ca_west: str
) -> None:
    workers, per_worker = 16, 4
    csrs = [make_csr(f"pool-{i}.example") for i in range(workers * per_worker)]
    with FaultProxy(moto) as proxy:
        backend = AwsBackend(endpoint_url=proxy.endpoint, max_pool_connections=workers)
        backend.prepare([ca_east, ca_west])
        barrier = threading.Barrier(workers)

        def work(w: int) -> list[tuple[str, str, bytes]]:
            barrier.wait()
            out = []
            for i in range(w * per_worker, (w + 1) * per_worker):
                ca = ca_east if i % 2 else ca_west
                arn = backend.issue_certificate(issue_request(ca, csrs[i][0], token=f"tok-pool-{i}"))
                cert = backend.get_certificate(ca, arn).certificate
                out.append((ca, arn, spki(x509.load_pem_x509_certificate(cert.encode()).public_key())))
            return out

        try:
            with ThreadPoolExecutor(workers) as pool:
                results = [r for rs in pool.map(work, range(workers)) for r in rs]
        finally:
            backend.close()
        stats = proxy.snapshot()

    assert len({arn for _, arn, _ in results}) == workers * per_worker
    assert [key for _, _, key in results] == [spki(k.public_key()) for _, k in csrs]
    assert all(arn.startswith(ca + "/") for ca, arn, _ in results)
    assert stats["calls"] == {"IssueCertificate": 64, "GetCertificate": 64}
    # Keep-alive connections from one pool per region, not one connection per call.
    assert stats["connections"] <= 2 * workers


@pytest.mark.parametrize(
    ("exc", "code", "retryable"),
    [
        (
            SSLError(endpoint_url="https://pca.example", error=OSError("certificate verify failed")),
            "SSLError",
            False,
        ),
        (IncompleteReadError(actual_bytes=10, expected_bytes=100), "ConnectionError", True),
        (EndpointConnectionError(endpoint_url="https://pca.example"), "ConnectionError", True),
        (ConnectTimeoutError(endpoint_url="https://pca.example"), "ConnectTimeout", True),
    ],
    ids=["ssl", "incomplete-read", "endpoint-connection", "connect-timeout"],
)
def test_network_failures_translate_to_backend_errors(exc: Exception, code: str, retryable: bool) -> None:
    error = translate(exc)
    assert isinstance(error, BackendError)
    assert (error.code, error.retryable) == (code, retryable)


def test_partial_credentials_are_a_credentials_error_and_unknown_exceptions_stay_bugs() -> None:
    partial = translate(PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"))
    assert isinstance(partial, CredentialsError)
    assert "AWS_SECRET_ACCESS_KEY" in str(partial)
    bug = KeyError("CertificateArn")
    assert translate(bug) is bug



def moto_revocations(ca_arn: str) -> dict[str, dict[str, object]]:
    """What moto's CA (in this process: the server runs in a thread) recorded as revoked, by serial."""
    from moto.acmpca.models import acmpca_backends

    _, _, _, region, account, _ = ca_arn.split(":", 5)
    revoked: dict[str, dict[str, object]] = (
        acmpca_backends[account][region].certificate_authorities[ca_arn].revoked_certificates
    )
    return revoked


def test_revoke_sends_the_serial_as_the_aws_cli_does_and_the_reason(backend: AwsBackend, ca_east: str) -> None:
    csr, _ = make_csr("revoked.example")
    arn = backend.issue_certificate(issue_request(ca_east, csr))
    serial = arn.rsplit("/", 1)[1]
    backend.revoke_certificate(ca_east, serial, "KEY_COMPROMISE")
    colons = ":".join(serial[i : i + 2] for i in range(0, 32, 2))
    assert moto_revocations(ca_east)[colons]["revocation_reason"] == "KEY_COMPROMISE"


def test_revoke_answered_request_already_processed_is_done(
    backend: AwsBackend, ca_east: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto never answers RequestAlreadyProcessedException; AWS does on a second revoke: teach moto."""
    from moto.acmpca.models import ACMPCABackend
    from moto.core.exceptions import JsonRESTError

    real = ACMPCABackend.revoke_certificate

    def as_aws(
        self: ACMPCABackend, certificate_authority_arn: str, certificate_serial: str, revocation_reason: str
    ) -> None:
        ca = self.describe_certificate_authority(certificate_authority_arn)
        if certificate_serial in ca.revoked_certificates:
            raise JsonRESTError("RequestAlreadyProcessedException", "The request has already been completed.")
        real(self, certificate_authority_arn, certificate_serial, revocation_reason)

    monkeypatch.setattr(ACMPCABackend, "revoke_certificate", as_aws)
    csr, _ = make_csr("twice.example")
    serial = backend.issue_certificate(issue_request(ca_east, csr)).rsplit("/", 1)[1]
    backend.revoke_certificate(ca_east, serial, "SUPERSEDED")
    backend.revoke_certificate(ca_east, serial, "KEY_COMPROMISE")  # no error: revoked already is done
    colons = ":".join(serial[i : i + 2] for i in range(0, 32, 2))
    assert moto_revocations(ca_east)[colons]["revocation_reason"] == "SUPERSEDED"


def test_revoke_on_a_ca_that_does_not_exist_is_resource_not_found(backend: AwsBackend, ca_east: str) -> None:
    missing = ca_east.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    with pytest.raises(BackendError) as info:
        backend.revoke_certificate(missing, "01:02", "UNSPECIFIED")
    assert info.value.code == "ResourceNotFoundException"
