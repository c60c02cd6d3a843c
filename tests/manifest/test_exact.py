"""Validation is exact under every shortcut: an entry has the same problems wherever it stands.

The loader checks what entries share once (the defaults' request, a Validity, a
request's form). The differential property below holds for any such shortcut,
present or future: every entry of a generated manifest has exactly the problems
(same lines, paths and messages), request and token it has when it stands alone
in a manifest of its own, apart from the checks that compare entries with each
other (names, explicit tokens and outputs given twice).
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pca_batch import schema
from pca_batch.errors import Problem
from pca_batch.manifest.load import load_manifest
from pca_batch.model import Entry
from tests.support.common import CA_ARN, CORPUS, Cli, make_csr_pem, write_manifest

NOW = datetime(2025, 6, 1, tzinfo=UTC)
REQUEST_VALIDATOR = schema.validator(schema.REQUEST)
ENV = {"ARN": CA_ARN, "TOKEN": "tok-from-env", "DAYS": "30"}
OTHER_ARN = "arn:aws:acm-pca:eu-west-1:111122223333:certificate-authority/other"
TEMPLATE_ARN = "arn:aws:acm-pca:::template/EndEntityCertificate/V1"


# -- the bug of issue #11, as a new user met it --------------------------------

ISSUE_11 = f"""version: 1
defaults: {{CertificateAuthorityArn: {CA_ARN}, Csr: file://csr/good.csr, \
SigningAlgorithm: SHA256WITHECDSA, Validity: {{Value: 90, Type: DAYS}}}}
certificates:
  - name: plain
  - name: t37
    IdempotencyToken: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa   # 37 characters; AWS allows 36
  - name: teuro
    IdempotencyToken: "€uro"                                  # outside AWS's pattern
  - name: tnum
    IdempotencyToken: 12345
