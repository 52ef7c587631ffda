"""The just-in-time customer record: identities, timeline, tickets, connectors, fan-out."""
