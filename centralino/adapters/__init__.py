"""Adapters implementing the domain ports (PostgreSQL, Redis, HTTP)."""
