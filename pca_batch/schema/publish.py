"""The published manifest schema, for editors and ``check-jsonschema``: pca-batch's own keys
as ``schemas/manifest.schema.json`` declares them, and every request member with the request
schema's types, enums, bounds and patterns (plus what a manifest allows on top of a request:
``${VAR}`` in strings, the ``Value=…,Type=…`` shorthand, ``file://`` CSRs).

The request members are derived here from ``issue-certificate.schema.json``, never written by
hand; ``python -m pca_batch.schema.publish`` refreshes them in the file, and a test checks that
the file is up to date. pca-batch itself does not read them (see :func:`for_loading`): it checks
the merged request against the request schema, once the ``${VAR}`` values are filled in and the
shorthand is read, with messages of its own.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

REQUEST_PREFIX = "request."  # $defs copied from the request schema
VARIABLE = "variable"
API = "https://docs.aws.amazon.com/privateca/latest/APIReference"
# Keywords for people (hover, completion), which no check reads.
EDITOR_ONLY = ("markdownDescription", "defaultSnippets")
ANNOTATIONS = {"description", "markdownDescription", "title", "$comment", "defaultSnippets"}
_LEAF_RULES = {"enum", "pattern", "minLength", "maxLength", "format"}

# Every request member gets a description; `code` is Markdown, shown as such in markdownDescription.
DOCS: dict[str, str] = {
    "CertificateAuthorityArn": "The ARN of the CA that issues the certificate "
    "(`arn:aws:acm-pca:REGION:ACCOUNT:certificate-authority/ID`). Usually set once under `defaults`, "
    "often as `${PCA_CA_ARN}`.",
    "Csr": "The certificate signing request: `file://PATH` (PEM text), `fileb://PATH` (PEM or DER) or the PEM "
    "inline. Paths are relative to the manifest. An entry gives either `Csr` or `key`.",
    "SigningAlgorithm": "The algorithm the CA signs with. It must be of the CA key's family: ECDSA for an EC key, "
    "RSA or RSA-PSS for an RSA key, SM3WITHSM2 for SM2, ML-DSA for ML-DSA.",
    "TemplateArn": "The certificate template; AWS's default is "
    "`arn:aws:acm-pca:::template/EndEntityCertificate/V1`. `ApiPassthrough` takes effect only with an "
    "APIPassthrough or APICSRPassthrough template.",
    "Validity": "When the certificate ends: `{Value: 90, Type: DAYS}` or the CLI shorthand `Value=90,Type=DAYS`.",
    "ValidityNotBefore": "When the certificate starts, as `{Value: UNIX_SECONDS, Type: ABSOLUTE}` or "
    "`Value=1767225600,Type=ABSOLUTE`. Without it, AWS backdates the start by 60 minutes.",
    "ApiPassthrough": "Subject and extensions that override the CSR's (with an APIPassthrough or "
    "APICSRPassthrough template).",
    "IdempotencyToken": "1 to 36 characters. pca-batch derives a token from each entry's name and request "
    "(`pb1-…`); give one only to pin it.",
    "Validity.Value": "A number whose meaning the `Type` gives: a count of days, months or years; "
    "seconds since 1970 (ABSOLUTE); or a date as YYMMDDHHMMSS or YYYYMMDDHHMMSS (END_DATE).",
    "Validity.Type": "DAYS, MONTHS or YEARS after issuance; ABSOLUTE (seconds since 1970) or END_DATE (a date).",
    "ApiPassthrough.Subject": "The subject's distinguished name.",
    "ApiPassthrough.Extensions": "X.509 extensions of the certificate.",
    "Extensions.CertificatePolicies": "Certificate policies (OIDs and CPS qualifiers).",
    "Extensions.ExtendedKeyUsage": "Extended key usages: a type or an OID each.",
    "Extensions.KeyUsage": "Key usage bits.",
    "Extensions.SubjectAlternativeNames": "Subject alternative names: DNS names, IP addresses, URIs, email "
    "addresses, directory names and other names.",
    "Extensions.CustomExtensions": "Extensions given as an OID and a base64 DER value.",
    "ASN1Subject.Country": "Two-letter country code (C).",
    "ASN1Subject.Organization": "Organization (O).",
    "ASN1Subject.OrganizationalUnit": "Organizational unit (OU).",
    "ASN1Subject.DistinguishedNameQualifier": "Distinguished name qualifier.",
    "ASN1Subject.State": "State or province (ST).",
    "ASN1Subject.CommonName": "Common name (CN).",
    "ASN1Subject.SerialNumber": "Serial number attribute of the subject (not the certificate's serial).",
    "ASN1Subject.Locality": "Locality (L).",
    "ASN1Subject.Title": "Title.",
    "ASN1Subject.Surname": "Surname.",
    "ASN1Subject.GivenName": "Given name.",
    "ASN1Subject.Initials": "Initials.",
    "ASN1Subject.Pseudonym": "Pseudonym.",
    "ASN1Subject.GenerationQualifier": "Generation qualifier (Jr., III).",
    "ASN1Subject.CustomAttributes": "Attributes given by OID; they replace all the others.",
    "GeneralName.DnsName": "A DNS name.",
    "GeneralName.IpAddress": "An IPv4 or IPv6 address.",
    "GeneralName.Rfc822Name": "An email address.",
    "GeneralName.UniformResourceIdentifier": "A URI.",
    "GeneralName.RegisteredId": "A registered OID.",
    "GeneralName.DirectoryName": "A distinguished name.",
    "GeneralName.EdiPartyName": "An EDI party name.",
    "GeneralName.OtherName": "An other name: a type OID and a value.",
}

_VARIABLE_DEF = {
    "type": "string",
    "pattern": r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}",
    "$comment": "A string with ${VAR} or ${VAR:-default}, filled in from the environment when the manifest is read",
}
_VALIDITY_TYPES = "END_DATE|ABSOLUTE|DAYS|MONTHS|YEARS"
_VAR_TEXT = r"\$\{[^}]*\}"
_VALUE = rf"(0*[1-9][0-9]*|{_VAR_TEXT})"
_TYPE = rf"({_VALIDITY_TYPES}|{_VAR_TEXT})"
SHORTHAND_PATTERN = (
    rf"^\s*(Value\s*=\s*{_VALUE}\s*,\s*Type\s*=\s*{_TYPE}|Type\s*=\s*{_TYPE}\s*,\s*Value\s*=\s*{_VALUE})\s*$"
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/$defs/{name}"}


def _plain(text: str) -> str:
    return text.replace("`", "")


def _described(node: dict[str, Any], text: str, link: str | None = None) -> dict[str, Any]:
    markdown = text + (f"\n\n[IssueCertificate]({link})" if link else "")
    return {"description": _plain(text), "markdownDescription": markdown, **node}


def _constraints(node: dict[str, Any]) -> str:
    """What a leaf allows, in words, for members without a sentence of their own."""
    if "enum" in node:
        return "One of " + ", ".join(f"`{v}`" for v in node["enum"]) + "."
    kind = node.get("type")
    low, high = node.get("minLength"), node.get("maxLength")
    words = {"string": "Text", "integer": "A whole number", "boolean": "`true` or `false`"}.get(str(kind), str(kind))
    if low is not None and high is not None:
        words += f" of {low} to {high} characters"
    return words + (f" matching `{node['pattern']}`" if "pattern" in node else "") + "."


def _leaf(node: dict[str, Any]) -> dict[str, Any]:
    """A string value as a manifest may write it: meeting its rule, or holding a ``${VAR}``."""
    rule = {k: v for k, v in node.items() if k not in ANNOTATIONS and k != "type"}
    strings = node.get("type") == "string" or (
        "type" not in node and "enum" in rule and all(isinstance(v, str) for v in rule["enum"])
    )
    if not strings or not rule or set(rule) - _LEAF_RULES:
        return node
    kept = {k: v for k, v in node.items() if k in ANNOTATIONS or k == "type"}
    return {**kept, "anyOf": [rule, _ref(VARIABLE)]}


def _own_keys(node: Any) -> Any:
    """pca-batch's own keys, ``${VAR}`` allowed in every string (the loader fills them in first)."""
    if not isinstance(node, dict):
        return node
    node = _leaf(node)
    out = dict(node)
    if isinstance(node.get("properties"), dict):
        out["properties"] = {k: _own_keys(v) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        out["items"] = _own_keys(node["items"])
    return out


def _with_variables(node: dict[str, Any], where: str) -> dict[str, Any]:
    """A request schema node as a manifest may write it: ``${VAR}`` wherever a string goes."""
    if "$ref" in node:
        return _ref(REQUEST_PREFIX + node["$ref"].rsplit("/", 1)[-1])
    kind = node.get("type")
    if kind == "object":
        out = {k: v for k, v in node.items() if k != "properties"}
        out["properties"] = {}
        for name, member in node["properties"].items():
            text = DOCS.get(f"{where}.{name}") or DOCS.get(name) or _constraints(member)
            out["properties"][name] = _described(_with_variables(member, name), text)
        return out
    if kind == "array":
        return {**node, "items": _with_variables(node["items"], where)}
    return _leaf(node)


def _validity_member() -> dict[str, Any]:
    shorthand = {
        "type": "string",
        "pattern": SHORTHAND_PATTERN,
        "$comment": "the CLI shorthand: Value=N,Type=TYPE",
    }
    return {
        "type": ["object", "string"],
        "anyOf": [_ref(REQUEST_PREFIX + "Validity"), shorthand, _ref(VARIABLE)],
    }


def _csr_member() -> dict[str, Any]:
    return {
        "type": "string",
        "anyOf": [
            {"pattern": "^file://.+", "$comment": "file://PATH: a PEM file"},
            {"pattern": "^fileb://.+", "$comment": "fileb://PATH: a PEM or DER file"},
            {"pattern": r"^\s*-----BEGIN", "maxLength": 32768, "$comment": "the PEM text"},
            _ref(VARIABLE),
        ],
    }


def request_members(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The schema of each request member in a manifest entry (or its defaults)."""
    members: dict[str, dict[str, Any]] = {}
    for name, node in request["properties"].items():
        if name == "Csr":
            shape = _csr_member()
        elif name in ("Validity", "ValidityNotBefore"):
            shape = _validity_member()
        else:
            shape = _with_variables(node, name)
        link = f"{API}/API_IssueCertificate.html#privateca-IssueCertificate-request-{name}"
        members[name] = _described(shape, DOCS[name], link)
    return members


def _request_defs(request: dict[str, Any]) -> dict[str, Any]:
    return {REQUEST_PREFIX + name: _with_variables(node, name) for name, node in request["$defs"].items()}


def _markdown_everywhere(node: Any) -> None:
    """Every description of pca-batch's own keys doubles as its markdownDescription (for hover)."""
    if isinstance(node, dict):
        if isinstance(node.get("description"), str):
            node["markdownDescription"] = node["description"]
        for key, value in node.items():
            if key != "defaultSnippets":
                _markdown_everywhere(value)
    elif isinstance(node, list):
        for value in node:
            _markdown_everywhere(value)


def build(manifest: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with its request members (and the $defs they use) derived afresh from ``request``."""
    out = copy.deepcopy(manifest)
    keys = set(request["properties"])
    defs = {k: v for k, v in out["$defs"].items() if not k.startswith(REQUEST_PREFIX) and k != VARIABLE}
    for block in ("defaults", "entry"):
        defs[block]["properties"] = {k: v for k, v in defs[block]["properties"].items() if k not in keys}
    defs = {k: _own_keys(v) for k, v in defs.items()}
    out["properties"] = {k: _own_keys(v) for k, v in out["properties"].items()}
    _markdown_everywhere(defs)
    _markdown_everywhere({k: v for k, v in out.items() if k != "$defs"})
    members = request_members(request)
    for block in ("defaults", "entry"):
        defs[block]["properties"].update(copy.deepcopy(members))
    out["$defs"] = {**defs, VARIABLE: dict(_VARIABLE_DEF), **_request_defs(request)}
    return out


def for_loading(published: dict[str, Any], request_keys: set[str]) -> dict[str, Any]:
    """The manifest schema as pca-batch checks a manifest before merging each entry's request: its
    own keys only. Request members take any value here; the merged request meets the request schema."""
    out = _strip(copy.deepcopy(published))
    out["$defs"] = {k: v for k, v in out["$defs"].items() if not k.startswith(REQUEST_PREFIX) and k != VARIABLE}
    for block in ("defaults", "entry"):
        props = out["$defs"][block]["properties"]
        for key in request_keys & set(props):
            props[key] = {}
    return out


def _strip(node: Any) -> Any:
    """Without the editor's keywords, and each string's rule without its ``${VAR}`` alternative."""
    if isinstance(node, dict):
        alternatives = node.get("anyOf")
        if isinstance(alternatives, list) and len(alternatives) == 2 and alternatives[1] == _ref(VARIABLE):
            node = {**{k: v for k, v in node.items() if k != "anyOf"}, **alternatives[0]}
        return {k: _strip(v) for k, v in node.items() if k not in EDITOR_ONLY}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Refresh the request members of ``schemas/manifest.schema.json`` (in a checkout)."""
    folder = Path(__file__).resolve().parents[2] / "schemas"
    target = folder / "manifest.schema.json"
    manifest = json.loads(target.read_text(encoding="utf-8"))
    request = json.loads((folder / "issue-certificate.schema.json").read_text(encoding="utf-8"))
    text = render(build(manifest, request))
    if "--check" in (argv if argv is not None else sys.argv[1:]):
        return 0 if target.read_text(encoding="utf-8") == text else 1
    target.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
