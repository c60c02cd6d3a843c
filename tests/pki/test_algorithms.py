"""The one table of key and signing algorithm names: families, keys' names, and the schemas agree."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pca_batch import schema
from pca_batch.pki import algorithms


def test_families() -> None:
    assert [algorithms.key_family(k) for k in ("RSA_4096", "EC_secp521r1", "ML_DSA_87", "SM2", "DSA_1024")] == [
        "RSA",
        "EC",
        "ML-DSA-87",
        "SM2",
        None,
    ]
    assert [
        algorithms.signing_family(s)
        for s in ("SHA512WITHRSA", "SHA256WITHRSA_PSS", "SHA512WITHECDSA", "ML_DSA_44", "SM3WITHSM2", "NONE")
    ] == ["RSA", "RSA", "EC", "ML-DSA-44", "SM2", None]


def test_every_signing_algorithm_has_the_family_of_a_key_algorithm() -> None:
    key_families = {algorithms.key_family(k) for k in algorithms.AWS_KEY_ALGORITHMS}
    assert {algorithms.signing_family(s) for s in algorithms.SIGNING_ALGORITHMS} == key_families


@pytest.mark.parametrize("name", [a for a in algorithms.KEY_ALGORITHMS if a != "RSA_4096"])  # 4096: slow
def test_a_generated_key_is_named_as_asked(name: str) -> None:
    key = algorithms.generate(name)
    assert algorithms.key_algorithm_of(key) == name
    assert algorithms.key_algorithm_of(key.public_key()) == name
    assert algorithms.family_of(key) == algorithms.key_family(name)


def test_keys_aws_has_no_name_for() -> None:
    assert algorithms.key_algorithm_of(rsa.generate_private_key(public_exponent=65537, key_size=1024)) is None
    assert algorithms.key_algorithm_of(ec.generate_private_key(ec.SECP256K1())) is None
    with pytest.raises(ValueError, match="unknown key algorithm RSA_1024"):
        algorithms.generate("RSA_1024")


def test_the_default_signing_algorithm_fits_the_key() -> None:
    for name in algorithms.KEY_ALGORITHMS:
        signing = algorithms.default_signing_algorithm(name)
        assert algorithms.signing_family(signing) == algorithms.key_family(name)


def test_the_names_are_the_schemas() -> None:
    request = schema.load(schema.REQUEST)
    assert tuple(request["properties"]["SigningAlgorithm"]["enum"]) == algorithms.SIGNING_ALGORITHMS
    manifest = schema.load(schema.LOADER_MANIFEST)["$defs"]
    assert tuple(manifest["authority"]["properties"]["key_algorithm"]["enum"]) == algorithms.KEY_ALGORITHMS
    assert tuple(manifest["key"]["properties"]["algorithm"]["enum"]) == algorithms.KEY_ALGORITHMS
