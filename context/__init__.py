"""The just-in-time customer record: identities, timeline, tickets, connectors and the pre-answer fan-out."""
