"""pca-batch: issue many AWS Private CA certificates from one YAML manifest."""

__version__ = "0.1.0"
