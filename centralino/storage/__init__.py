"""PostgreSQL and Redis connections, migrations and embedded servers for the demo."""
