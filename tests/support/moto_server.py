"""A moto AWS Private CA server on loopback, for the aws backend's tests and bench.

moto's server speaks the real JSON 1.1 wire protocol, so botocore and the AWS
CLI talk to it over real HTTP exactly as they would to AWS. It is a test
double, not a reference for what AWS does: it ignores
IdempotencyToken, Validity and SigningAlgorithm, always signs with an RSA 2048
key, and reports every CA in SHORT_LIVED_CERTIFICATE usage mode.

Nothing here ever talks to an address other than 127.0.0.1.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.server import ThreadedMotoServer

REPO = Path(__file__).resolve().parents[2]
ROOT_TEMPLATE = "arn:aws:acm-pca:::template/RootCACertificate/V1"
# moto's CA keys are always RSA 2048, so the CAs say so and entries sign with RSA.
CA_KEY_ALGORITHM = "RSA_2048"
SIGNING_ALGORITHM = "SHA256WITHRSA"

# Variables that could send boto3 or the AWS CLI somewhere else than our loopback server.
_UNSET = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_ACM_PCA",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def aws_test_env(folder: Path, *, credentials: bool = True) -> dict[str, str | None]:
    """Environment changes for boto3 and the AWS CLI in a test: None means unset.

    Dummy keys (unless ``credentials`` is false), empty config files under
    ``folder``, no instance-metadata lookup, no proxy for loopback.
    """
    folder.mkdir(parents=True, exist_ok=True)
    config, shared = folder / "aws-config", folder / "aws-credentials"
    for path in (config, shared):
        if not path.exists():
            path.write_text("")
    env: dict[str, str | None] = dict.fromkeys(_UNSET)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "AKIDPCABATCHTEST" if credentials else None,
            "AWS_SECRET_ACCESS_KEY": "pca-batch-test-secret" if credentials else None,
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(shared),
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


def apply_env(changes: Mapping[str, str | None], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) with ``changes`` applied, for a subprocess."""
    env = dict(os.environ if base is None else base)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def patch_env(monkeypatch: pytest.MonkeyPatch, changes: Mapping[str, str | None]) -> None:
    """Apply ``changes`` (None: unset) to os.environ through ``monkeypatch``."""
    for key, value in changes.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def speed_up_moto() -> None:
    """Take two needless costs out of moto's server, so the test double is not what every timing measures.

    - Each CA keeps its key as encrypted PEM and loads it, with cryptography's
      full RSA key validation (about 40 ms), twice per IssueCertificate: the
      loaded key is cached instead (the same key, so nothing moto signs changes).
    - Each request lists moto's package folder to find the service (about 2
      ms of stat calls): the listing is cached (the folder does not change).
    - Each request lists its response class's methods with inspect.getmembers
      (some 10% of moto's CPU): the list is cached per class (classes do not change).
    """
    import moto.backends
    import moto.core.responses
    from moto.acmpca.models import CertificateAuthority

    names = getattr(moto.core.responses, "method_names_from_class", None)
    if names is not None and not getattr(names, "pca_batch_cached", False):
        cached_names = functools.cache(names)
        cached_names.pca_batch_cached = True  # type: ignore[attr-defined]
        moto.core.responses.method_names_from_class = cached_names

    listing = moto.backends.list_of_moto_modules
    if not getattr(listing, "pca_batch_cached", False):
        modules = tuple(listing())

        def cached_listing() -> Iterable[str]:
            return modules

        cached_listing.pca_batch_cached = True  # type: ignore[attr-defined]
        moto.backends.list_of_moto_modules = cached_listing

    original = CertificateAuthority.__dict__.get("key")
    if not isinstance(original, property) or original.fget is None:
        return  # moto changed; run it as it is
    if getattr(original.fget, "pca_batch_cached", False):
        return
    load = original.fget
    cache: dict[bytes, Any] = {}
    lock = threading.Lock()

    def key(self: Any) -> Any:
        with lock:
            loaded = cache.get(self.private_bytes)
            if loaded is None:
                loaded = cache[self.private_bytes] = load(self)
            return loaded

    key.pca_batch_cached = True  # type: ignore[attr-defined]
    CertificateAuthority.key = property(key)  # type: ignore[assignment,method-assign]


