"""The embedded local private CA: a SQLite store, CA keys as files, and AWS Private CA's behaviour."""