"""


def test_a_bad_idempotency_token_is_reported_after_an_entry_that_shares_the_defaults(
    tmp_path: Path, cli: Cli
) -> None:
    (tmp_path / "csr").mkdir()
    (tmp_path / "csr" / "good.csr").write_bytes((CORPUS / "csr" / "ec256.csr").read_bytes())
    result = cli("validate", write_manifest(tmp_path, ISSUE_11))
    assert result.code == 2, result.out
    assert "manifest.yaml:6: t37: $.IdempotencyToken: must be at most 36 characters long (it has 37)" in result.err
    assert "manifest.yaml:8: teuro: $.IdempotencyToken: '€uro' does not match the pattern" in result.err
    assert "manifest.yaml:10: tnum: $.IdempotencyToken: must be a string, not an integer" in result.err
    planned = cli("apply", write_manifest(tmp_path, ISSUE_11), "--plan")
    assert planned.code == 2


# -- generated manifests -------------------------------------------------------

_ABSOLUTE_PAST = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp())
_ABSOLUTE_SOON = int(datetime(2025, 7, 1, tzinfo=UTC).timestamp())
_ABSOLUTE_LATE = int(datetime(2040, 1, 1, tzinfo=UTC).timestamp())

# Each member's values: the VALID[name] first (hypothesis shrinks towards them, and draws them
# half the time), then one of each way to be wrong -- type, bound, pattern, enum, unknown or
# missing member.
MEMBERS: dict[str, list[Any]] = {
    "CertificateAuthorityArn": [CA_ARN, OTHER_ARN, "${ARN}", "arn:aws:s3:::bucket", "arn", 5, "${NOPE}"],
    "SigningAlgorithm": ["SHA256WITHECDSA", "SHA384WITHECDSA", "sha256withecdsa", "SHA256WITHECDSA ", 256, None],
    "Validity": [
        {"Value": 90, "Type": "DAYS"},
        {"Value": 90.0, "Type": "DAYS"},
        {"Value": 1, "Type": "YEARS"},
        "Value=30,Type=DAYS",
        {"Value": _ABSOLUTE_LATE, "Type": "ABSOLUTE"},
        {"Value": 20391231235959, "Type": "END_DATE"},
        {"Value": 0, "Type": "DAYS"},
        {"Value": "90", "Type": "DAYS"},
        {"Value": True, "Type": "DAYS"},
        {"Value": 90.5, "Type": "DAYS"},
        {"Value": 90, "Type": "WEEKS"},
        {"Value": 90},
        {"Value": 90, "Type": "DAYS", "Extra": 1},
        {"Value": _ABSOLUTE_PAST, "Type": "ABSOLUTE"},
        {"Value": 20201231235959, "Type": "END_DATE"},
        {"Value": 10**30, "Type": "DAYS"},
        "Value=x,Type=DAYS",
        [90, "DAYS"],
    ],
    "ValidityNotBefore": [
        {"Value": _ABSOLUTE_SOON, "Type": "ABSOLUTE"},
        {"Value": _ABSOLUTE_PAST, "Type": "ABSOLUTE"},
        {"Value": _ABSOLUTE_LATE + 1, "Type": "ABSOLUTE"},
        {"Value": 3, "Type": "DAYS"},
        {"Value": -1, "Type": "ABSOLUTE"},
        "Value=1,Type=ABSOLUTE",
    ],
    "TemplateArn": [TEMPLATE_ARN, "template", 7, "a" * 201],
    "IdempotencyToken": [
        "tok-1",
        "tok-2",
        "a" * 36,
        "é\t",
        "${TOKEN}",
        "a" * 37,
        "€uro",
        "",
        12345,
        1.5,
        True,
        None,
        ["tok"],
        "${NOPE}",
    ],
    "ApiPassthrough": [
        {"Subject": {"Country": "US", "CommonName": "x"}},
        {"Extensions": {"KeyUsage": {"DigitalSignature": True}}},
        {"Subject": {"Country": "USA"}},
        {"Subject": {"Country": "U1"}},
        {"Subject": {"GivenName": "g" * 17}},
        {"Subject": {"Nickname": "x"}},
        {"Extensions": {"KeyUsage": {"DigitalSignature": "yes"}}},
        {"Extensions": {"ExtendedKeyUsage": [{"ExtendedKeyUsageType": "WEB_AUTH"}]}},
        {"Extensions": {"ExtendedKeyUsage": []}},
        {"Extensions": {"CustomExtensions": [{"ObjectIdentifier": "1.2.3", "Value": "not base64!"}]}},
        {"Extensions": {"CustomExtensions": [{"ObjectIdentifier": "9.9", "Value": "AAAA"}]}},
        {"Extensions": {"CertificatePolicies": [{"PolicyQualifiers": []}]}},
        "passthrough",
    ],
    "Csr": [
        "file://csr/a.csr",
        "file://csr/b.csr",
        "PEM:a",  # the same CSRs inline, as PEM blocks
        "PEM:b",
        "fileb://csr/a.csr",
        "file://csr/missing.csr",
        "file://csr/garbage.csr",
        "file://csr/altered.csr",
        "file://csr/nonames.csr",
        "file://",
        "not a CSR",
        "",
        7,
        "PEM:long",
    ],
}
UNKNOWN = {"Foo": 1, "idempotencyToken": "x", "Validty": {"Value": 1, "Type": "DAYS"}}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PEM blocks) as literal blocks, as people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and value.isascii() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(data: Any) -> list[str]:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=10**6).splitlines()


VALID = {
    "CertificateAuthorityArn": 3,
    "SigningAlgorithm": 2,
    "Validity": 6,
    "ValidityNotBefore": 1,
    "TemplateArn": 1,
    "IdempotencyToken": 5,
    "ApiPassthrough": 2,
    "Csr": 5,
}


def _member(name: str) -> st.SearchStrategy[tuple[str, Any]]:
    values = MEMBERS[name]
    return st.tuples(st.just(name), st.one_of(st.sampled_from(values[: VALID[name]]), st.sampled_from(values)))


MEMBER = st.one_of([_member(name) for name in MEMBERS] + [st.sampled_from(sorted(UNKNOWN.items()))])
REQUEST_PART = st.lists(MEMBER, max_size=2).map(dict)


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    """Defaults, a few request files, and entries drawn from a few shared requests, each
    maybe changed in one member: repeated and near-identical requests, valid and invalid."""
    valid_defaults = {
        "CertificateAuthorityArn": CA_ARN,
        "SigningAlgorithm": "SHA256WITHECDSA",
        "Validity": {"Value": 90, "Type": "DAYS"},
    }
    defaults = {k: v for k, v in valid_defaults.items() if draw(st.integers(0, 5)) > 0}
    if draw(st.integers(0, 2)) == 0:
        defaults.update([draw(MEMBER)])
    files = draw(st.lists(st.one_of(REQUEST_PART, st.just("{not json"), st.just([1])), max_size=2))
    shared = draw(st.lists(st.one_of(st.just({}), REQUEST_PART), min_size=1, max_size=3))
    entries: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 6))):
        entry: dict[str, Any] = {"name": f"e{i}"}
        if draw(st.booleans()) and entries:  # an earlier entry's request again, maybe with one member changed
            earlier = draw(st.sampled_from(entries))
            entry.update({k: v for k, v in earlier.items() if k in MEMBERS or k == "cli_input_json"})
        else:
            entry.update(draw(st.sampled_from(shared)))
        if draw(st.booleans()):
            entry.update([draw(MEMBER)])  # near-identical: one member differs
        if "Csr" not in entry and "Csr" not in defaults and draw(st.integers(0, 4)) > 0:
            entry["Csr"] = draw(st.sampled_from(MEMBERS["Csr"][: VALID["Csr"]]))
        if draw(st.booleans()) and files:
            entry["cli_input_json"] = f"file://{draw(st.integers(0, len(files) - 1))}.json"
        elif draw(st.integers(0, 9)) == 0:
            entry["cli_input_json"] = "file://none.json"
        if draw(st.integers(0, 9)) == 0:
            entry.pop("Csr", None)
            entry["key"] = draw(st.sampled_from([{"dns_names": [f"e{i}.example"]}, {"type": "EC_prime256v1"}]))
            entry["output"] = {"certificate": f"out/e{i}.pem", "private_key": f"out/e{i}.key"}
        elif draw(st.booleans()):
            entry["output"] = {"certificate": f"out/e{i}.pem"}
        entries.append(entry)
    return {"defaults": defaults, "files": files, "entries": entries}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few CSRs, made once: two good ones and the corpus's bad ones."""
    root = tmp_path_factory.mktemp("exact")
    (root / "csr").mkdir()
    (root / "csr" / "a.csr").write_bytes(make_csr_pem("a.example", ("a.example",)))
    (root / "csr" / "b.csr").write_bytes(make_csr_pem("b.example", ("b.example",)))
    for bad in ("garbage", "altered", "nonames"):
        (root / "csr" / f"{bad}.csr").write_bytes((CORPUS / "csr" / f"{bad}.csr").read_bytes())
    return root


