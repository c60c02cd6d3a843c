"""IssueCertificate's ApiPassthrough turned into an X.509 subject and extensions.

Shapes and names as the API gives them (``ApiPassthrough.Subject``,
``ApiPassthrough.Extensions``). Any value that cannot become a well-formed name
or extension is refused with InvalidArgsException, naming the member.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from pca_batch.errors import BackendError

T = TypeVar("T")

# ASN1Subject members in the order of the API model, which is the order AWS writes them.
_NAME_FIELDS = (
    ("Country", NameOID.COUNTRY_NAME),
    ("Organization", NameOID.ORGANIZATION_NAME),
    ("OrganizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("DistinguishedNameQualifier", NameOID.DN_QUALIFIER),
    ("State", NameOID.STATE_OR_PROVINCE_NAME),
    ("CommonName", NameOID.COMMON_NAME),
    ("SerialNumber", NameOID.SERIAL_NUMBER),
    ("Locality", NameOID.LOCALITY_NAME),
    ("Title", NameOID.TITLE),
    ("Surname", NameOID.SURNAME),
    ("GivenName", NameOID.GIVEN_NAME),
    ("Initials", NameOID.INITIALS),
    ("Pseudonym", NameOID.PSEUDONYM),
    ("GenerationQualifier", NameOID.GENERATION_QUALIFIER),
)

_KEY_USAGE_FLAGS = (
    ("DigitalSignature", "digital_signature"),
    ("NonRepudiation", "content_commitment"),
    ("KeyEncipherment", "key_encipherment"),
    ("DataEncipherment", "data_encipherment"),
    ("KeyAgreement", "key_agreement"),
    ("KeyCertSign", "key_cert_sign"),
    ("CRLSign", "crl_sign"),
    ("EncipherOnly", "encipher_only"),
    ("DecipherOnly", "decipher_only"),
)

EXTENDED_KEY_USAGE_TYPES = {
    "SERVER_AUTH": ExtendedKeyUsageOID.SERVER_AUTH,
    "CLIENT_AUTH": ExtendedKeyUsageOID.CLIENT_AUTH,
    "CODE_SIGNING": ExtendedKeyUsageOID.CODE_SIGNING,
    "EMAIL_PROTECTION": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "TIME_STAMPING": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSP_SIGNING": ExtendedKeyUsageOID.OCSP_SIGNING,
    "SMART_CARD_LOGIN": ExtendedKeyUsageOID.SMARTCARD_LOGON,
    "DOCUMENT_SIGNING": x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),
    "CERTIFICATE_TRANSPARENCY": ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY,
}


def _invalid(path: str, why: str) -> BackendError:
    return BackendError("InvalidArgsException", f"ApiPassthrough.{path}: {why}")


def _oid(value: Any, path: str) -> x509.ObjectIdentifier:
    try:
        return x509.ObjectIdentifier(str(value))
    except ValueError:
        raise _invalid(path, f"{value!r} is not an object identifier") from None


def _guard(path: str, build: Callable[[], T]) -> T:
    """Run a cryptography constructor; its ValueError becomes InvalidArgsException."""
    try:
        return build()
    except (ValueError, TypeError, UnicodeError) as exc:
        raise _invalid(path, str(exc)) from None


def api_name(subject: Mapping[str, Any], path: str = "Subject") -> x509.Name:
    """An ASN1Subject as an X.509 name, one attribute per RDN."""
    custom = subject.get("CustomAttributes")
    standard = [(k, oid) for k, oid in _NAME_FIELDS if subject.get(k)]
    if custom and standard:
        raise _invalid(path, "CustomAttributes cannot be combined with the standard attributes")
    attributes: list[x509.NameAttribute[str]] = []
    if custom:
        for i, item in enumerate(custom):
            oid = _oid(item.get("ObjectIdentifier"), f"{path}.CustomAttributes[{i}].ObjectIdentifier")
            value = str(item.get("Value", ""))
            attributes.append(
                _guard(f"{path}.CustomAttributes[{i}]", partial(x509.NameAttribute, oid, value))
            )
    for key, oid in standard:
        value = str(subject[key])
        attributes.append(_guard(f"{path}.{key}", partial(x509.NameAttribute, oid, value)))
    return x509.Name([x509.RelativeDistinguishedName([a]) for a in attributes])


# -- DER, for the one GeneralName cryptography cannot build (EDIPartyName) ---------------


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _der_content(der: bytes) -> bytes:
    first = der[1]
    if first < 0x80:
        return der[2 : 2 + first]
    width = first & 0x7F
    n = int.from_bytes(der[2 : 2 + width], "big")
    return der[2 + width : 2 + width + n]


def _utf8(text: str) -> bytes:
    return _der(0x0C, text.encode("utf-8"))


def _edi_party_name(value: Mapping[str, Any]) -> bytes:
    """``[5] EDIPartyName`` (RFC 5280): nameAssigner [0] and partyName [1], both explicit."""
    body = b""
    if value.get("NameAssigner"):
        body += _der(0xA0, _utf8(str(value["NameAssigner"])))
    body += _der(0xA1, _utf8(str(value.get("PartyName", ""))))
    return _der(0xA5, body)


def _general_name(item: Mapping[str, Any], path: str) -> x509.GeneralName | bytes:
    given = [k for k, v in item.items() if v is not None]
    if len(given) != 1:
        raise _invalid(path, "each entry must have exactly one member (DnsName, IpAddress, ...)")
    kind, value = given[0], item[given[0]]
    if kind == "DnsName":
        return _guard(path, lambda: x509.DNSName(str(value)))
    if kind == "Rfc822Name":
        return _guard(path, lambda: x509.RFC822Name(str(value)))
    if kind == "UniformResourceIdentifier":
        return _guard(path, lambda: x509.UniformResourceIdentifier(str(value)))
    if kind == "IpAddress":
        return _guard(path, lambda: x509.IPAddress(ipaddress.ip_address(str(value))))
    if kind == "RegisteredId":
        return x509.RegisteredID(_oid(value, f"{path}.RegisteredId"))
    if kind == "DirectoryName":
        return x509.DirectoryName(api_name(value, f"{path}.DirectoryName"))
    if kind == "OtherName":
        type_id = _oid(value.get("TypeId"), f"{path}.OtherName.TypeId")
        return x509.OtherName(type_id, _utf8(str(value.get("Value", ""))))
    if kind == "EdiPartyName":
        return _edi_party_name(value)
    raise _invalid(path, f"unknown member {kind!r}")


def _subject_alternative_names(items: Sequence[Mapping[str, Any]]) -> x509.ExtensionType:
    path = "Extensions.SubjectAlternativeNames"
    names = [_general_name(item, f"{path}[{i}]") for i, item in enumerate(items)]
    if all(isinstance(n, x509.GeneralName) for n in names):
        return x509.SubjectAlternativeName(names)  # type: ignore[arg-type]
    parts = [
        n if isinstance(n, bytes) else _der_content(x509.SubjectAlternativeName([n]).public_bytes())
        for n in names
    ]
    return x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, _der(0x30, b"".join(parts)))


def _key_usage(flags: Mapping[str, Any]) -> x509.KeyUsage | None:
    values = {attr: bool(flags.get(key, False)) for key, attr in _KEY_USAGE_FLAGS}
    if not any(values.values()):
        return None
    return _guard("Extensions.KeyUsage", lambda: x509.KeyUsage(**values))


def _extended_key_usage(items: Sequence[Mapping[str, Any]]) -> x509.ExtendedKeyUsage:
    oids: list[x509.ObjectIdentifier] = []
    for i, item in enumerate(items):
        path = f"Extensions.ExtendedKeyUsage[{i}]"
        if item.get("ExtendedKeyUsageType") is not None:
            kind = item["ExtendedKeyUsageType"]
            if kind not in EXTENDED_KEY_USAGE_TYPES:
                raise _invalid(path, f"unknown ExtendedKeyUsageType {kind!r}")
            oids.append(EXTENDED_KEY_USAGE_TYPES[kind])
        elif item.get("ExtendedKeyUsageObjectIdentifier") is not None:
            oids.append(_oid(item["ExtendedKeyUsageObjectIdentifier"], path))
        else:
            raise _invalid(path, "give ExtendedKeyUsageType or ExtendedKeyUsageObjectIdentifier")
    return x509.ExtendedKeyUsage(oids)


def _certificate_policies(items: Sequence[Mapping[str, Any]]) -> x509.CertificatePolicies:
    policies = []
    for i, item in enumerate(items):
        path = f"Extensions.CertificatePolicies[{i}]"
        qualifiers: list[str | x509.UserNotice] = []
        for j, q in enumerate(item.get("PolicyQualifiers") or ()):
            if q.get("PolicyQualifierId") != "CPS":
                raise _invalid(f"{path}.PolicyQualifiers[{j}]", "PolicyQualifierId must be CPS")
            qualifiers.append(str((q.get("Qualifier") or {}).get("CpsUri", "")))
        policies.append(x509.PolicyInformation(_oid(item.get("CertPolicyId"), path), qualifiers or None))
    return x509.CertificatePolicies(policies)


def _custom_extension(item: Mapping[str, Any], path: str) -> x509.Extension[x509.ExtensionType]:
    oid = _oid(item.get("ObjectIdentifier"), f"{path}.ObjectIdentifier")
    try:
        value = base64.b64decode(str(item.get("Value", "")), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{path}.Value", "is not base64") from None
    if not value:
        raise _invalid(f"{path}.Value", "is empty")
    return x509.Extension(oid, bool(item.get("Critical", False)), x509.UnrecognizedExtension(oid, value))


def api_extensions(extensions: Mapping[str, Any]) -> list[x509.Extension[x509.ExtensionType]]:
    """ApiPassthrough.Extensions as X.509 extensions (KeyUsage critical, the rest not)."""
    out: list[x509.Extension[x509.ExtensionType]] = []

    def add(value: x509.ExtensionType | None, critical: bool) -> None:
        if value is not None:
            out.append(x509.Extension(value.oid, critical, value))

    if extensions.get("SubjectAlternativeNames"):
        add(_subject_alternative_names(extensions["SubjectAlternativeNames"]), False)
    if extensions.get("KeyUsage"):
        add(_key_usage(extensions["KeyUsage"]), True)
    if extensions.get("ExtendedKeyUsage"):
        add(_extended_key_usage(extensions["ExtendedKeyUsage"]), False)
    if extensions.get("CertificatePolicies"):
        add(_certificate_policies(extensions["CertificatePolicies"]), False)
    for i, item in enumerate(extensions.get("CustomExtensions") or ()):
        out.append(_custom_extension(item, f"Extensions.CustomExtensions[{i}]"))
    seen: set[x509.ObjectIdentifier] = set()
    for ext in out:
        if ext.oid in seen:
            raise _invalid("Extensions", f"extension {ext.oid.dotted_string} is given twice")
        seen.add(ext.oid)
    return out


def general_name(item: Mapping[str, Any], path: str) -> x509.GeneralName:
    """One API GeneralName (an AccessLocation, a SAN entry) as cryptography's; InvalidArgsException
    for one it cannot hold on its own (EdiPartyName)."""
    name = _general_name(item, path)
    if isinstance(name, bytes):
        raise _invalid(path, "EdiPartyName is not supported here")
    return name


def key_usage(flags: Mapping[str, Any]) -> x509.KeyUsage | None:
    """An API KeyUsage (``DigitalSignature``, ``KeyCertSign``, ...); None when no flag is set."""
    return _key_usage(flags)


def asn1_subject(name: x509.Name) -> dict[str, Any]:
    """An X.509 name as the API's ASN1Subject: the standard attributes by member name; a name with
    any other attribute as CustomAttributes (every attribute, in order), as AWS returns it."""
    members = {oid: key for key, oid in _NAME_FIELDS}
    attributes = list(name)
    if all(a.oid in members for a in attributes) and len({a.oid for a in attributes}) == len(attributes):
        return {members[a.oid]: str(a.value) for a in attributes}
    return {"CustomAttributes": [{"ObjectIdentifier": a.oid.dotted_string, "Value": str(a.value)} for a in attributes]}
