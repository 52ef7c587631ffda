"""Administration: the configuration the API manages (agents, teams, queues with their routing
steps, not-ready reasons), validated as the settings are, kept in PostgreSQL and reloaded by
every process when it changes."""
