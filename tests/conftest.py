"""Fixtures every test folder uses: CSR files, an in-process CLI runner, the CAs apply foresees.

Plain helpers live in :mod:`tests.support`; moto's fixtures come from its module as a plugin.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from tests.support.common import Cli, CliResult, CsrFile, make_csr_pem

pytest_plugins = ("tests.support.moto_server", "tests.support.serve_server")


@pytest.fixture
def csr_file(tmp_path: Path) -> CsrFile:
    """Write a fresh CSR under tmp_path/csr and return its path."""

    def make(name: str, **kwargs: object) -> Path:
        path = tmp_path / "csr" / f"{name}.csr"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_csr_pem(**kwargs))  # type: ignore[arg-type]
        return path

    return make


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``main(argv)`` in-process with plain (non-terminal) consoles and capture both streams."""
    from pca_batch import cli as climod

    def run(*argv: str | Path) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        consoles = (
            Console(file=out, width=200, color_system=None, force_terminal=False),
            Console(file=err, width=200, color_system=None, force_terminal=False),
        )
        monkeypatch.setattr(climod, "_consoles", lambda: consoles)
        code = climod.main([str(a) for a in argv])
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def foreseen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The CAs apply asks the background opening to describe while the manifest is read."""
    from pca_batch.run import session as execute

    told: list[str] = []
    real = execute.start_opening

    def recording(*args: Any) -> Any:
        opening = real(*args)
        if opening is not None:
            foresee = opening.foresee

            def record(arn: str) -> None:
                told.append(arn)
                foresee(arn)

            monkeypatch.setattr(opening, "foresee", record)
        return opening

    monkeypatch.setattr(execute, "start_opening", recording)
    return told
