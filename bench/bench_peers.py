"""The local CA against its peers (issue 16): whole processes, median of 3, interleaved.

For EC P-256 (CSRs and CA) and again for RSA-2048, on the same CSRs, one PEM
file per certificate:

- ``pca-batch apply`` of N local entries (2,000; with --large also 20,000): a fresh
  store and output folder each run, every durability promise kept (CSR signatures
  checked, store record, journal line, outputs fsynced and renamed);
- the floor: one Python process that reads and verifies each CSR, signs with
  ``cryptography`` (BasicConstraints, SKI, AKI, KeyUsage, EKU, SAN) and writes each
  file with an fsync;
- ``cfssl serve`` (Debian's golang-cfssl; installed with apt-get when missing and this
  is root, else the row is skipped with a message) with one client process keeping
  one HTTP connection alive, writing each certificate it gets (without an fsync);
  the server is started before the timing, as a service would be.

Each figure is the median of ``--runs`` runs (3), the tools taking turns within each
round. Then, with another process rewriting a 512 MiB file the whole time, apply and
the floor again: apply must slow down no more than the floor does (pca-batch flushes
its own files, never the whole file system).

Goals: apply >= 1.0x the floor and >= 1.3x cfssl serve, at every size and key type;
slowdown under the writer no worse than the floor's. Exits 1 on a miss.

Last, for information, apply at --concurrency 1, 2, 16, 128 and 256.

    python -m bench.bench_peers [--entries 2000] [--large] [--runs 3] [--no-writer] [--no-sweep] [--keys ec,rsa]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bench._gen import CA_ARN, WORK, Goals, installed_env, machine_speed, service_csr_pem

FLOOR_GOAL = 1.0
CFSSL_GOAL = 1.3
WRITER_BYTES = 512 << 20
TRASH = WORK / "peers-trash"
KEYS = {  # key type -> (the local CA's KeyAlgorithm, SigningAlgorithm)
    "ec": ("EC_prime256v1", "SHA256WITHECDSA"),
    "rsa": ("RSA_2048", "SHA256WITHRSA"),
}


# -- inputs ------------------------------------------------------------------------------------


RSA_KEYS = 64  # RSA keys are slow to make: the RSA CSRs take turns among this many


def make_csrs(folder: Path, count: int, kind: str) -> Path:
    """``count`` distinct CSRs (each its own name and SAN; EC: each its own key), written once and reused."""
    folder.mkdir(parents=True, exist_ok=True)
    rsa_keys: list[rsa.RSAPrivateKey] = []
    for i in range(count):
        path = folder / f"svc-{i:06d}.csr"
        if path.exists():
            continue
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if kind == "ec":
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            if len(rsa_keys) < RSA_KEYS:
                rsa_keys.append(rsa.generate_private_key(65537, 2048))
            key = rsa_keys[i % len(rsa_keys)] if len(rsa_keys) == RSA_KEYS else rsa_keys[-1]
        path.write_bytes(service_csr_pem(i, key))
    return folder


def write_manifest(folder: Path, csrs: Path, count: int, kind: str) -> Path:
    key_algorithm, signing = KEYS[kind]
    lines = [
        "version: 1",
        "backend:",
        "  type: local",
        "  store: .pca-batch",
        "  authorities:",
        f"    - arn: {CA_ARN}",
        "      common_name: Bench Peers CA",
        f"      key_algorithm: {key_algorithm}",
        "defaults:",
        f"  CertificateAuthorityArn: {CA_ARN}",
        f"  SigningAlgorithm: {signing}",
        "  Validity: {Value: 90, Type: DAYS}",
        "certificates:",
    ]
    for i in range(count):
        lines += [f"  - name: svc-{i:06d}", f"    Csr: file://{csrs}/svc-{i:06d}.csr",
                  f"    output: {{certificate: out/svc-{i:06d}.pem}}"]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_ca(folder: Path, kind: str) -> tuple[Path, Path]:
    """A CA certificate and key (PEM files) for the floor and cfssl."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / f"ca-{kind}.pem", folder / f"ca-{kind}-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Bench Peers {kind.upper()} CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


# -- the floor: one process, verify, sign, write with an fsync --------------------------------


def floor(csrs: Path, out: Path, ca_cert: Path, ca_key: Path) -> int:
    """The single-process floor (run as ``python -m bench.bench_peers --floor ...``)."""
    cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(csrs.glob("*.csr")):
        csr = x509.load_pem_x509_csr(path.read_bytes())
        if not csr.is_signature_valid:
            raise SystemExit(f"{path}: bad signature")
        public_key = csr.public_key()
        now = datetime.now(UTC)
        built = (
            x509.CertificateBuilder().subject_name(csr.subject).issuer_name(cert.subject).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=60)).not_valid_after(now + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(aki, critical=False)
            .add_extension(usage, critical=True)
            .add_extension(eku, critical=False)
            .add_extension(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value, critical=False)
            .sign(key, hashes.SHA256())
        )
        with open(out / (path.stem + ".pem"), "wb") as fh:
            fh.write(built.public_bytes(serialization.Encoding.PEM))
            fh.flush()
            os.fsync(fh.fileno())
    return 0


