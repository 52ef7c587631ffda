"""Composition root, protocol servers, adapters, web, demo services and the Asterisk simulator."""
