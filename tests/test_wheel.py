"""The schemas ship in the wheel: an installed pca-batch, away from the checkout, finds them."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.support.common import CA_ARN, REPO, make_csr_pem


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to copy the checkout")
def test_installed_wheel_validates_with_packaged_schemas(tmp_path: Path) -> None:
    # Build from a copy of the tracked files only, as `pip install .` on a clone would.
    src = tmp_path / "src"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels), str(src)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("pca_batch-*.whl")

    # A fresh venv holding only the wheel; the dependencies come from this test
    # environment through a .pth line (which does not pull in the checkout).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (purelib / "zz_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        check=True,
        timeout=300,
    )
    assert (purelib / "pca_batch" / "schemas" / "issue-certificate.schema.json").is_file()

    work = tmp_path / "work"
    (work / "csr").mkdir(parents=True)
    (work / "csr" / "a.csr").write_bytes(make_csr_pem())
    (work / "m.yaml").write_text(
        f"version: 1\ncertificates:\n  - name: a\n    CertificateAuthorityArn: {CA_ARN}\n"
        "    Csr: file://csr/a.csr\n    SigningAlgorithm: SHA256WITHECDSA\n    Validity: {Value: 1, Type: DAYS}\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    where = subprocess.run(
        [str(python), "-c", "import pca_batch; print(pca_batch.__file__)"], cwd=work, env=env,
        capture_output=True, text=True, check=True,
    ).stdout
    assert str(purelib) in where and str(REPO) not in where
    result = subprocess.run(
        [str(venv / "bin" / "pca-batch"), "validate", "m.yaml"], cwd=work, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "m.yaml: valid (1 entry)" in result.stdout
