"""Standalone process-AGI scripts that Asterisk runs locally (standard library only, AGI over
stdin/stdout; pyst2 is not needed)."""