def _csr_text(folder: Path, value: Any) -> Any:
    if isinstance(value, str) and value.startswith("PEM:"):
        which = value[4:]
        if which == "long":
            return "-----BEGIN CERTIFICATE REQUEST-----\n" + "A" * 40000 + "\n-----END CERTIFICATE REQUEST-----\n"
        return (folder / "csr" / f"{which}.csr").read_text()
    return value


def _with_csrs(folder: Path, part: Any) -> Any:
    return {k: _csr_text(folder, v) if k == "Csr" else v for k, v in part.items()} if isinstance(part, dict) else part


_runs = itertools.count()


def _write(folder: Path, drawn: dict[str, Any]) -> tuple[list[str], list[range], Path]:
    """The manifest's lines, the lines of each entry, and the folder its request files are in."""
    run = folder / f"run{next(_runs)}"
    run.mkdir()
    (run / "csr").symlink_to(folder / "csr")
    for k, content in enumerate(drawn["files"]):
        text = content if isinstance(content, str) else json.dumps(_with_csrs(folder, content))
        (run / f"{k}.json").write_text(text)
    lines = ["version: 1"]
    if drawn["defaults"]:
        lines += ["defaults:"] + ["  " + line for line in _dump(_with_csrs(folder, drawn["defaults"]))]
    lines.append("certificates:")
    spans = []
    for entry in drawn["entries"]:
        block = _dump([_with_csrs(folder, entry)])
        spans.append(range(len(lines), len(lines) + len(block)))
        lines += block
    return lines, spans, run


def _load(path: Path, text: str) -> tuple[list[tuple[int, str, str, str]], list[Entry]]:
    path.write_text(text)
    manifest = load_manifest(path, env=ENV, now=NOW)
    return [(p.line, p.entry, p.path, p.message) for p in manifest.problems], list(manifest.entries)


_CROSS_ENTRY = ("is already used by the entry on line", "gives the same IdempotencyToken", "is also written by")


def _own(problems: tuple[Problem, ...]) -> list[tuple[int, str, str, str]]:
    """What an entry's problems say, apart from what compares it with other entries."""
    return sorted(
        (p.line, p.entry, p.path, p.message) for p in problems if not any(c in p.message for c in _CROSS_ENTRY)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=manifests())
def test_every_entry_has_the_problems_it_has_alone(folder: Path, drawn: dict[str, Any]) -> None:
    lines, spans, run = _write(folder, drawn)
    top, together = _load(run / "all.yaml", "\n".join(lines) + "\n")
    for i, span in enumerate(spans):
        # the other entries' lines become comments: the entry keeps its line numbers
        alone_lines = [line if n in span or not any(n in s for s in spans) else "#" for n, line in enumerate(lines)]
        alone_top, [alone] = _load(run / f"alone{i}.yaml", "\n".join(alone_lines) + "\n")
        entry = together[i]
        assert alone_top == top
        assert _own(entry.problems) == _own(alone.problems), (entry.name, "\n".join(alone_lines))
        if not entry.problems:
            assert (entry.request, entry.token) == (alone.request, alone.token)
        if not entry.problems and not top:  # (a defaults problem is told once, not again by each entry)
            # what a valid entry sends is what AWS's model accepts, whatever shortcut judged it
            assert entry.request is not None and REQUEST_VALIDATOR.is_valid(entry.request), entry.request
