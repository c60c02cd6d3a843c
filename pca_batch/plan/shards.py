"""Shards: the K-th of N disjoint parts of a manifest, the same on every machine and run."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from pca_batch.model import Manifest, Shard


def in_shard(name: str, shard: Shard) -> bool:
    """Stable on every machine and run: SHA-256 of the entry name, modulo N."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard.count == shard.index - 1


def select_shard(manifest: Manifest, shard: Shard | None) -> Manifest:
    """The manifest with only the entries of ``shard`` (all of them when None); the others are
    kept aside (``others``), as names and outputs that are still the manifest's."""
    if shard is None:
        return manifest
    mine = tuple(e for e in manifest.entries if in_shard(e.name, shard))
    others = tuple(e for e in manifest.entries if not in_shard(e.name, shard))
    return replace(manifest, entries=mine, shard=shard, others=others)
