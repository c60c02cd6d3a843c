"""The published manifest schema in an editor: yaml-language-server (the server behind VS Code's
YAML extension, and of Neovim's, Helix's and others' YAML support), driven over its stdio LSP as
an editor drives it, with the schema named by the modeline the README shows.

`make test` installs Node.js (Debian's) and the server (tests/support/node/package-lock.json).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pca_batch import schema
from tests.support.common import REPO, Cli
from tests.support.lsp import YAML_LANGUAGE_SERVER, LanguageServer

ALGORITHMS = schema.load(schema.REQUEST)["properties"]["SigningAlgorithm"]["enum"]
MANIFEST = """\
# yaml-language-server: $schema=manifest.schema.json
version: 1
defaults:
  CertificateAuthorityArn: ${PCA_CA_ARN}
  Validity: Value=30,Type=DAYS
certificates:
  - name: payments-api
    Csr: file://csr/payments-api.csr
    SigningAlgorithm: SHA256WITHRSAA
  - name: orders
    Csr: file://csr/orders.csr
    SigningAlgorithm: SHA256WITHRSA
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LanguageServer, Path]]:
    node = shutil.which("node")
    assert node, "Node.js is not installed: `make test` installs it (Debian's nodejs)"
    assert YAML_LANGUAGE_SERVER.is_file(), "yaml-language-server is not installed: `make test` runs npm ci for it"
    folder = tmp_path_factory.mktemp("editor")
    with LanguageServer([node, str(YAML_LANGUAGE_SERVER), "--stdio"], folder) as ls:
        yield ls, folder


def _open(server: tuple[LanguageServer, Path], cli: Cli, name: str, text: str) -> tuple[Path, list[dict[str, Any]]]:
    ls, folder = server
    # as the README says: the schema of the installed pca-batch, beside the manifests
    (folder / "manifest.schema.json").write_text(cli("schema", "manifest").out)
    path = folder / name
    path.write_text(text)
    return path, ls.open(path, text)


def test_a_misspelt_signing_algorithm_is_flagged_where_it_stands(
    server: tuple[LanguageServer, Path], cli: Cli
) -> None:
    path, diagnostics = _open(server, cli, "certs.yaml", MANIFEST)
    assert len(diagnostics) == 1, diagnostics
    found = diagnostics[0]
    line = MANIFEST.splitlines().index("    SigningAlgorithm: SHA256WITHRSAA")
    assert found["range"]["start"] == {"line": line, "character": len("    SigningAlgorithm: ")}
    assert found["severity"] == 1  # an error
    assert "Value is not accepted" in found["message"] and '"SHA256WITHRSA"' in found["message"]


def test_the_thirteen_signing_algorithms_are_offered(server: tuple[LanguageServer, Path], cli: Cli) -> None:
    text = MANIFEST.replace("SigningAlgorithm: SHA256WITHRSAA", "SigningAlgorithm: ")
    path, _ = _open(server, cli, "complete.yaml", text)
    line = text.splitlines().index("    SigningAlgorithm: ")
    items = server[0].completion(path, line, len("    SigningAlgorithm: "))
    assert sorted(i["label"] for i in items) == sorted(ALGORITHMS)
    assert len(ALGORITHMS) == 13


def test_hover_shows_the_members_help(server: tuple[LanguageServer, Path], cli: Cli) -> None:
    path, _ = _open(server, cli, "hover.yaml", MANIFEST)
    line = MANIFEST.splitlines().index("  Validity: Value=30,Type=DAYS")
    hover = server[0].hover(path, line, 4)
    assert hover["contents"]["kind"] == "markdown"
    assert "the CLI shorthand `Value=90,Type=DAYS`" in hover["contents"]["value"]


def test_an_entry_snippet_is_offered(server: tuple[LanguageServer, Path], cli: Cli) -> None:
    text = MANIFEST + "  - \n"
    path, _ = _open(server, cli, "snippet.yaml", text)
    items = server[0].completion(path, len(text.splitlines()) - 1, len("  - "))
    labels = {i["label"] for i in items}
    assert {"entry with a CSR file", "entry with a key pca-batch makes"} <= labels, labels


def test_the_demo_manifest_has_no_diagnostic(server: tuple[LanguageServer, Path], cli: Cli) -> None:
    text = "# yaml-language-server: $schema=manifest.schema.json\n" + (REPO / "manifests" / "demo.yaml").read_text()
    _, diagnostics = _open(server, cli, "demo.yaml", text)
    assert diagnostics == []
