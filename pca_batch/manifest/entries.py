"""One manifest entry -> one IssueCertificate request, with every problem found.

The request of an entry is the deep merge defaults <- cli_input_json <- the
entry's own PascalCase keys (later wins, lists replaced whole), with Csr read
in; that merged request is what the request schema validates.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from typing import TYPE_CHECKING, Any

from pca_batch import schema
from pca_batch.acmpca import CSR_MAX_BYTES, REVOCATION_REASONS
from pca_batch.errors import Problem
from pca_batch.manifest import interpolate
from pca_batch.manifest.context import LoadContext
from pca_batch.manifest.csrpool import CsrChecker
from pca_batch.manifest.outpaths import OutputPaths
from pca_batch.manifest.problems import Source, json_path, locate, problems_from_errors
from pca_batch.manifest.requestfile import PREFIX, RequestFiles
from pca_batch.manifest.sections import accepts
from pca_batch.manifest.yamlload import LineDict
from pca_batch.model import CsrFacts, CsrInfo, Entry, Outputs
from pca_batch.pki import csr as csrmod
from pca_batch.pki import validity
from pca_batch.pki.keys import KeySpec
from pca_batch.plan import tokens
from pca_batch.schema import fastcheck
from pca_batch.times import rfc3339

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

KEY_PLACEHOLDER = "(made by pca-batch from the entry's key at apply time)"


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


def _value_line(node: Any, key: str, default: int) -> int:
    return node.value_lines.get(key, default) if isinstance(node, LineDict) else default


@dataclass
class _Draft:
    """One entry while it is being built: what each step found so far."""

    file: str
    raw: dict[str, Any]
    line: int
    label: str
    problems: list[Problem] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)
    plain: bool = False  # the request is the defaults' (with the entry's Csr), shared
    key: KeySpec | None = None
    csr: CsrFacts | None = None
    csr_source: tuple[csrmod.Source, int] | None = None  # where the CSR is read from, and the line of Csr
    csr_failed: bool = False
    token: str | None = None

    def report(self, path: list[Any], line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, self.label, json_path(path), message))


class EntryBuilder:
    def __init__(
        self,
        ctx: LoadContext,
        *,
        defaults: LineDict | None,
        checker: CsrChecker | None = None,
        interpolate: bool = True,
        verified: csrmod.VerifiedCsrs = csrmod.VERIFIED,
    ) -> None:
        self.ctx = ctx
        self.file = ctx.display
        self.root_str = str(ctx.root)
        self.outputs = OutputPaths(ctx.display, ctx.root, allow_outside=ctx.allow_outside_paths)
        # (CA ARN, explicit IdempotencyToken) -> (entry, line): AWS would hand a second entry the first's certificate
        self._explicit_tokens: dict[tuple[str, str], tuple[str, int]] = {}
        self.defaults = defaults
        self.interpolate = interpolate  # False when the manifest holds no "${" at all
        self.request_files = RequestFiles(ctx.root)
        self.checker = checker or CsrChecker(0)
        self.verified = verified  # where the CSRs checked here are noted, for the local CA
        # entry index -> (checker ticket, line of its Csr): signatures checked in finish()
        self._pending: dict[int, tuple[int, int]] = {}
        # Shared checks are keyed on everything they judge (see exact_form): the schema's yes
        # by the whole request but its CSR (checked on its own), the clock's by the two validities.
        self._request_ok_cache: dict[str, bool] = {}
        self._defaults_form: str | None = None  # exact form of a request made of defaults alone
        self._defaults_body: str | None = None  # ... and its canonical form, for the token
        self._defaults_only: dict[str, Any] | None = None
        self._valid_validities: set[str] = set()  # (Validity, ValidityNotBefore) found fine
        # jsonschema explains; these compiled checks only say yes or no, fast
        self._request_ok = _request_check()
        self._entry_ok = accepts("entry")
        self._key_ok = accepts("key")
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
            expand_shorthand(self.defaults, self.file, "defaults", problems)
        return problems

    # -- entries ------------------------------------------------------------
    def build(self, index: int, raw: Any, line: int, seen: dict[str, int]) -> Entry:
        """The entry at ``certificates[index]``, valid or with every problem found in it."""
        if not isinstance(raw, dict):
            label = f"certificates[{index}]"
            problem = Problem(self.file, line, label, "$", "an entry must be a mapping with at least `name`")
            return Entry(label, index, line, None, None, None, Outputs(), problems=(problem,))
        name = raw.get("name")
        draft = _Draft(self.file, raw, line, name if isinstance(name, str) and name else f"certificates[{index}]")
        self._check_entry(draft, seen)
        self._merge_request(draft)
        self._csr_or_key(draft)
        self._check_merged(draft)
        outputs = self.outputs.resolve(raw, line, draft.label, draft.problems)
        if not draft.problems and draft.key is not None:
            draft.token = tokens.token_for(draft.label, tokens.key_request(draft.request, draft.key))
        explicit = self._explicit_token(draft)
        renew_before = self._renew_before(draft)
        fallback = self.defaults.get("revoke_replaced") if self.defaults else None
        revoke_replaced = draft.raw.get("revoke_replaced", fallback)
        if draft.csr_source is not None:
            # read and checked in finish(), by a worker process in large manifests; the token covers the CSR
            wants_token = not draft.problems and not explicit
            body = self._body(draft) if wants_token else None
            ticket = self.checker.add(draft.csr_source[0], draft.label if wants_token else None, body)
            self._pending[index] = (ticket, draft.csr_source[1])
        return Entry(
            name=draft.label,
            index=index,
            line=line,
            request=draft.request,
            token=draft.token,
            csr=draft.csr,
            outputs=outputs,
            problems=tuple(sorted(self._without_echoes(draft.problems), key=lambda p: p.line)),
            key=draft.key,
            renew_before=renew_before,
            explicit_token=explicit,
            revoke_replaced=revoke_replaced if revoke_replaced in REVOCATION_REASONS else None,
        )

    def _check_entry(self, draft: _Draft, seen: dict[str, int]) -> None:
        """The entry as written: its ${VAR}s filled, the entry schema, a name used once."""
        raw, line = draft.raw, draft.line
        if self.interpolate:

            def report_unfilled(p: list[Any], at: int, message: str) -> None:
                self.unfilled.add((json_path(p), at))
                if not self.ctx.excuses(message):
                    draft.report(p, at, message)

            interpolate.walk(raw, self.ctx.env, [], line, report_unfilled)
        draft.sources.append(Source(raw, line, True))
        if not self._entry_ok(raw):
            draft.problems += problems_from_errors(
                schema.def_validator(schema.LOADER_MANIFEST, "entry").iter_errors(raw),
                file=self.file,
                entry=draft.label,
                sources=draft.sources[:1],
                fallback_line=line,
            )
        name = raw.get("name")
        if isinstance(name, str):
            if name in seen:
                at = _value_line(raw, "name", line)
                message = f"the name {name!r} is already used by the entry on line {seen[name]}"
                draft.report(["name"], at, message)
            else:
                seen[name] = line

    def _merge_request(self, draft: _Draft) -> None:
        """The request: defaults <- cli_input_json <- the entry's own request keys."""
        raw = draft.raw
        cli = self._cli_input(draft)
        if cli is not None:
            draft.sources.append(cli)
        if self.defaults is not None:
            draft.sources.append(Source(self.defaults, self.defaults.line, True))
        expand_shorthand(raw, self.file, draft.label, draft.problems)
        # An entry that adds nothing but its CSR to the defaults (the common case in large
        # manifests) shares the defaults' request; nothing downstream changes a nested value.
        draft.plain = (
            cli is None
            and "key" not in raw
            and not any(k in self._request_keys and k != "Csr" for k in raw)
            and not isinstance(raw.get("Csr"), Mapping)  # which would merge into the defaults' Csr
        )
        if draft.plain:
            draft.request = dict(self._defaults_request())
            if "Csr" in raw:
                draft.request["Csr"] = raw["Csr"]
            return
        draft.request = deep_merge({}, self._defaults_request())  # a copy: this entry changes it
        if cli is not None:
            deep_merge(draft.request, cli.data)
        # Unknown PascalCase keys are reported by the entry schema; only request keys merge.
        deep_merge(draft.request, {k: v for k, v in raw.items() if k in self._request_keys})

    def _csr_or_key(self, draft: _Draft) -> None:
        """Where the CSR comes from: a `key:` block (made at apply time) or Csr (read in finish())."""
        if self._key_entry(draft):
            # the CSR is made at apply time from the key; the schema checks the rest
            draft.request["Csr"] = KEY_PLACEHOLDER
            draft.csr = _key_info(draft.key) if draft.key is not None else None
        else:
            draft.csr_source, draft.csr_failed = self._csr_source(draft)

    def _check_merged(self, draft: _Draft) -> None:
        """The merged request against the request schema, then its Validity against the clock."""
        request_problems = self._check_request(draft)
        # Paths already explained by a problem above; schema errors there would only repeat it.
        explained = {p.path for p in draft.problems}
        cli_failed = "$.cli_input_json" in explained
        draft.problems += [
            p for p in request_problems if p.path not in explained and not (cli_failed and "required key" in p.message)
        ]
        if any(p.path.startswith(("$.Validity", "$.ValidityNotBefore")) for p in draft.problems):
            return
        # the check reads these two members and the clock, nothing else
        validities = exact_form((draft.request.get("Validity"), draft.request.get("ValidityNotBefore")))
        if validities not in self._valid_validities:  # the same validities were found fine before
            found = self._check_validity(draft.request, draft.sources, draft.line, draft.label)
            if not found:
                self._valid_validities.add(validities)
            draft.problems += found

    def _explicit_token(self, draft: _Draft) -> bool:
        """Does the entry give its own IdempotencyToken? One that another entry gives for the same CA is a problem."""
        explicit = draft.request.get("IdempotencyToken")
        ca = draft.request.get("CertificateAuthorityArn")
        if isinstance(explicit, str) and isinstance(ca, str):
            at, _ = locate(draft.sources, ["IdempotencyToken"], draft.line)
            first = self._explicit_tokens.setdefault((ca, explicit), (draft.label, at))
            if first[0] != draft.label:
                draft.report(
                    ["IdempotencyToken"],
                    at,
                    f"the entry {first[0]} (line {first[1]}) gives the same IdempotencyToken for the same CA; "
                    "AWS would hand this entry that entry's certificate",
                )
                draft.token = None
        return isinstance(explicit, str) and bool(explicit)

    def _renew_before(self, draft: _Draft) -> str | None:
        """The entry's renew_before (or the defaults'), when it reads."""
        raw = draft.raw
        renew_before = raw.get("renew_before", self.defaults.get("renew_before") if self.defaults else None)
        if not isinstance(renew_before, str):
            return None
        from pca_batch.plan.renewal import RenewBeforeError, parse_renew_before

        try:
            parse_renew_before(renew_before)
        except RenewBeforeError as exc:
            where = raw if "renew_before" in raw else self.defaults
            path = "$.renew_before" if where is raw else "$.defaults.renew_before"
            at = _value_line(where, "renew_before", draft.line)
            draft.problems.append(Problem(self.file, at, draft.label, path, str(exc)))
            draft.token = None
        return renew_before

    def _key_entry(self, draft: _Draft) -> bool:
        """Is this an entry whose key and CSR pca-batch makes? Its KeySpec is set when the schema accepted the block."""
        raw, request = draft.raw, draft.request
        if "key" not in raw:
            return False
        at = _value_line(raw, "key", draft.line)
        if "Csr" in request:
            draft.report(["key"], at, "give either Csr or key, not both")
            return False
        if "IdempotencyToken" in request:
            message = "an entry with `key` cannot give IdempotencyToken: its token is derived from each new key"
            draft.report(["IdempotencyToken"], at, message)
        output = raw.get("output")
        out: dict[str, Any] = output if isinstance(output, dict) else {}
        for kind in ("certificate", "private_key"):
            if not out.get(kind):
                message = f"an entry with `key` needs output.{kind}"
                draft.report(["output"], at, message)
        block = raw["key"]
        if self._key_ok(block):  # else the entry schema has said what is wrong with it
            draft.key = self._key_spec(block, at, draft)
        return True

    def _key_spec(self, block: dict[str, Any], at: int, draft: _Draft) -> KeySpec:
        """The spec of a block the schema accepted, and what the schema cannot say about it."""
        lines = block.value_lines if isinstance(block, LineDict) else {}
        spec = KeySpec.from_manifest(block)
        for i, address in enumerate(spec.ip_addresses):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                where = lines.get("ip_addresses", at)
                draft.report(["key", "ip_addresses", i], where, f"{address!r} is not an IP address")
        if not (spec.subject or spec.dns_names or spec.ip_addresses or spec.uris or spec.emails):
            message = "the key needs a subject or at least one subject alternative name"
            draft.report(["key"], at, message)
        return spec

    def _without_echoes(self, problems: list[Problem]) -> list[Problem]:
        if not self.unfilled:
            return problems
        return [p for p in problems if (p.path, p.line) not in self.unfilled or "environment variable" in p.message]

    def _cli_input(self, draft: _Draft) -> Source | None:
        """The entry's cli_input_json file as a source of its request (its shorthands expanded)."""
        ref = draft.raw.get("cli_input_json")
        if not isinstance(ref, str) or not ref.startswith(PREFIX) or len(ref) <= len(PREFIX):
            return None  # the entry schema says what is wrong with it
        at = _value_line(draft.raw, "cli_input_json", draft.line)
        try:
            data = copy.deepcopy(self.request_files.read(self.request_files.path(ref)))
        except csrmod.InputError as exc:
            draft.report(["cli_input_json"], at, str(exc))
            return None
        problems: list[Problem] = []
        note = f" (in {ref[len(PREFIX) :]})"
        expand_shorthand(data, self.file, str(draft.raw.get("name", "")), problems)
        for p in problems:
            draft.report(["cli_input_json"], at, f"{p.path}: {p.message}{note}")
        return Source(None, at, False, data=data, note=note)

    def _csr_source(self, draft: _Draft) -> tuple[tuple[csrmod.Source, int] | None, bool]:
        """Where the CSR comes from (a path, or inline bytes) and the line of Csr; True when that is wrong."""
        value = draft.request.get("Csr")
        if not isinstance(value, str):
            return None, False
        at, _ = locate(draft.sources, ["Csr"], draft.line)
        try:
            return (csrmod.csr_source(value, self.root_str), at), False
        except csrmod.InputError as exc:
            draft.problems.append(Problem(self.file, at, draft.label, "$.Csr", str(exc)))
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
                    self.verified.note(outcome.pem)
            out.append(entry)
        return out

    def _body(self, draft: _Draft) -> str:
        """The canonical request without its CSR (and without IdempotencyToken), which the derived token covers."""
        if draft.plain:
            if self._defaults_body is None:
                self._defaults_body = tokens.canonical_without_csr(draft.request)
            return self._defaults_body
        return tokens.canonical_without_csr(draft.request)

    def _check_request(self, draft: _Draft) -> list[Problem]:
        """The request's problems."""
        request = draft.request
        # Requests differ mostly in their CSR: check the rest once per distinct form, every
        # member but Csr in the key (the Csr member's schema is checked on its own below).
        if draft.plain:  # all but Csr is the defaults' own
            if self._defaults_form is None:
                self._defaults_form = exact_form({k: v for k, v in request.items() if k != "Csr"})
            form = self._defaults_form
        else:
            form = exact_form({k: v for k, v in request.items() if k != "Csr"})
        ok = self._request_ok_cache.get(form)
        if ok is None:
            ok = self._request_ok_cache[form] = self._request_ok({**request, "Csr": "x"})
        csr = request.get("Csr", "")
        if ok and isinstance(csr, str) and 1 <= len(csr) <= CSR_MAX_BYTES:
            return []
        errors: list[ValidationError] = list(schema.validator(schema.REQUEST).iter_errors(request))
        if draft.csr_failed:
            errors = [e for e in errors if not (list(e.absolute_path)[:1] == ["Csr"])]
        return problems_from_errors(
            errors, file=self.file, entry=draft.label, sources=draft.sources, fallback_line=draft.line
        )

    def _check_validity(self, request: dict[str, Any], sources: list[Source], line: int, label: str) -> list[Problem]:
        problems: list[Problem] = []
        end = request.get("Validity")
        if not isinstance(end, dict):
            return problems
        at, _ = locate(sources, ["Validity", "Value"], line)
        try:
            not_after = validity.not_after(end, self.ctx.now)
        except validity.ValidityError as exc:
            return [Problem(self.file, at, label, "$.Validity.Value", str(exc))]
        if end.get("Type") in validity.MOMENT_TYPES and not_after <= self.ctx.now:
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
                    not_before = validity.not_before(start, self.ctx.now)
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


def exact_form(value: Any) -> str:
    """A key for what a shared check judges: equal keys only for values no check can tell apart.

    ``repr`` of the types a manifest and its JSON files hold (dict, list, str, int,
    float, bool, None) writes every member and every value with its type: 1, 1.0,
    True and "1" all differ. (The canonical JSON that the derived token covers is no
    such key: it leaves out IdempotencyToken, which the schema checks.)
    """
    return repr(value)


@cache
def _request_check() -> fastcheck.Check:
    return fastcheck.compile_schema(schema.load(schema.REQUEST))


_SHORTHAND_KEYS = ("Validity", "ValidityNotBefore")


def expand_shorthand(node: dict[str, Any], file: str, entry: str, problems: list[Problem]) -> None:
    """The CLI shorthand (``Value=365,Type=DAYS``) of Validity and ValidityNotBefore, in place, as mappings."""
    for key in _SHORTHAND_KEYS:
        value = node.get(key)
        if isinstance(value, str):
            try:
                node[key] = validity.parse_shorthand(value)
            except validity.ValidityError as exc:
                line = _value_line(node, key, getattr(node, "line", 0))
                problems.append(Problem(file, line, entry, json_path([key]), str(exc)))
