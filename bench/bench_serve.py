"""Issue 14's speed goal: `pca-batch serve` against moto's server, and against the local backend
called in-process, on the same work in the same run.

The work: certificates each issued (IssueCertificate) then fetched (GetCertificate) from 32
threads sharing one boto3 client (botocore's standard client: one attempt per call, a pool of 32
connections), each with its own EC P-256 CSR; the CA is RSA 2048 signing SHA256WITHRSA
everywhere, since moto's CAs are always RSA 2048 (the same signature work for all). Each server
runs as its own process (its own interpreter and GIL), its CA made through the API as a user
makes one, and warmed before the clock starts:

- `python -m pca_batch serve`, with its bytecode compiled as an installed copy has it: N
  certificates (2,000 by default);
- moto's server as its users run it (``python -m moto.server``): it issues a handful of
  certificates a second (it loads and checks the CA's RSA key twice per IssueCertificate), so
  it is timed on a sample (200 by default) and its rate compared; the bench says so;
- for reference, not a goal: moto as this project's tests run it (tests/support/moto_server:
  the CA key cached, keep-alive connections), on the N certificates.

The in-process figure is the LocalBackend (issue_certificate + get_certificate) from 32 threads
of this process, on a store of its own, on the N certificates.

Goals: serve at least 5x moto's server, and at least 0.5x the in-process local backend
(certificates per second). The boto3 client's own cost is in every server figure and not in
the in-process one: botocore spends more CPU per call than serve does, and on a two-core host it
shares the CPUs with the server. Prints every figure, the CPU each process used and the ratios;
exits 1 when a goal is missed.

    python -m bench.bench_serve [--entries 2000] [--moto-sample 200] [--threads 32]

Nothing here talks to any address other than 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench._gen import WORK, Goals, installed_env, machine_speed, make_csrs
from pca_batch.backends.local.backend import LocalBackend, ensure_authorities
from pca_batch.model import AuthoritySpec
from tests.support.moto_server import aws_test_env, free_port, moto_process

SERVE_TARGET = 5.0
IN_PROCESS_TARGET = 0.5
REGION = "us-east-1"
WARM_UP = 200
ROOT_TEMPLATE = "arn:aws:acm-pca:::template/RootCACertificate/V1"
CA_CONFIG = {"KeyAlgorithm": "RSA_2048", "SigningAlgorithm": "SHA256WITHRSA", "Subject": {"CommonName": "Bench CA"}}
REPO = Path(__file__).resolve().parent.parent
LOCAL_ARN = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/0be0c0a0-5e4e-4000-8000-000000000014"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: float
    entries: int
    client_cpu: float  # this process
    server_cpu: float | None  # the server's process (None: in-process)

    @property
    def rate(self) -> float:
        return self.entries / self.seconds

    def line(self) -> str:
        server = "" if self.server_cpu is None else f", server CPU {self.server_cpu:6.2f} s"
        return (
            f"{self.name:<22} {self.rate:8.1f} certificates/s  ({self.entries} in {self.seconds:6.2f} s; "
            f"this process's CPU {self.client_cpu:6.2f} s{server})"
        )


def acm_client(endpoint: str, threads: int) -> Any:
    return boto3.session.Session().client(
        "acm-pca",
        region_name=REGION,
        endpoint_url=endpoint,
        config=Config(max_pool_connections=threads, retries={"total_max_attempts": 1, "mode": "standard"}),
    )


def activate(client: Any) -> str:
    """A root CA made as a user makes one on AWS: create, CSR, its own certificate, import."""
    arn: str = client.create_certificate_authority(
        CertificateAuthorityConfiguration=CA_CONFIG, CertificateAuthorityType="ROOT", UsageMode="GENERAL_PURPOSE"
    )["CertificateAuthorityArn"]
    csr = client.get_certificate_authority_csr(CertificateAuthorityArn=arn)["Csr"]
    issued = client.issue_certificate(
        CertificateAuthorityArn=arn, Csr=csr.encode(), SigningAlgorithm="SHA256WITHRSA", TemplateArn=ROOT_TEMPLATE,
        Validity={"Value": 10, "Type": "YEARS"},
    )["CertificateArn"]  # fmt: skip
    pem = client.get_certificate(CertificateAuthorityArn=arn, CertificateArn=issued)["Certificate"]
    client.import_certificate_authority_certificate(CertificateAuthorityArn=arn, Certificate=pem.encode())
    return arn


def run_threads(work: Callable[[bytes], None], csrs: list[bytes], threads: int) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds of ``work`` over every CSR from ``threads`` threads."""
    cpu, started = own_cpu(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(work, csrs):
            pass
    return time.perf_counter() - started, own_cpu() - cpu


def over_the_wire(  # noqa: PLR0913 - the bench's one call, its knobs spelled out
    name: str, endpoint: str, pid: int, csrs: list[bytes], threads: int, *, warm_up: int = WARM_UP
) -> Timing:
    """The first ``warm_up`` CSRs warm the server up; the rest are timed."""
    client = acm_client(endpoint, threads)
    try:
        ca = activate(client)

        def one(csr: bytes) -> None:
            arn = client.issue_certificate(
                CertificateAuthorityArn=ca, Csr=csr, SigningAlgorithm="SHA256WITHRSA",
                Validity={"Value": 7, "Type": "DAYS"},
            )["CertificateArn"]  # fmt: skip
            answer = client.get_certificate(CertificateAuthorityArn=ca, CertificateArn=arn)
            assert answer["Certificate"].startswith("-----BEGIN CERTIFICATE-----")

        run_threads(one, csrs[:warm_up], threads)
        server = cpu_seconds(pid)
        seconds, mine = run_threads(one, csrs[warm_up:], threads)
        return Timing(name, seconds, len(csrs) - warm_up, mine, cpu_seconds(pid) - server)
    finally:
        client.close()


def in_process(folder: Path, csrs: list[bytes], threads: int) -> Timing:
    spec = AuthoritySpec(arn=LOCAL_ARN, common_name="Bench CA", key_algorithm="RSA_2048")
    ensure_authorities(folder, [spec])
    backend = LocalBackend(folder)
    try:

        def one(csr: bytes) -> None:
            arn = backend.issue_certificate(
                {"CertificateAuthorityArn": LOCAL_ARN, "Csr": csr, "SigningAlgorithm": "SHA256WITHRSA",
                 "Validity": {"Value": 7, "Type": "DAYS"}}
            )  # fmt: skip
            assert backend.get_certificate(LOCAL_ARN, arn).certificate.startswith("-----BEGIN CERTIFICATE-----")

        run_threads(one, csrs[:WARM_UP], threads)
        seconds, mine = run_threads(one, csrs[WARM_UP:], threads)
        return Timing("local, in-process", seconds, len(csrs) - WARM_UP, mine, None)
    finally:
        backend.close()


@contextmanager
def stock_moto(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """moto's server as `moto_server` runs it: werkzeug, one connection per request, no changes."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)


@contextmanager
def serve_process(store: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    with listening([sys.executable, "-m", "pca_batch", "serve", "--store", str(store)], env) as found:
        yield found


@contextmanager
def null_server(env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """bench._null_acmpca: canned answers, no work: the boto3 client's own ceiling."""
    with listening([sys.executable, "-m", "bench._null_acmpca"], {**env, "PYTHONPATH": str(REPO)}) as found:
        yield found


@contextmanager
def listening(command: list[str], env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """A server process that prints ``listening on URL`` first; stopped with SIGTERM."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", process.stdout.readline())
        if found is None:
            raise RuntimeError(f"{command[2]} did not start")
        threading.Thread(target=process.stdout.read, daemon=True).start()  # drain whatever else it prints
        yield found.group(1), process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=2000, help="certificates timed per target (default 2000)")
    parser.add_argument("--moto-sample", type=int, default=200, help="certificates timed on moto's server (200)")
    parser.add_argument("--threads", type=int, default=32)
    args = parser.parse_args(argv)
    csrs = [p.read_bytes() for p in make_csrs(WORK / "serve-csr", args.entries + WARM_UP)]
    sample = csrs[: WARM_UP // 10] + csrs[-args.moto_sample :]
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    changes = aws_test_env(folder / "aws")
    for key, value in changes.items():  # this process's boto3: dummy keys, loopback only
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    env = installed_env()
    print(machine_speed(), flush=True)
    print(f"{args.entries} certificates per target (after {WARM_UP} to warm up), {args.threads} threads, "
          "RSA 2048 CA, EC P-256 CSRs", flush=True)  # fmt: skip
    try:
        local = in_process(folder / "local-store", csrs, args.threads)
        print(local.line(), flush=True)
        with serve_process(folder / "serve-store", env) as (endpoint, pid):
            served = over_the_wire("pca-batch serve", endpoint, pid, csrs, args.threads)
        print(served.line(), flush=True)
        with null_server(env) as (endpoint, pid):
            floor = over_the_wire("null server (floor)", endpoint, pid, csrs, args.threads)
        print(floor.line() + "  <- the client's ceiling: canned answers, no work", flush=True)
        with stock_moto(env) as (endpoint, pid):
            mocked = over_the_wire("moto server", endpoint, pid, sample, args.threads, warm_up=WARM_UP // 10)
        print(mocked.line() + "  <- a sample", flush=True)
        with moto_process(env) as moto:
            quick = over_the_wire("moto, tests' speed-ups", moto.endpoint, moto.pid, csrs, args.threads)
        print(quick.line() + "  <- reference only", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"reference: serve / moto with the tests' speed-ups {served.rate / quick.rate:8.2f}", flush=True)
    print(f"reference: serve / null server (the most a boto3 client reaches here) {served.rate / floor.rate:8.2f}; "
          f"in-process / null server {local.rate / floor.rate:8.2f}", flush=True)
    goals = Goals()
    versus_moto = served.rate / mocked.rate
    versus_local = served.rate / local.rate
    goals.check(f"ratio serve/moto       {versus_moto:8.2f}   (target >= {SERVE_TARGET})", versus_moto >= SERVE_TARGET)
    in_process_line = f"ratio serve/in-process {versus_local:8.2f}   (target >= {IN_PROCESS_TARGET})"
    goals.check(in_process_line, versus_local >= IN_PROCESS_TARGET)
    return goals.exit_status()


if __name__ == "__main__":
    raise SystemExit(main())
