"""IssueCertificate, GetCertificate and RevokeCertificate: the local backend's, on the wire.

The local backend does what AWS does (tokens, the five Validity types, ValidityNotBefore,
templates, passthrough, signing algorithm families, AWS's error codes); these add the region
check and, after a revocation, the CA's new CRL in its bucket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pca_batch.serve.service import Context, Service


def issue_certificate(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    service.check_region(params["CertificateAuthorityArn"], context)
    return {"CertificateArn": service.backend.issue_certificate(params)}


def get_certificate(service: Service, params: dict[str, Any], context: Context) -> dict[str, Any]:
    ca_arn = service.check_region(params["CertificateAuthorityArn"], context)
    bundle = service.backend.get_certificate(ca_arn, params["CertificateArn"])
    return {"Certificate": bundle.certificate, "CertificateChain": bundle.chain or None}


def revoke_certificate(service: Service, params: dict[str, Any], context: Context) -> None:
    ca_arn = service.authority(params["CertificateAuthorityArn"], context).arn
    service.backend.revoke_certificate(ca_arn, params["CertificateSerial"], params["RevocationReason"])
    service.publish_crl(ca_arn)
