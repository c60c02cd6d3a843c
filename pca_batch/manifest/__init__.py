"""Reading and checking a manifest: safe YAML with lines, ${VAR}s, the schema, entries and their CSRs, output paths."""
