"""`pca-batch serve`: the local CA on the wire, as an AWS Private CA endpoint.

An HTTP server (:mod:`.server`) speaking acm-pca's JSON 1.1 protocol as botocore sends it
(:mod:`.protocol`), checking each request's SigV4 signature when given credentials
(:mod:`.sigv4`) and its members against botocore's service model as AWS checks them
(:mod:`.shapes`, :mod:`.validation`), and running the 23 operations (:mod:`.operations`) on a
local CA store, the same one `pca-batch ca` and the local backend use. CRLs and audit reports go
where AWS would write them in S3, in a folder standing for the buckets (:mod:`.buckets`), and
the CRLs are also served over plain HTTP at the URL the certificates name.
"""