# -- cfssl serve, one keep-alive client -------------------------------------------------------


def cfssl_binary() -> str | None:
    found = shutil.which("cfssl")
    if found is not None:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    print("installing golang-cfssl with apt-get ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "golang-cfssl"]):
        if subprocess.run(argv, env=env, capture_output=True).returncode != 0:
            return None
    return shutil.which("cfssl")


def cfssl_client(csrs: Path, out: Path, port: int) -> int:
    """The cfssl row's client (``python -m bench.bench_peers --cfssl-client ...``): one HTTP
    connection kept alive, one sign request per CSR, each certificate written to a file."""
    out.mkdir(parents=True, exist_ok=True)
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for path in sorted(csrs.glob("*.csr")):
        body = json.dumps({"certificate_request": path.read_text()})
        conn.request("POST", "/api/v1/cfssl/sign", body=body, headers={"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        if not answer.get("success"):
            raise SystemExit(f"cfssl refused {path.name}: {answer.get('errors')}")
        (out / (path.stem + ".pem")).write_text(answer["result"]["certificate"])
    return 0


class Cfssl:
    """A running ``cfssl serve`` for one CA."""

    def __init__(self, binary: str, folder: Path, ca_cert: Path, ca_key: Path) -> None:
        config = folder / "cfssl-config.json"
        config.write_text(json.dumps({"signing": {"default": {
            "expiry": "2160h", "usages": ["digital signature", "key encipherment", "server auth", "client auth"]}}}))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [binary, "serve", "-address", "127.0.0.1", "-port", str(self.port), "-ca", str(ca_cert),
             "-ca-key", str(ca_key), "-config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("cfssl serve did not start listening")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- timing -----------------------------------------------------------------------------------


def timed(argv: list[str], env: dict[str, str], cwd: Path, produced: Path, count: int) -> float:
    """Certificates a second of one whole process; it must exit 0 and write ``count`` files."""
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    written = sum(1 for _ in produced.glob("*.pem")) if produced.exists() else 0
    if done.returncode != 0 or written != count:
        tail = done.stderr.decode(errors="replace")[-1500:]
        raise RuntimeError(f"{argv[:4]} exited {done.returncode} with {written}/{count} files: {tail}")
    return count / seconds


class Writer:
    """Another process rewriting a 512 MiB file, over and over, while it runs."""

    def __init__(self, path: Path) -> None:
        code = (
            "import os, sys\n"
            f"block = b'w' * (8 << 20)\n"
            "while True:\n"
            "    with open(sys.argv[1], 'wb') as fh:\n"
            f"        for _ in range({WRITER_BYTES} // len(block)):\n"
            "            fh.write(block)\n"
        )
        self.path = path
        self.process = subprocess.Popen([sys.executable, "-c", code, str(path)])
        time.sleep(1.0)  # under way before the timing starts

    def stop(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.path.unlink(missing_ok=True)


class Case:
    """One key type at one size: the folders and how to run each tool."""

    def __init__(self, kind: str, count: int, env: dict[str, str]) -> None:
        self.kind, self.count, self.env = kind, count, env
        self.root = WORK / f"peers-{kind}-{count}"
        self.csrs = make_csrs(WORK / f"peers-csr-{kind}", count, kind)
        if count < sum(1 for _ in self.csrs.glob("*.csr")):  # a subset: its own folder of links
            subset = self.root / "csr"
            if subset.exists():
                shutil.rmtree(subset)
            subset.mkdir(parents=True)
            for i in range(count):
                (subset / f"svc-{i:06d}.csr").symlink_to(self.csrs / f"svc-{i:06d}.csr")
            self.csrs = subset
        self.manifest = write_manifest(self.root, self.csrs, count, kind)
        self.ca_cert, self.ca_key = make_ca(WORK, kind)

    def _fresh(self, *names: str) -> None:
        """Out of the way, but not removed until the bench ends: ext4 makes every file created
        soon after thousands were removed pay for skipping their inodes, which would make each
        run pay for the one before (and the figures say more about the order than the tools)."""
        TRASH.mkdir(parents=True, exist_ok=True)
        for name in names:
            if (self.root / name).exists():
                (self.root / name).rename(TRASH / f"{len(list(TRASH.iterdir())):06d}")

    def apply(self, *extra: str) -> float:
        self._fresh(".pca-batch", "out")
        return timed([sys.executable, "-m", "pca_batch", "apply", str(self.manifest), *extra], self.env, self.root,
                     self.root / "out", self.count)

    def floor(self) -> float:
        self._fresh("floor")
        argv = [sys.executable, "-m", "bench.bench_peers", "--floor", str(self.csrs), str(self.root / "floor"),
                str(self.ca_cert), str(self.ca_key)]
        return timed(argv, self.env, self.root, self.root / "floor", self.count)

    def cfssl(self, server: Cfssl) -> float:
        self._fresh("cfssl")
        argv = [sys.executable, "-m", "bench.bench_peers", "--cfssl-client", str(self.csrs), str(self.root / "cfssl"),
                str(server.port)]
        return timed(argv, self.env, self.root, self.root / "cfssl", self.count)


def medians(runs: int, tools: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Each tool's median rate over ``runs`` rounds, the tools taking turns within a round."""
    rates: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(runs):
        for name, tool in tools.items():
            rates[name].append(tool())
    return {name: statistics.median(values) for name, values in rates.items()}


def measure(case: Case, runs: int, cfssl: str | None, goals: Goals) -> None:
    tools: dict[str, Callable[[], float]] = {"apply": case.apply, "floor": case.floor}
    server = Cfssl(cfssl, case.root, case.ca_cert, case.ca_key) if cfssl else None
    try:
        if server is not None:
            tools["cfssl"] = lambda: case.cfssl(server)
        got = medians(runs, tools)
    finally:
        if server is not None:
            server.stop()
    label = f"{case.kind.upper()} {case.count:,}"
    print(f"[{label}] pca-batch apply   {got['apply']:8.0f} certificates/s", flush=True)
    print(f"[{label}] floor (fsync)     {got['floor']:8.0f} certificates/s", flush=True)
    goals.check(f"[{label}] apply / floor       {got['apply'] / got['floor']:6.2f}x  (goal >= {FLOOR_GOAL})",
                got["apply"] >= FLOOR_GOAL * got["floor"])
    if "cfssl" in got:
        print(f"[{label}] cfssl serve       {got['cfssl']:8.0f} certificates/s", flush=True)
        goals.check(f"[{label}] apply / cfssl serve {got['apply'] / got['cfssl']:6.2f}x  (goal >= {CFSSL_GOAL})",
                    got["apply"] >= CFSSL_GOAL * got["cfssl"])
    else:
        print(f"[{label}] cfssl serve       skipped: no cfssl (Debian's golang-cfssl) and it could not be installed")


def sweep(case: Case, runs: int) -> None:
    """What --concurrency changes (1: one entry at a time, no batch; 16: batches of 8; 128: batches
    of 64; 256, the default: batches of 128), for the closing note; no goal."""
    levels = ("1", "2", "16", "128", "256")
    got = medians(runs, {level: lambda level=level: case.apply("--concurrency", level) for level in levels})  # type: ignore[misc]
    label = f"{case.kind.upper()} {case.count:,}"
    print(f"[{label}] apply by --concurrency: " + ", ".join(f"{level}: {got[level]:.0f}/s" for level in levels),
          flush=True)


def under_writer(case: Case, runs: int, goals: Goals) -> None:
    quiet = medians(runs, {"apply": case.apply, "floor": case.floor})
    writer = Writer(WORK / "writer.bin")
    try:
        busy = medians(runs, {"apply": case.apply, "floor": case.floor})
    finally:
        writer.stop()
    slow_apply, slow_floor = quiet["apply"] / busy["apply"], quiet["floor"] / busy["floor"]
    label = f"{case.kind.upper()} {case.count:,}, a 512 MiB writer"
    print(f"[{label}] apply {busy['apply']:.0f}/s (alone {quiet['apply']:.0f}/s), "
          f"floor {busy['floor']:.0f}/s (alone {quiet['floor']:.0f}/s)", flush=True)
    goals.check(f"[{label}] slowdown apply {slow_apply:.2f}x, floor {slow_floor:.2f}x  (goal: apply's <= floor's)",
                slow_apply <= slow_floor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--large", action="store_true", help="also 20,000 entries (minutes)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keys", default="ec,rsa")
    parser.add_argument("--no-writer", action="store_true", help="skip the run under a concurrent writer")
    parser.add_argument("--no-cfssl", action="store_true")
    parser.add_argument("--no-sweep", action="store_true", help="skip apply at --concurrency 1, 2, 16, 128 and 256")
    parser.add_argument("--floor", nargs=4, metavar=("CSRS", "OUT", "CA_CERT", "CA_KEY"), help=argparse.SUPPRESS)
    parser.add_argument("--cfssl-client", nargs=3, metavar=("CSRS", "OUT", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor:
        return floor(*(Path(a) for a in args.floor))
    if args.cfssl_client:
        csrs, out, port = args.cfssl_client
        return cfssl_client(Path(csrs), Path(out), int(port))

    print(machine_speed(), flush=True)
    shutil.rmtree(TRASH, ignore_errors=True)
    env = installed_env()
    cfssl = None if args.no_cfssl else cfssl_binary()
    goals = Goals()
    sizes = [args.entries] + ([20000] if args.large else [])
    try:
        for kind in [k.strip() for k in args.keys.split(",") if k.strip()]:
            for count in sizes:
                measure(Case(kind, count, env), args.runs, cfssl, goals)
        if not args.no_writer:
            under_writer(Case("ec", args.entries, env), args.runs, goals)
        if not args.no_sweep:
            sweep(Case("ec", args.entries, env), args.runs)
    finally:
        shutil.rmtree(TRASH, ignore_errors=True)
    print(machine_speed(), flush=True)
    return goals.exit_status()


if __name__ == "__main__":
    raise SystemExit(main())
