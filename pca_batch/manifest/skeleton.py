"""`pca-batch skeleton`: a commented manifest, or the request JSON skeleton."""

from __future__ import annotations

import json
from typing import Any

from pca_batch import schema

MANIFEST_SKELETON = """\
# pca-batch manifest: one entry per certificate; each entry is one
# `aws acm-pca issue-certificate` request. PascalCase keys are request keys
# (see `pca-batch skeleton --request`); lowercase keys belong to pca-batch.
version: 1

backend:
  type: local                 # local (embedded CA, no AWS account) or aws
  store: .pca-batch           # local: where the CA keeps its database and keys
  # authorities:              # local: CAs that apply creates when missing
  #   - arn: arn:aws:acm-pca:us-east-1:111122223333:certificate-authority/00000000-0000-4000-8000-000000000001
  #     common_name: Example Root CA
  #     key_algorithm: EC_prime256v1
  # type: aws
  # region: us-east-1         # default: the region in each CA ARN
  # profile: default
  # endpoint_url: https://acm-pca.us-east-1.amazonaws.com

# settings:                   # the command line wins over these
#   concurrency: 32           # entries in flight (local backend: 256, in batches of up to 128)
#   max_rate: 200             # IssueCertificate calls per second at most; learned below it (0: no ceiling)
#   max_attempts: 8
#   throttle_timeout: 15m     # how long a call may go on being throttled before its entry fails
#   max_issue: 100            # refuse to run when more would be issued (a lost state?)

# state:                      # what was issued: default a file beside this one (.pca-batch/journal.jsonl)
#   type: s3                  # s3: shared by CI runners that keep no folder (--state s3://BUCKET/KEY)
#   bucket: acme-pca-state
#   key: certs/prod.state

defaults:                     # merged under every entry (the entry wins)
  CertificateAuthorityArn: ${PCA_CA_ARN}
  SigningAlgorithm: SHA256WITHECDSA
  Validity: {Value: 90, Type: DAYS}
  # TemplateArn: arn:aws:acm-pca:::template/EndEntityServerAuthCertificate/V1

certificates:
  - name: payments-api        # unique; [A-Za-z0-9][A-Za-z0-9._-]{0,127}
    Csr: file://csr/payments-api.csr   # inline PEM, file://PATH or fileb://PATH
    output:                   # paths relative to this file's folder
      certificate: out/payments-api.pem
      chain: out/payments-api.chain.pem
      full_chain: out/payments-api.full.pem
  - name: orders
    cli_input_json: file://requests/orders.json   # the shape of --cli-input-json
    Validity: Value=30,Type=DAYS                  # the CLI shorthand works too
"""


def _placeholder(node: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in node:
        return _placeholder(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    kind = node.get("type")
    if "enum" in node:
        return node["enum"][0]
    if kind == "object":
        return {k: _placeholder(v, defs) for k, v in node.get("properties", {}).items()}
    if kind == "array":
        return [_placeholder(node["items"], defs)]
    if kind == "integer":
        return 0
    if kind == "boolean":
        return True
    return ""


def request_skeleton() -> str:
    """Like `aws acm-pca issue-certificate --generate-cli-skeleton`, from our schema."""
    request = schema.load(schema.REQUEST)
    body = _placeholder(request, request["$defs"])
    body["Csr"] = None  # a blob: the CLI leaves it null
    return json.dumps(body, indent=4)
