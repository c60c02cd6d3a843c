"""Deciding what to do: idempotency tokens, renewal, converge (issue / renew / unchanged), preflight, shards."""
