"""The CA lifecycle operations: create, get the CSR, import the certificate, describe, list,
update, delete, restore, get the CA's certificate.

A new CA's CRL Distribution Point names this server (``<endpoint>/<bucket>/crl/<CA id>.crl``) so
that clients can fetch the CRL, or ``http://<CustomCname>/crl/<CA id>.crl`` as AWS writes it when a
CNAME is given. What the local CA cannot do is refused with InvalidArgsException rather than
faked: SM2 and ML-DSA keys, partitioned CRLs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509

from pca_batch.acmpca import account_of, colon_serial
from pca_batch.backends.local import lifecycle
from pca_batch.backends.local.authorities import chain_of, status_at, utc
from pca_batch.backends.local.passthrough import api_name, asn1_subject
from pca_batch.backends.local.resources import Tag, add_tags, check_tags
from pca_batch.backends.local.store import AuthorityRow
from pca_batch.errors import BackendError
from pca_batch.model import DEFAULT_CRL_DAYS
from pca_batch.pki.algorithms import KEY_ALGORITHMS, default_signing_algorithm, key_family, signing_family
from pca_batch.serve.paging import page

if TYPE_CHECKING:
    from pca_batch.serve.service import Context, Service

DISABLED_REVOCATION = {"CrlConfiguration": {"Enabled": False}, "OcspConfiguration": {"Enabled": False}}


def _invalid(message: str) -> BackendError:
    return BackendError("InvalidArgsException", message)


def crl_settings(service: Service, revocation: Mapping[str, Any] | None) -> tuple[str | None, int | None]:
    """The CRL folder URL that certificates will name (None: no extension) and the CRL's days."""
    crl = (revocation or {}).get("CrlConfiguration") or {}
    if not crl.get("Enabled"):
        return None, None
    if not crl.get("S3BucketName"):
        raise _invalid("CrlConfiguration.S3BucketName is required when CRLs are enabled")
    if crl.get("CrlType") == "PARTITIONED":
        raise _invalid("partitioned CRLs are not supported by pca-batch serve (CrlType COMPLETE only)")
    omit = (crl.get("CrlDistributionPointExtensionConfiguration") or {}).get("OmitExtension")
    if omit and crl.get("CustomCname"):
        raise _invalid("CustomCname cannot be given when the CRL Distribution Point extension is omitted")
    days = int(crl.get("ExpirationInDays") or DEFAULT_CRL_DAYS)
    if omit:
        return None, days
    folder = str(crl.get("CustomPath") or "crl").strip("/") or "crl"
    if crl.get("CustomCname"):
        base = f"http://{crl['CustomCname']}"
    else:
        base = f"{service.settings.endpoint}/{crl['S3BucketName']}"
    return f"{base}/{folder}", days


def _subject(config: Mapping[str, Any]) -> x509.Name:
    try:
        subject = api_name(config["Subject"])
    except BackendError as exc:
        message = exc.message.replace("ApiPassthrough.", "CertificateAuthorityConfiguration.")
        raise BackendError(exc.code, message) from None
    if not list(subject):
        raise _invalid("CertificateAuthorityConfiguration.Subject must have at least one attribute")
    return subject


