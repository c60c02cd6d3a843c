"""One manifest entry -> one IssueCertificate request, with every problem found.

The request of an entry is the deep merge defaults <- cli_input_json <- the
entry's own PascalCase keys (later wins, lists replaced whole), with Csr read
in; that merged request is what the request schema validates.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pca_batch import schema
from pca_batch.acmpca import CSR_MAX_BYTES
from pca_batch.errors import Problem
from pca_batch.manifest import interpolate
from pca_batch.manifest.csrpool import CsrChecker
from pca_batch.manifest.outpaths import OutputPaths
from pca_batch.manifest.problems import Source, json_path, locate, problems_from_errors
from pca_batch.manifest.yamlload import LineDict
from pca_batch.model import CsrInfo, Entry, Outputs
from pca_batch.pki import csr as csrmod
from pca_batch.pki import validity
from pca_batch.pki.keys import KeySpec
from pca_batch.plan import tokens
from pca_batch.schema import fastcheck
from pca_batch.times import rfc3339

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

_SHORTHAND_KEYS = ("Validity", "ValidityNotBefore")
KEY_PLACEHOLDER = "(made by pca-batch from the entry's key at apply time)"


def key_request(request: Mapping[str, Any], spec: KeySpec, public_key: str = "") -> dict[str, Any]:
    """What the idempotency token of a key entry covers: the request without its CSR,
    the key block, and the public key once it is known."""
    body = {k: v for k, v in request.items() if k != "Csr"}
    body["Key"] = spec.canonical()
    if public_key:
        body["PublicKey"] = public_key
    return body


def _key_info(spec: KeySpec) -> CsrInfo:
    return CsrInfo(spec.name().rfc4514_string(), spec.sans_text(), spec.algorithm, "")


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` onto ``base`` (mutated): mappings merge, everything else (lists too) is replaced."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        elif isinstance(value, Mapping):
            base[key] = deep_merge({}, value)
        elif isinstance(value, list):
            base[key] = copy.deepcopy(value)
        else:
            base[key] = value
    return base


class EntryBuilder:
    def __init__(
        self,
        *,
        file: str,
        root: Path,
        env: Mapping[str, str],
        now: datetime,
        defaults: LineDict | None,
        allow_outside_paths: bool,
        checker: CsrChecker | None = None,
        interpolate: bool = True,
    ) -> None:
        self.file = file
        self.root = root
        self.root_str = str(root)
        self.outputs = OutputPaths(file, root, allow_outside=allow_outside_paths)
        # (CA ARN, explicit IdempotencyToken) -> (entry, line): AWS would hand a second entry the first's certificate
        self._explicit_tokens: dict[tuple[str, str], tuple[str, int]] = {}
        self.env = env
        self.now = now
        self.defaults = defaults
        self.interpolate = interpolate  # False when the manifest holds no "${" at all
        self._json_cache: dict[Path, Any] = {}
        self.checker = checker or CsrChecker(0)
        # entry index -> (checker ticket, line of its Csr): signatures checked in finish()
        self._pending: dict[int, tuple[int, int]] = {}
        self._request_ok_cache: dict[str, bool] = {}
        self._defaults_body: str | None = None  # canonical form of a request made of defaults alone
        self._defaults_only: dict[str, Any] | None = None
        self._valid_bodies: set[str] = set()  # canonical requests whose Validity checked out
        # jsonschema explains; these compiled checks only say yes or no, fast
        self._request_ok = _fast(schema.REQUEST, None)
        self._entry_ok = _fast(schema.MANIFEST, "entry")
        self._request_keys = frozenset(schema.load(schema.REQUEST)["properties"])
        # (json path, line) of values whose ${VAR} could not be filled: the schema
        # errors that follow from the empty value would only repeat the problem.
        self.unfilled: set[tuple[str, int]] = set()

    # -- defaults -----------------------------------------------------------
    def _defaults_request(self) -> dict[str, Any]:
        if self._defaults_only is None:
            self._defaults_only = {}
            if self.defaults is not None:
                deep_merge(self._defaults_only, {k: v for k, v in self.defaults.items() if k in self._request_keys})
        return self._defaults_only

    def check_defaults(self) -> list[Problem]:
        problems: list[Problem] = []
        if self.defaults is not None:
            self._shorthand(self.defaults, "defaults", problems, [])
        return problems

    def _shorthand(self, node: dict[str, Any], entry: str, problems: list[Problem], prefix: list[Any]) -> None:
        lines = node.value_lines if isinstance(node, LineDict) else {}
        for key in _SHORTHAND_KEYS:
            value = node.get(key)
            if isinstance(value, str):
                try:
                    node[key] = validity.parse_shorthand(value)
                except validity.ValidityError as exc:
                    line = lines.get(key, getattr(node, "line", 0))
                    problems.append(Problem(self.file, line, entry, json_path(prefix + [key]), str(exc)))

    # -- entries ------------------------------------------------------------
    def build(self, index: int, raw: Any, line: int, seen: dict[str, int]) -> Entry:
        label = f"certificates[{index}]"
        if not isinstance(raw, dict):
            problem = Problem(self.file, line, label, "$", "an entry must be a mapping with at least `name`")
            return Entry(label, index, line, None, None, None, Outputs(), problems=(problem,))
        name = raw.get("name")
        label = name if isinstance(name, str) and name else label
        problems: list[Problem] = []

        def report(p: list[Any], at: int, message: str) -> None:
            problems.append(Problem(self.file, at, label, json_path(p), message))

        def report_unfilled(p: list[Any], at: int, message: str) -> None:
            self.unfilled.add((json_path(p), at))
            report(p, at, message)

        if self.interpolate:
            interpolate.walk(raw, self.env, [], line, report_unfilled)
        own = Source(raw, line, True)
        if not self._entry_ok(raw):
            problems += problems_from_errors(
                schema.def_validator(schema.MANIFEST, "entry").iter_errors(raw),
                file=self.file,
                entry=label,
                sources=[own],
                fallback_line=line,
            )
        if isinstance(name, str):
            if name in seen:
                at = raw.value_lines.get("name", line) if isinstance(raw, LineDict) else line
                report(["name"], at, f"the name {name!r} is already used by the entry on line {seen[name]}")
            else:
                seen[name] = line

        sources = [own]
        cli = self._cli_input(raw, line, report)
        if cli is not None:
            sources.append(cli)
        if self.defaults is not None:
            sources.append(Source(self.defaults, self.defaults.line, True))
        self._shorthand(raw, label, problems, [])

        # An entry that adds nothing but its CSR to the defaults (the common case in large
        # manifests) shares the defaults' request; nothing downstream changes a nested value.
        plain = cli is None and "key" not in raw and not any(k in self._request_keys and k != "Csr" for k in raw)
        if plain:
            request = dict(self._defaults_request())
            if "Csr" in raw:
                request["Csr"] = raw["Csr"]
        else:
            request = deep_merge({}, self._defaults_request())  # a copy: this entry changes it
            if cli is not None:
                deep_merge(request, cli.data)
            # Unknown PascalCase keys are reported by the entry schema; only request keys merge.
            deep_merge(request, {k: v for k, v in raw.items() if k in self._request_keys})

        key_spec = self._key_spec(raw, request, line, label, problems)
        info: CsrInfo | None = None
        csr: tuple[csrmod.Source, int] | None = None  # where the CSR is read from, and the line of Csr
        csr_failed = False
        if key_spec is not None:
            # the CSR is made at apply time from the key; the schema checks the rest
            request["Csr"] = KEY_PLACEHOLDER
            info = _key_info(key_spec)
        else:
            csr, csr_failed = self._csr_source(request, sources, line, label, problems)
        request_problems, body = self._check_request(request, sources, line, label, csr_failed, plain)
        # Paths already explained by a problem above; schema errors there would only repeat it.
        explained = {p.path for p in problems}
        cli_failed = "$.cli_input_json" in explained
        problems += [
            p for p in request_problems if p.path not in explained and not (cli_failed and "required key" in p.message)
        ]
        if not any(p.path.startswith(("$.Validity", "$.ValidityNotBefore")) for p in problems):
            if body not in self._valid_bodies:  # the same Validity was found fine before
                found = self._check_validity(request, sources, line, label)
                if not found:
                    self._valid_bodies.add(body)
                problems += found
        outputs = self.outputs.resolve(raw, line, label, problems)
        token = None
        if not problems and key_spec is not None:
            token = tokens.token_for(label, key_request(request, key_spec))
        explicit = request.get("IdempotencyToken")
        ca = request.get("CertificateAuthorityArn")
        if isinstance(explicit, str) and isinstance(ca, str):
            at, _ = locate(sources, ["IdempotencyToken"], line)
            first = self._explicit_tokens.setdefault((ca, explicit), (label, at))
            if first[0] != label:
                report(
                    ["IdempotencyToken"],
                    at,
                    f"the entry {first[0]} (line {first[1]}) gives the same IdempotencyToken for the same CA; "
                    "AWS would hand this entry that entry's certificate",
                )
                token = None
        renew_before = raw.get("renew_before", self.defaults.get("renew_before") if self.defaults else None)
        if isinstance(renew_before, str):
            from pca_batch.plan.renewal import RenewBeforeError, parse_renew_before

            try:
                parse_renew_before(renew_before)
            except RenewBeforeError as exc:
                where = raw if "renew_before" in raw else self.defaults
                at = where.value_lines.get("renew_before", line) if isinstance(where, LineDict) else line
                path = "$.renew_before" if where is raw else "$.defaults.renew_before"
                problems.append(Problem(self.file, at, label, path, str(exc)))
                token = None
        explicit_token = isinstance(explicit, str) and bool(explicit)
        if csr is not None:
            # read and checked in finish(), by a worker process in large manifests; the token covers the CSR
            wants_token = not problems and not explicit_token
            ticket = self.checker.add(csr[0], label if wants_token else None, body if wants_token else None)
            self._pending[index] = (ticket, csr[1])
        return Entry(
            name=label,
            index=index,
            line=line,
            request=request,
            token=token,
            csr=info,
            outputs=outputs,
            problems=tuple(sorted(self._without_echoes(problems), key=lambda p: p.line)),
            key=key_spec,
            renew_before=renew_before if isinstance(renew_before, str) else None,
            explicit_token=explicit_token,
        )

    def _key_spec(
        self, raw: dict[str, Any], request: dict[str, Any], line: int, label: str, problems: list[Problem]
    ) -> KeySpec | None:
        block = raw.get("key")
        if not isinstance(block, dict):
            return None
        at = raw.value_lines.get("key", line) if isinstance(raw, LineDict) else line
        if "Csr" in request:
            problems.append(Problem(self.file, at, label, "$.key", "give either Csr or key, not both"))
            return None
        if "IdempotencyToken" in request:
            problems.append(
                Problem(
                    self.file,
                    at,
                    label,
                    "$.IdempotencyToken",
                    "an entry with `key` cannot give IdempotencyToken: its token is derived from each new key",
                )
            )
        output = raw.get("output")
        out: dict[str, Any] = output if isinstance(output, dict) else {}
        for kind in ("certificate", "private_key"):
            if not out.get(kind):
                problems.append(Problem(self.file, at, label, "$.output", f"an entry with `key` needs output.{kind}"))
        lines = block.value_lines if isinstance(block, LineDict) else {}
        spec = KeySpec.from_manifest(block)  # wrong types are left out (the schema reports them)
        for i, address in enumerate(spec.ip_addresses):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                problems.append(
                    Problem(
                        self.file,
                        lines.get("ip_addresses", at),
                        label,
                        f"$.key.ip_addresses[{i}]",
                        f"{address!r} is not an IP address",
                    )
                )
        if not (spec.subject or spec.dns_names or spec.ip_addresses or spec.uris or spec.emails):
            problems.append(
                Problem(
                    self.file, at, label, "$.key", "the key needs a subject or at least one subject alternative name"
                )
            )
        return spec

    def _without_echoes(self, problems: list[Problem]) -> list[Problem]:
        if not self.unfilled:
            return problems
        return [p for p in problems if (p.path, p.line) not in self.unfilled or "environment variable" in p.message]

    def _cli_input(self, raw: dict[str, Any], line: int, report: interpolate.Reporter) -> Source | None:
        ref = raw.get("cli_input_json")
        if not isinstance(ref, str) or not ref.startswith("file://") or len(ref) <= len("file://"):
            return None
        at = raw.value_lines.get("cli_input_json", line) if isinstance(raw, LineDict) else line
        path = Path(csrmod.resolve(ref[len("file://") :], self.root_str))
        if path not in self._json_cache:
            from pca_batch.manifest.load import read_json_request

            try:
                self._json_cache[path] = read_json_request(path)
            except csrmod.InputError as exc:
                self._json_cache[path] = exc
        data = self._json_cache[path]
        if isinstance(data, csrmod.InputError):
            report(["cli_input_json"], at, str(data))
            return None
        if not isinstance(data, dict):
            report(["cli_input_json"], at, f"the cli_input_json file {path} must hold a JSON object")
            return None
        data = copy.deepcopy(data)
        problems: list[Problem] = []
        self._shorthand(data, str(raw.get("name", "")), problems, [])
        for p in problems:
            report(["cli_input_json"], at, f"{p.path}: {p.message} (in {ref[len('file://') :]})")
        return Source(None, at, False, data=data, note=f" (in {ref[len('file://') :]})")

    def _csr_source(
        self,
        request: dict[str, Any],
        sources: list[Source],
        line: int,
        label: str,
        problems: list[Problem],
    ) -> tuple[tuple[csrmod.Source, int] | None, bool]:
        """Where the CSR comes from (a path, or inline bytes) and the line of Csr; True when that is wrong."""
        value = request.get("Csr")
        if not isinstance(value, str):
            return None, False
        at, _ = locate(sources, ["Csr"], line)
        try:
            return (csrmod.csr_source(value, self.root_str), at), False
        except csrmod.InputError as exc:
            problems.append(Problem(self.file, at, label, "$.Csr", str(exc)))
            return None, True

    def finish(self, entries: list[Entry]) -> list[Entry]:
        """Attach the outcome of every CSR check to its entry: the PEM text, what it holds, its token."""
        outcomes = self.checker.results()
        out = []
        for entry in entries:
            pending = self._pending.get(entry.index)
            request = entry.request
            if pending is not None and isinstance(request, dict):
                outcome = outcomes[pending[0]]
                if isinstance(outcome, str):
                    problem = Problem(self.file, pending[1], entry.name, "$.Csr", outcome)
                    problems = tuple(sorted(entry.problems + (problem,), key=lambda p: p.line))
                    entry = replace(entry, token=None, problems=problems)
                else:
                    request["Csr"] = outcome.pem
                    token = None
                    if not entry.problems:
                        token = str(request["IdempotencyToken"]) if entry.explicit_token else outcome.token
                    entry = entry.checked(outcome.info, token)
                    csrmod.note_verified(outcome.pem)
            out.append(entry)
        return out

    def _check_request(
        self,
        request: dict[str, Any],
        sources: list[Source],
        line: int,
        label: str,
        csr_failed: bool,
        plain: bool = False,
    ) -> tuple[list[Problem], str]:
        """The request's problems, and its canonical form without the CSR (for the token)."""
        # Requests differ mostly in their CSR: check the rest once per distinct form.
        if plain:
            if self._defaults_body is None:
                self._defaults_body = tokens.canonical_without_csr(request)
            body = self._defaults_body
        else:
            body = tokens.canonical_without_csr(request)
        ok = self._request_ok_cache.get(body)
        if ok is None:
            ok = self._request_ok_cache[body] = self._request_ok({**request, "Csr": "x"})
        csr = request.get("Csr", "")
        if ok and isinstance(csr, str) and 1 <= len(csr) <= CSR_MAX_BYTES:
            return [], body
        errors: list[ValidationError] = list(schema.validator(schema.REQUEST).iter_errors(request))
        if csr_failed:
            errors = [e for e in errors if not (list(e.absolute_path)[:1] == ["Csr"])]
        found = problems_from_errors(errors, file=self.file, entry=label, sources=sources, fallback_line=line)
        return found, body

    def _check_validity(self, request: dict[str, Any], sources: list[Source], line: int, label: str) -> list[Problem]:
        problems: list[Problem] = []
        end = request.get("Validity")
        if not isinstance(end, dict):
            return problems
        at, _ = locate(sources, ["Validity", "Value"], line)
        try:
            not_after = validity.not_after(end, self.now)
        except validity.ValidityError as exc:
            return [Problem(self.file, at, label, "$.Validity.Value", str(exc))]
        if end.get("Type") in validity.MOMENT_TYPES and not_after <= self.now:
            problems.append(
                Problem(self.file, at, label, "$.Validity", f"the end {rfc3339(not_after)} lies in the past")
            )
        start = request.get("ValidityNotBefore")
        if isinstance(start, dict):
            at, _ = locate(sources, ["ValidityNotBefore"], line)
            if start.get("Type") != "ABSOLUTE":
                problems.append(
                    Problem(
                        self.file, at, label, "$.ValidityNotBefore.Type", "ValidityNotBefore takes the ABSOLUTE type"
                    )
                )
            else:
                try:
                    not_before = validity.not_before(start, self.now)
                except validity.ValidityError as exc:
                    return problems + [Problem(self.file, at, label, "$.ValidityNotBefore.Value", str(exc))]
                if not_before >= not_after:
                    problems.append(
                        Problem(
                            self.file,
                            at,
                            label,
                            "$.ValidityNotBefore",
                            f"the start {rfc3339(not_before)} is not before the end {rfc3339(not_after)}",
                        )
                    )
        return problems


def _fast(name: str, ref: str | None) -> fastcheck.Check:
    if ref is None:
        return fastcheck.compile_schema(schema.load(name))
    return fastcheck.compile_schema(schema.subschema(name, ref))
