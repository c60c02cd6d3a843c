from __future__ import annotations

from pathlib import Path

from conftest import CORPUS

from pca_batch import csrpool
from pca_batch.model import CsrInfo


def test_pool_and_inline_agree() -> None:
    good = (CORPUS / "csr" / "ec256.csr").read_bytes()
    bad = (CORPUS / "csr" / "altered.csr").read_bytes()
    datas = [good if i % 7 else bad for i in range(csrpool.POOL_THRESHOLD + 50)]
    pooled = csrpool.CsrChecker(len(datas))
    inline = csrpool.CsrChecker(1)
    for data in datas:
        pooled.add(data)
        inline.add(data)
    a, b = pooled.results(), inline.results()
    assert a == b and len(a) == len(datas)
    assert isinstance(a[1], CsrInfo) and isinstance(a[0], str) and "signature" in a[0]


def test_large_manifest_reports_bad_csr_at_its_line(tmp_path: Path, cli) -> None:
    from conftest import CA_ARN

    (tmp_path / "good.csr").write_bytes((CORPUS / "csr" / "ec256.csr").read_bytes())
    (tmp_path / "bad.csr").write_bytes((CORPUS / "csr" / "altered.csr").read_bytes())
    lines = [
        "version: 1",
        "defaults:",
        f"  CertificateAuthorityArn: {CA_ARN}",
        "  SigningAlgorithm: SHA256WITHECDSA",
        "  Validity: {Value: 1, Type: DAYS}",
        "certificates:",
    ]
    for i in range(csrpool.POOL_THRESHOLD + 10):
        lines += [f"  - name: e{i}", f"    Csr: file://{'bad' if i == 321 else 'good'}.csr"]
    (tmp_path / "m.yaml").write_text("\n".join(lines) + "\n")
    result = cli("validate", tmp_path / "m.yaml")
    assert result.code == 2
    assert result.err.splitlines()[0] == (
        f"{tmp_path / 'm.yaml'}:{7 + 2 * 321 + 1}: e321: $.Csr: "
        "the CSR's signature does not verify (was it altered after signing?)"
    )
