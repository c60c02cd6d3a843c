"""The PKI pieces: CSRs, private keys made from a `key:` block, Validity, and the algorithm tables."""
