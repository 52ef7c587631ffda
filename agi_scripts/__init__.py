"""Standalone process-AGI scripts that Asterisk runs locally (pyst2 over stdin/stdout)."""
