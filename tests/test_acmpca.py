"""AWS Private CA's facts have one Python home, and it agrees with the request schema."""

from __future__ import annotations

from pca_batch import acmpca, schema
from pca_batch.pki import validity


def test_region_of_reads_ca_and_certificate_arns() -> None:
    assert acmpca.region_of("arn:aws:acm-pca:eu-west-1:123456789012:certificate-authority/abc") == "eu-west-1"
    certificate = "arn:aws-cn:acm-pca:cn-north-1:1:certificate-authority/a/certificate/" + "0" * 32
    assert acmpca.region_of(certificate) == "cn-north-1"
    assert acmpca.region_of("arn:aws:acm-pca::123456789012:certificate-authority/abc") is None
    assert acmpca.region_of("not an arn") is None
    assert acmpca.region_of(None) is None


def test_a_serial_is_written_and_read_back_as_the_certificate_arn_ends_in_it() -> None:
    ca = "arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/x"
    arn = acmpca.certificate_arn(ca, acmpca.serial_hex(0xABC))
    assert arn == f"{ca}/certificate/{'0' * 29}abc"
    assert acmpca.serial_of_arn(arn) == 0xABC
    assert acmpca.account_of(ca) == "111122223333" and acmpca.account_of("not an arn") == ""


def test_the_limits_are_the_request_schemas() -> None:
    request = schema.load(schema.REQUEST)
    properties = request["properties"]
    assert properties["Csr"]["maxLength"] == acmpca.CSR_MAX_BYTES
    assert properties["IdempotencyToken"]["maxLength"] == acmpca.TOKEN_MAX
    assert tuple(request["$defs"]["Validity"]["properties"]["Type"]["enum"]) == validity.VALIDITY_TYPES


def test_the_usage_modes_are_the_manifest_schemas() -> None:
    authority = schema.load(schema.LOADER_MANIFEST)["$defs"]["authority"]
    assert tuple(authority["properties"]["usage_mode"]["enum"]) == acmpca.USAGE_MODES


def test_a_serial_is_sent_to_revoke_certificate_as_the_aws_cli_writes_it() -> None:
    assert acmpca.colon_serial("0a1B2c") == "0a:1b:2c"
    assert acmpca.colon_serial("a1b2c") == "0a:1b:2c"
    assert acmpca.colon_serial("0A:1B:2C") == "0a:1b:2c"
    for text in ("0a1b2c", "0a:1b:2c", "A1B2C", "a:1b:2c"):
        assert acmpca.parse_serial(text) == 0x0A1B2C
    for bad in ("", "g1", "0a::1b", ":0a", "0a:", "0a:1b2", "1" * 129, None, 12):
        assert acmpca.parse_serial(bad) is None
    assert len(acmpca.REVOCATION_REASONS) == 8 and acmpca.UNSPECIFIED in acmpca.REVOCATION_REASONS