def create(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    config = params["CertificateAuthorityConfiguration"]
    key_algorithm, signing = config["KeyAlgorithm"], config["SigningAlgorithm"]
    if key_algorithm not in KEY_ALGORITHMS:
        raise _invalid(f"KeyAlgorithm {key_algorithm} is not supported by the local CA: {', '.join(KEY_ALGORITHMS)}")
    if signing_family(signing) != key_family(key_algorithm):
        raise _invalid(f"SigningAlgorithm {signing} does not match the KeyAlgorithm {key_algorithm}")
    tags = [Tag(t["Key"], t.get("Value")) for t in params.get("Tags") or ()]
    check_tags(tags)
    revocation = params.get("RevocationConfiguration")
    crl_url, crl_days = crl_settings(service, revocation)
    arn = service.new_ca_arn(context)
    new = lifecycle.NewCa(
        arn=arn,
        ca_type=params["CertificateAuthorityType"],
        configuration=config,
        revocation=revocation,
        crl_url=crl_url,
        crl_days=crl_days,
        usage_mode=params.get("UsageMode") or "GENERAL_PURPOSE",
        key_storage=params.get("KeyStorageSecurityStandard"),
        token=params.get("IdempotencyToken"),
    )
    created = lifecycle.create(service.store, new, _subject(config), service.now())
    if created == arn and tags:
        add_tags(service.store, arn, tags)
    return {"CertificateAuthorityArn": created}


def get_csr(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    row = service.authority(params["CertificateAuthorityArn"], context)
    return {"Csr": lifecycle.csr_of(service.store, row)}


def import_certificate(service: Service, params: dict[str, Any], context: Context) -> None:
    row = service.authority(params["CertificateAuthorityArn"], context)
    chain = params.get("CertificateChain")
    lifecycle.import_certificate(service.store, row.arn, params["Certificate"], chain, service.now())
    service.changed(row.arn)
    service.publish_crl(row.arn)  # AWS writes a CA's first CRL once it is ACTIVE


def _configuration(row: AuthorityRow) -> dict[str, Any]:
    if row.configuration is not None:
        return dict(json.loads(row.configuration))
    subject = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii")).subject
    return {
        "KeyAlgorithm": row.key_algorithm,
        "SigningAlgorithm": row.signing_algorithm or default_signing_algorithm(row.key_algorithm),
        "Subject": asn1_subject(subject),
    }


def _revocation(row: AuthorityRow) -> dict[str, Any]:
    if row.revocation is not None:
        return dict(json.loads(row.revocation))
    if row.crl_url is not None:
        return {"CrlConfiguration": {"Enabled": True, "ExpirationInDays": row.crl_days or DEFAULT_CRL_DAYS}}
    return DISABLED_REVOCATION


def description(row: AuthorityRow, now: datetime) -> dict[str, Any]:
    """A CertificateAuthority of DescribeCertificateAuthority and ListCertificateAuthorities."""
    out: dict[str, Any] = {
        "Arn": row.arn,
        "OwnerAccount": account_of(row.arn),
        "CreatedAt": utc(row.created_at),
        "LastStateChangeAt": utc(row.changed_at or row.created_at),
        "Type": lifecycle.ca_type(row),
        "Status": status_at(row, now),
        "CertificateAuthorityConfiguration": _configuration(row),
        "RevocationConfiguration": _revocation(row),
        "KeyStorageSecurityStandard": row.key_storage or "FIPS_140_2_LEVEL_3_OR_HIGHER",
        "UsageMode": row.usage_mode,
    }
    if row.has_certificate:
        serial = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii")).serial_number
        out["Serial"] = colon_serial(format(serial, "x"))
        out["NotBefore"], out["NotAfter"] = utc(row.not_before), utc(row.not_after)
    if row.status == lifecycle.DELETED and row.restorable_until is not None:
        out["RestorableUntil"] = utc(row.restorable_until)
    return out


def describe(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    row = service.authority(params["CertificateAuthorityArn"], context)
    return {"CertificateAuthority": description(row, service.now())}


def list_authorities(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    now = service.now()
    lifecycle.purge(service.store, now)
    own = params.get("ResourceOwner", "SELF") == "SELF"
    rows = [
        row
        for row in service.store.authorities()
        if f":{context.region}:" in row.arn and (account_of(row.arn) == service.settings.account) == own
    ]
    items, following = page(rows, params)
    return {"CertificateAuthorities": [description(row, now) for row in items], "NextToken": following}


def update(service: Service, params: dict[str, Any], context: Context) -> None:
    row = service.authority(params["CertificateAuthorityArn"], context)
    revocation = params.get("RevocationConfiguration")
    crl_url, crl_days = crl_settings(service, revocation) if revocation is not None else (None, None)
    change = lifecycle.Update(params.get("Status"), revocation, crl_url, crl_days)
    lifecycle.update(service.store, row.arn, change, service.now())
    service.changed(row.arn)
    service.publish_crl(row.arn)


def delete(service: Service, params: dict[str, Any], context: Context) -> None:
    row = service.authority(params["CertificateAuthorityArn"], context)
    lifecycle.delete(service.store, row.arn, params.get("PermanentDeletionTimeInDays"), service.now())
    service.changed(row.arn)


def restore(service: Service, params: dict[str, Any], context: Context) -> None:
    row = service.authority(params["CertificateAuthorityArn"], context)
    lifecycle.restore(service.store, row.arn, service.now())
    service.changed(row.arn)


def get_ca_certificate(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    row = service.authority(params["CertificateAuthorityArn"], context)
    if not row.has_certificate:
        raise BackendError("InvalidStateException", f"certificate authority {row.arn} is {row.status}: no certificate")
    chain = chain_of(service.store, row)[len(row.certificate_pem) :].lstrip("\n")
    return {"Certificate": row.certificate_pem, "CertificateChain": chain or None}
