"""The positive and negative manifest corpora, turned into cases."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.common import CORPUS, REPO, Cli, CsrFile

VALID = sorted((CORPUS / "valid").glob("*.yaml"))
INVALID = sorted((CORPUS / "invalid").glob("*.yaml"))
EXAMPLES = sorted((REPO / "manifests").glob("*.yaml"))
EXPECT = re.compile(r"^# expect: (\d+) (\S+) (\S+) :: (.+)$")
# "# problems: N": the file has exactly N problems, so that no follow-on noise repeats one
COUNT = re.compile(r"^# problems: (\d+)$", re.M)


@pytest.mark.parametrize("path", VALID + EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_valid_manifests_validate(path: Path, cli: Cli) -> None:
    result = cli("validate", path)
    assert result.code == 0, result.err
    assert "valid" in result.out


def _expectations(path: Path) -> list[tuple[int, str, str, str]]:
    out = []
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        m = EXPECT.match(line)
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3), m.group(4)))
    return out


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_manifests_name_file_line_entry_and_path(path: Path, cli: Cli) -> None:
    expectations = _expectations(path)
    assert expectations, f"{path.name} has no '# expect:' line"
    result = cli("validate", path)
    assert result.code == 2
    assert "Traceback" not in result.err + result.out
    lines = result.err.splitlines()
    for line_no, entry, json_path, needle in expectations:
        prefix = f"{path}:{line_no}: " if line_no else f"{path}:"
        wanted = [
            ln
            for ln in lines
            if ln.startswith(prefix) and f" {entry}: {json_path}: " in ln and needle in ln
        ]
        assert wanted, f"expected {prefix} {entry}: {json_path}: ...{needle}... in:\n{result.err}"
    count = COUNT.search(path.read_text(encoding="utf-8", errors="replace"))
    if count:
        total = int(count.group(1))
        assert re.search(rf"^{total} problems?\b", result.err, re.M), f"expected {total} problems in:\n{result.err}"


def test_corpus_is_broad() -> None:
    assert len(INVALID) >= 40 and len(VALID) >= 4


def test_every_problem_of_every_entry_in_one_run(tmp_path: Path, cli: Cli, csr_file: CsrFile) -> None:
    csr_file("ok")
    body = "version: 1\ncertificates:\n"
    for i in range(5):
        body += f"  - name: e{i}\n    Csr: file://csr/ok.csr\n    SigningAlgorithm: BAD{i}\n"
    (tmp_path / "m.yaml").write_text(body)
    result = cli("validate", tmp_path / "m.yaml")
    assert result.code == 2
    for i in range(5):
        assert f"e{i}: $.SigningAlgorithm: 'BAD{i}' is not one of" in result.err
        assert f"e{i}: $: the required key 'CertificateAuthorityArn' is missing" in result.err
    assert "15 problems in 5 entries" in result.err
