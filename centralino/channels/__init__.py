"""Providers' webhook formats, sans-I/O: bytes and headers in, checked signatures and
`context.messages` objects out. No aiohttp, no database: the web handlers are thin shells."""