@contextmanager
def moto_thread() -> Iterator[str]:
    """moto's server in a thread of this process; yields its endpoint URL."""
    speed_up_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        if server._server is not None:  # stop() shuts the loop down but leaves the socket open
            server._server.server_close()


class MotoProcess(NamedTuple):
    endpoint: str
    pid: int


@contextmanager
def moto_process(env: Mapping[str, str] | None = None) -> Iterator[MotoProcess]:
    """moto's server as a separate process (for the bench: its own interpreter, its own GIL)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.moto_server", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not start on port {port}") from None
                time.sleep(0.1)
        yield MotoProcess(endpoint, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serial_certificate_arns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's certificate ARNs end in the certificate's serial (lowercase hex, 32 digits at
    least), as AWS's do; moto's end in a random UUID, which is no serial at all. pca-batch
    revoke reads the serial from the ARN, so its tests against moto need this. Only for a moto
    in this process (moto_thread); undone with ``monkeypatch``."""
    from moto.acmpca.models import CertificateAuthority

    real = CertificateAuthority.issue_certificate

    def issue_certificate(self: CertificateAuthority, csr_bytes: bytes, template_arn: str | None) -> str:
        arn = real(self, csr_bytes, template_arn)
        pem = self.issued_certificates.pop(arn)
        serial = x509.load_pem_x509_certificate(pem).serial_number
        aws_arn = f"{arn.rsplit('/', 1)[0]}/{format(serial, '032x')}"
        self.issued_certificates[aws_arn] = pem
        chains = self.issued_certificates_certificate_chains
        if arn in chains:
            chains[aws_arn] = chains.pop(arn)
        return aws_arn

    monkeypatch.setattr(CertificateAuthority, "issue_certificate", issue_certificate)


def aws_not_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto answer GetCertificate of a certificate its CA never issued as AWS does
    (ResourceNotFoundException, HTTP 400) instead of an HTML 500 page. Only for a moto in this
    process (moto_thread); undone with ``monkeypatch``."""
    from moto.acmpca.exceptions import ResourceNotFoundException
    from moto.acmpca.models import CertificateAuthority

    real = CertificateAuthority.get_certificate

    def get_certificate(self: CertificateAuthority, certificate_arn: str) -> tuple[bytes, bytes]:
        if certificate_arn not in self.issued_certificates:
            raise ResourceNotFoundException(certificate_arn)
        return real(self, certificate_arn)

    monkeypatch.setattr(CertificateAuthority, "get_certificate", get_certificate)


def honour_validity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto issue as AWS does what IssueCertificate asks: NotAfter from ``Validity`` (NotBefore
    60 minutes before the issuance) and the hash of ``SigningAlgorithm``; moto always signs
    SHA512 for 365 days from the issuance. Only for a moto in this process (moto_thread), and for
    requests that reach it as IssueCertificate; undone with ``monkeypatch``."""
    from datetime import UTC, datetime, timedelta

    from moto.acmpca.models import CertificateAuthority
    from moto.acmpca.responses import ACMPCAResponse

    from pca_batch.pki.validity import not_after

    asked = threading.local()
    real_issue = ACMPCAResponse.issue_certificate
    hashes_by_name: dict[str, hashes.SHA256 | hashes.SHA384 | hashes.SHA512] = {
        "SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512(),
    }

    def issue_certificate(self: ACMPCAResponse) -> str:
        params = json.loads(self.body)
        asked.request = params
        try:
            return real_issue(self)
        finally:
            asked.request = None

    def generate_cert(self: CertificateAuthority, subject: x509.Name, public_key: Any,
                      extensions: list[tuple[x509.ExtensionType, bool]]) -> bytes:
        request = getattr(asked, "request", None) or {}
        now = datetime.now(UTC).replace(microsecond=0)
        validity = request.get("Validity") or {"Value": 365, "Type": "DAYS"}
        digest = hashes_by_name.get(str(request.get("SigningAlgorithm", "SHA512"))[:6], hashes.SHA512())
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=60)).not_valid_after(not_after(validity, now))
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical)
        return builder.sign(self.key, digest).public_bytes(serialization.Encoding.PEM)

    monkeypatch.setattr(ACMPCAResponse, "issue_certificate", issue_certificate)
    monkeypatch.setattr(CertificateAuthority, "generate_cert", generate_cert)


