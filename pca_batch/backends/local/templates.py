"""AWS Private CA certificate templates: which extensions each one puts in a certificate.

Source: the AWS Private CA user guide's template list ("Understanding certificate
templates"). For each extension the first source that gives it wins: the template's own
definition, then the request's ApiPassthrough (``_APIPassthrough`` and
``_APICSRPassthrough`` variants), then the CSR's extensions (``_CSRPassthrough``
and ``_APICSRPassthrough``). Subject alternative names come from the CSR under
every template unless ApiPassthrough gives its own.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from pca_batch.errors import BackendError

_TEMPLATE_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:acm-pca:::template/([A-Za-z0-9_]+)/V1$")


def template_arn(name: str) -> str:
    return f"arn:aws:acm-pca:::template/{name}/V1"


DEFAULT_TEMPLATE_ARN = template_arn("EndEntityCertificate")


def _ku(*names: str) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    flags.update(dict.fromkeys(names, True))
    return x509.KeyUsage(**flags)


_END_ENTITY_KU = _ku("digital_signature", "key_encipherment")
_SIGNING_KU = _ku("digital_signature")
_CA_KU = _ku("digital_signature", "key_cert_sign", "crl_sign")


@dataclass(frozen=True)
class Template:
    """One template: its own extensions and which passthrough sources it takes."""

    name: str
    ca: bool = False
    path_length: int | None = None
    basic_constraints_critical: bool = False
    key_usage: x509.KeyUsage | None = None
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = ()
    extended_key_usage_critical: bool = False
    api_passthrough: bool = False
    csr_passthrough: bool = False
    self_signed: bool = False  # the Root templates sign the CA's own key
    blocked: frozenset[x509.ObjectIdentifier] = frozenset()  # no source may add these

    @property
    def arn(self) -> str:
        return template_arn(self.name)

    @functools.cached_property
    def own_extensions(self) -> dict[x509.ObjectIdentifier, x509.Extension[x509.ExtensionType]]:
        """What the template itself defines (built once: issuance is a hot path)."""
        own: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=self.ca, path_length=self.path_length), self.basic_constraints_critical)
        ]
        if self.key_usage is not None:
            own.append((self.key_usage, True))
        if self.extended_key_usage:
            own.append(
                (x509.ExtendedKeyUsage(list(self.extended_key_usage)), self.extended_key_usage_critical)
            )
        return {value.oid: x509.Extension(value.oid, critical, value) for value, critical in own}


_VARIANTS = {
    "": (False, False),
    "_CSRPassthrough": (False, True),
    "_APIPassthrough": (True, False),
    "_APICSRPassthrough": (True, True),
}
_PASSTHROUGH_ONLY = ("_CSRPassthrough", "_APIPassthrough", "_APICSRPassthrough")


def _catalog() -> dict[str, Template]:
    out: dict[str, Template] = {}

    def add(base: str, suffixes: Iterable[str], **kw: object) -> None:
        for suffix in suffixes:
            api, csr = _VARIANTS[suffix]
            name = base + suffix
            out[name] = Template(name=name, api_passthrough=api, csr_passthrough=csr, **kw)  # type: ignore[arg-type]

    server, client = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    add("EndEntityCertificate", _VARIANTS, key_usage=_END_ENTITY_KU, extended_key_usage=(server, client))
    add("EndEntityServerAuthCertificate", _VARIANTS, key_usage=_END_ENTITY_KU, extended_key_usage=(server,))
    add("EndEntityClientAuthCertificate", _VARIANTS, key_usage=_END_ENTITY_KU, extended_key_usage=(client,))
    add(
        "CodeSigningCertificate",
        _VARIANTS,
        key_usage=_SIGNING_KU,
        extended_key_usage=(ExtendedKeyUsageOID.CODE_SIGNING,),
        extended_key_usage_critical=True,
    )
    add(
        "OCSPSigningCertificate",
        _VARIANTS,
        key_usage=_SIGNING_KU,
        extended_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,),
        extended_key_usage_critical=True,
    )
    ca = {"ca": True, "basic_constraints_critical": True}
    add("RootCACertificate", ("", "_APIPassthrough"), key_usage=_CA_KU, self_signed=True, **ca)
    no_eku = frozenset({ExtensionOID.EXTENDED_KEY_USAGE})
    add("BlankRootCACertificate", ("_APIPassthrough",), self_signed=True, blocked=no_eku, **ca)
    for n in range(4):
        add(f"SubordinateCACertificate_PathLen{n}", _VARIANTS, key_usage=_CA_KU, path_length=n, **ca)
        add(f"BlankSubordinateCACertificate_PathLen{n}", _PASSTHROUGH_ONLY, path_length=n, **ca)
        add(
            f"BlankRootCACertificate_PathLen{n}",
            ("_APIPassthrough",),
            path_length=n,
            self_signed=True,
            blocked=no_eku,
            **ca,
        )
    add("BlankEndEntityCertificate", _PASSTHROUGH_ONLY)
    add(
        "BlankEndEntityCertificate_CriticalBasicConstraints",
        _PASSTHROUGH_ONLY,
        basic_constraints_critical=True,
    )
    return out


TEMPLATES: dict[str, Template] = _catalog()


def resolve_template(arn: str | None) -> Template:
    """The template a TemplateArn names (the default when None); InvalidArgsException if unknown."""
    if arn is None:
        arn = DEFAULT_TEMPLATE_ARN
    m = _TEMPLATE_ARN.match(arn) if isinstance(arn, str) else None
    template = TEMPLATES.get(m.group(1)) if m else None
    if template is None:
        raise BackendError(
            "InvalidArgsException", f"TemplateArn {arn!r} is not a known AWS Private CA template"
        )
    return template


# Extensions every certificate gets from the issuance itself, never from passthrough.
_ALWAYS_COMPUTED = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    }
)


@functools.lru_cache(maxsize=64)
def _authority_key_identifier(issuer_ski: bytes) -> x509.Extension[x509.ExtensionType]:
    value = x509.AuthorityKeyIdentifier(issuer_ski, None, None)
    return x509.Extension(value.oid, False, value)


_ORDER = (
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
)


def certificate_extensions(
    template: Template,
    *,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    issuer_ski: x509.SubjectKeyIdentifier | None,
    csr_extensions: Sequence[x509.Extension[x509.ExtensionType]] = (),
    api_extensions: Sequence[x509.Extension[x509.ExtensionType]] = (),
) -> list[x509.Extension[x509.ExtensionType]]:
    """The extensions of a certificate issued under ``template``, in a stable order.

    ``issuer_ski`` is None for a self-signed certificate (no AuthorityKeyIdentifier).
    ``api_extensions`` must be empty unless the template takes API passthrough.
    """
    chosen = dict(template.own_extensions)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    chosen[ExtensionOID.SUBJECT_KEY_IDENTIFIER] = x509.Extension(
        ExtensionOID.SUBJECT_KEY_IDENTIFIER, False, ski
    )
    if issuer_ski is not None:
        chosen[ExtensionOID.AUTHORITY_KEY_IDENTIFIER] = _authority_key_identifier(issuer_ski.digest)

    # Subject alternative names: the API's replace the CSR's; the CSR's pass under every template.
    san_oid = ExtensionOID.SUBJECT_ALTERNATIVE_NAME
    api_san = [e for e in api_extensions if e.oid == san_oid]
    csr_san = [e for e in csr_extensions if e.oid == san_oid]
    if api_san or csr_san:
        chosen[san_oid] = (api_san or csr_san)[0]

    sources = [api_extensions]
    if template.csr_passthrough:
        sources.append(csr_extensions)
    for source in sources:
        for ext in source:
            if ext.oid in chosen or ext.oid in _ALWAYS_COMPUTED or ext.oid in template.blocked:
                continue
            chosen[ext.oid] = ext

    if not subject and san_oid in chosen:
        # RFC 5280 4.2.1.6: with an empty subject the SAN extension is critical.
        san = chosen[san_oid]
        chosen[san_oid] = x509.Extension(san_oid, True, san.value)
    ordered = [chosen.pop(oid) for oid in _ORDER if oid in chosen]
    return ordered + list(chosen.values())


def with_distribution_point(
    extensions: list[x509.Extension[x509.ExtensionType]], url: str | None
) -> list[x509.Extension[x509.ExtensionType]]:
    """The extensions with the CA's CRL Distribution Points (``url``, the CA's CRL) in place
    of any a passthrough source gave, as AWS puts it in every certificate a CA with CRLs issues;
    unchanged when ``url`` is None (the CA has no CRLs)."""
    if url is None:
        return extensions
    point = x509.CRLDistributionPoints(
        [x509.DistributionPoint(full_name=[x509.UniformResourceIdentifier(url)], relative_name=None,
                                reasons=None, crl_issuer=None)]
    )
    kept = [e for e in extensions if e.oid != ExtensionOID.CRL_DISTRIBUTION_POINTS]
    return [*kept, x509.Extension(point.oid, False, point)]
