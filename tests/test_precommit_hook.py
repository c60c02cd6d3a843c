"""The pre-commit hook (.pre-commit-hooks.yaml), run by pre-commit itself with `pre-commit try-repo`
on a fresh git repository, as a user's `- repo: … hooks: [{id: pca-batch-validate}]` runs it:
pre-commit installs this checkout into a virtualenv of its own and runs the hook on the files.

try-repo installs the hook into a store of its own on every run (from the package registry,
through pip's cache), so the two runs go side by side.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.support.common import CORPUS, REPO

MANIFEST = """\
version: 1
defaults:
  CertificateAuthorityArn: ${PCA_CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: Value=30,Type=DAYS
certificates:
  - name: web
    Csr: file://csr/ec256.csr
"""


def _git(folder: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=test@example.invalid", "-c", "user.name=test", *args],
        cwd=folder, check=True, capture_output=True, timeout=60,
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's repository: a valid and an invalid manifest, and a YAML file that is no manifest."""
    folder = tmp_path_factory.mktemp("user-repo")
    (folder / "pca-batch" / "csr").mkdir(parents=True)
    (folder / "pca-batch" / "csr" / "ec256.csr").write_bytes((CORPUS / "csr" / "ec256.csr").read_bytes())
    (folder / "pca-batch" / "good.yaml").write_text(MANIFEST)
    (folder / "pca-batch" / "bad.yaml").write_text(MANIFEST.replace("SHA256WITHECDSA", "SHA256WITHRSAA"))
    (folder / "docker-compose.yaml").write_text("services: {web: {image: nginx}}\n")
    _git(folder, "init", "-q")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-qm", "manifests")
    return folder


def try_repo(repo: Path, *files: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PCA_CA_ARN" and not k.startswith("GITHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "pca-batch-validate", "--files", *files],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600,
    )


@pytest.fixture(scope="module")
def runs(repo: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Both runs at once: try-repo installs the hook afresh each time (into a store of its own)."""
    cases = {
        "valid": ("pca-batch/good.yaml", "docker-compose.yaml"),  # the compose file is no manifest: not passed
        "invalid": ("pca-batch/good.yaml", "pca-batch/bad.yaml"),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(try_repo, repo, *files) for name, files in cases.items()}
        return {name: future.result() for name, future in futures.items()}


def test_the_hook_is_declared_as_users_expect() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "pca-batch-validate"
    assert hook["entry"] == "pca-batch validate --offline"
    assert hook["language"] == "python"


def test_a_valid_manifest_passes_and_other_yaml_is_left_alone(
    runs: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    done = runs["valid"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pca-batch validate" in done.stdout and "Passed" in done.stdout


def test_an_invalid_manifest_fails_with_the_problems_line(runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    done = runs["invalid"]
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Failed" in done.stdout and "- exit code: 2" in done.stdout
    line = MANIFEST.splitlines().index("  SigningAlgorithm: SHA256WITHECDSA") + 1
    assert f"pca-batch/bad.yaml:{line}: web: $.SigningAlgorithm: 'SHA256WITHRSAA' is not one of" in done.stdout
    assert "pca-batch/good.yaml: valid (1 entry); not checked, as not set: ${PCA_CA_ARN}" in done.stdout