def set_usage_mode(ca_arn: str, usage_mode: str) -> None:
    """Give a CA of moto's (in this process: moto_thread) the UsageMode it was created with:
    moto reports every CA as SHORT_LIVED_CERTIFICATE whatever was asked."""
    from moto.acmpca.models import acmpca_backends

    _, _, _, region, account, _ = ca_arn.split(":", 5)
    acmpca_backends[account][region].certificate_authorities[ca_arn].usage_mode = usage_mode


def moto_revocations(ca_arn: str) -> dict[str, dict[str, Any]]:
    """What moto's CA (in this process: moto_thread) recorded as revoked: per CertificateSerial
    exactly as it was sent, the RevocationReason and time."""
    from moto.acmpca.models import acmpca_backends

    _, _, _, region, account, _ = ca_arn.split(":", 5)
    revoked: dict[str, dict[str, Any]] = (
        acmpca_backends[account][region].certificate_authorities[ca_arn].revoked_certificates
    )
    return dict(revoked)


def create_active_ca(
    endpoint: str, region: str, common_name: str = "pca-batch test root", usage_mode: str = "GENERAL_PURPOSE"
) -> str:
    """Create a root CA on the server at ``endpoint`` and make it ACTIVE, as one does on AWS.

    CreateCertificateAuthority, GetCertificateAuthorityCsr, IssueCertificate of
    the CA's own CSR with the RootCACertificate template (the CA's key stays in
    the server: this is how a root is self-signed on AWS Private CA), then
    ImportCertificateAuthorityCertificate. Returns the CA ARN.
    """
    client = boto3.session.Session().client("acm-pca", region_name=region, endpoint_url=endpoint)
    try:
        arn: str = client.create_certificate_authority(
            CertificateAuthorityConfiguration={
                "KeyAlgorithm": CA_KEY_ALGORITHM,
                "SigningAlgorithm": SIGNING_ALGORITHM,
                "Subject": {"CommonName": common_name, "Organization": "pca-batch tests"},
            },
            CertificateAuthorityType="ROOT",
            UsageMode=usage_mode,
        )["CertificateAuthorityArn"]
        csr = client.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"]
        root_arn = client.issue_certificate(
            CertificateAuthorityArn=arn,
            Csr=csr.encode("ascii"),
            SigningAlgorithm=SIGNING_ALGORITHM,
            TemplateArn=ROOT_TEMPLATE,
            Validity={"Value": 10, "Type": "YEARS"},
        )["CertificateArn"]
        root_pem = client.get_certificate(CertificateAuthorityArn=arn, CertificateArn=root_arn)["Certificate"]
        root = x509.load_pem_x509_certificate(root_pem.encode("ascii"))
        root.verify_directly_issued_by(root)  # a real self-signed root, or the chain checks mean nothing
        client.import_certificate_authority_certificate(
            CertificateAuthorityArn=arn, Certificate=root_pem.encode("ascii")
        )
    finally:
        client.close()
    return arn


def make_csr(common_name: str, dns_names: tuple[str, ...] = ()) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A PEM CSR with an EC P-256 key (fast to make), subject CN and DNS SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    names = dns_names or (common_name,)
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
    )
    csr = builder.sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM), key


