"""Who may do what: accounts, roles, sessions, tokens and the decisions about them.

Pure and synchronous (no aiohttp, Redis or asyncpg): the web middleware and the PostgreSQL
and Redis adapters are thin edges around `policy`.
"""