def issue_request(ca_arn: str, csr: bytes, token: str | None = None, days: int = 30) -> dict[str, object]:
    """An IssueCertificate input as the runner hands it to a backend (Csr as PEM bytes)."""
    request: dict[str, object] = {
        "CertificateAuthorityArn": ca_arn,
        "Csr": csr,
        "SigningAlgorithm": SIGNING_ALGORITHM,
        "Validity": {"Value": days, "Type": "DAYS"},
    }
    if token is not None:
        request["IdempotencyToken"] = token
    return request


@dataclass(frozen=True)
class AwsEntry:
    """One manifest entry for the aws backend tests: a fresh CSR is made for it."""

    name: str
    ca_arn: str
    signing_algorithm: str = SIGNING_ALGORITHM
    validity_days: int = 7  # moto says every CA is SHORT_LIVED_CERTIFICATE: 7 days passes preflight


def write_aws_manifest(
    folder: Path, endpoint: str, entries: Iterable[AwsEntry], *, region: str | None = "us-east-1"
) -> tuple[Path, dict[str, bytes]]:
    """A manifest for ``backend: {type: aws}`` at ``endpoint``, with CSR files beside it.

    Returns the manifest's path and, per entry name, the DER SubjectPublicKeyInfo of its CSR's key.
    """
    (folder / "csr").mkdir(parents=True, exist_ok=True)
    backend = f"type: aws, endpoint_url: '{endpoint}'" + (f", region: {region}" if region else "")
    lines = ["version: 1", f"backend: {{{backend}}}", "certificates:"]
    keys: dict[str, bytes] = {}
    for e in entries:
        csr, key = make_csr(f"{e.name}.example")
        (folder / "csr" / f"{e.name}.csr").write_bytes(csr)
        keys[e.name] = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        lines += [
            f"  - name: {e.name}",
            f"    CertificateAuthorityArn: {e.ca_arn}",
            f"    SigningAlgorithm: {e.signing_algorithm}",
            f"    Validity: {{Value: {e.validity_days}, Type: DAYS}}",
            f"    Csr: file://csr/{e.name}.csr",
            f"    output: {{certificate: out/{e.name}.pem, chain: out/{e.name}.chain.pem,"
            f" full_chain: out/{e.name}.full.pem}}",
        ]
    path = folder / "manifest.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, keys


if __name__ == "__main__":
    # The bench's moto process: `python -m tests.support.moto_server PORT` from the checkout. moto's application,
    # served with connections kept open (see keepalive_wsgi) and no log line per request.
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from tests.support.keepalive_wsgi import serve

    speed_up_moto()
    logging.getLogger("werkzeug").disabled = True
    os.environ.setdefault("MOTO_PORT", sys.argv[1])
    serve(DomainDispatcherApplication(create_backend_app), int(sys.argv[1]))


# -- module-scoped fixtures shared by the aws test modules (import them by name) -------------


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Dummy credentials and config files for the whole module; nothing points off loopback."""
    folder = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as mp:
        patch_env(mp, aws_test_env(folder))
        yield folder


@pytest.fixture(scope="module")
def moto(aws_env: Path) -> Iterator[str]:
    """A moto server on 127.0.0.1 for the module; its endpoint URL."""
    with moto_thread() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def ca_east(moto: str) -> str:
    return create_active_ca(moto, "us-east-1", "pca-batch test root east")


@pytest.fixture(scope="module")
def ca_west(moto: str) -> str:
    return create_active_ca(moto, "us-west-2", "pca-batch test root west")


@pytest.fixture
def quick_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The aws backend that a command opens gives up on a silent server after 0.5 s, not 30 s."""
    import pca_batch.backends.aws as aws_module

    class QuickAwsBackend(aws_module.AwsBackend):
        def __init__(self, **options: Any) -> None:
            super().__init__(**{**options, "connect_timeout": 0.5, "read_timeout": 0.5})

    monkeypatch.setattr(aws_module, "AwsBackend", QuickAwsBackend)
